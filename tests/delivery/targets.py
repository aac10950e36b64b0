"""Callables for the `python` sink in tests: they write each payload to the JSONL file named by
the LOCKGATE_TEST_SINK_OUT environment variable."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from lockgate.delivery.sinks import Undeliverable

OUT_ENV = "LOCKGATE_TEST_SINK_OUT"


def record(payload: dict[str, Any]) -> None:
    with open(os.environ[OUT_ENV], "a", encoding="utf-8") as out:
        out.write(json.dumps({"called": "record", **payload}) + "\n")


async def record_async(payload: dict[str, Any]) -> None:
    await asyncio.sleep(0)
    with open(os.environ[OUT_ENV], "a", encoding="utf-8") as out:
        out.write(json.dumps({"called": "record_async", **payload}) + "\n")


def refuse(payload: dict[str, Any]) -> None:
    raise Undeliverable(f"no queue for {payload['output']}")


def crash(payload: dict[str, Any]) -> None:
    raise ValueError(f"cannot handle {payload['id']} with output {payload['output']}")
