"""CPU per call of the openai provider's HTTP client against aiohttp, in one run.

Starts the minimal OpenAI-compatible upstream of `gateway_compare.py` on 127.0.0.1, then, in
one uvloop process, alternates rounds of N POSTs (the body size of one decision's request, C
calls in flight) through aiohttp's ClientSession and through `lockgate.providers.http_client`,
and prints the median CPU time of this process per call and calls per second for each.

    python benchmarks/upstream_client.py --calls 4000 --concurrency 16 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from gateway_compare import UPSTREAM_PROGRAM
from server_load import free_port

from lockgate.providers.http_client import HttpPool

HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 900}]}).encode()

Round = Callable[[str, int, int], Awaitable[None]]


async def with_aiohttp(base: str, calls: int, concurrency: int) -> None:
    async with aiohttp.ClientSession() as session:

        async def worker(n: int) -> None:
            for _ in range(n):
                url = f"{base}/chat/completions"
                async with session.post(url, data=BODY, headers=HEADERS) as r:
                    json.loads(await r.read())

        await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))


async def with_http_client(base: str, calls: int, concurrency: int) -> None:
    pool = HttpPool(base)
    head = pool.head("/chat/completions", HEADERS)

    async def worker(n: int) -> None:
        for _ in range(n):
            json.loads((await pool.post(head, BODY)).body)

    await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
    await pool.aclose()


async def measure(run: Round, base: str, calls: int, concurrency: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    await run(base, calls, concurrency)
    return (time.process_time() - cpu) / calls * 1e6, calls / (time.perf_counter() - wall)


async def main(options: argparse.Namespace, base: str) -> dict[str, dict[str, float]]:
    runs: dict[str, Round] = {"aiohttp": with_aiohttp, "http_client": with_http_client}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for run in runs.values():  # warm-up
        await measure(run, base, 500, options.concurrency)
    for _ in range(options.rounds):
        for name, run in runs.items():
            samples[name].append(await measure(run, base, options.calls, options.concurrency))
    return {
        name: {
            "cpu_us_per_call_median": round(statistics.median(s[0] for s in got), 1),
            "calls_per_s_median": round(statistics.median(s[1] for s in got), 1),
        }
        for name, got in samples.items()
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    port = free_port()
    upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM_PROGRAM, str(port)])
    try:
        time.sleep(1.5)
        result = uvloop.run(main(options, f"http://127.0.0.1:{port}/v1"))
    finally:
        upstream.kill()
    load = os.getloadavg()
    ratio = (
        result["aiohttp"]["cpu_us_per_call_median"]
        / result["http_client"]["cpu_us_per_call_median"]
    )
    print(json.dumps({"load_average": load, "options": vars(options), **result}, indent=2))
    print(f"aiohttp / http_client CPU per call: {ratio:.2f}x")
