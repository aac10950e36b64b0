"""The retraining loop end to end on the demo project (`lockgate init`): spot-check verdicts move
live accuracy, and `lockgate retrain` adds them to the training data (a sealed row never),
builds a release that passes the gate and starts it in shadow; audited. Both backends."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlalchemy import select

from lockgate.decide.pipeline import DecisionRequest
from lockgate.demo.generator import generate_tickets
from lockgate.runtime import Runtime
from lockgate.settings import load_settings
from lockgate.store.tables import audit_log
from tests.cli.kit import lockgate
from tests.watch.demo_kit import SETUP, sealed_gate


def test_spot_checks_move_live_accuracy_and_retrain_ships_a_gated_shadow_release(
    tmp_path: Path, database_url: str
) -> None:
    root = tmp_path / "demo"
    run = lambda *args, **kw: lockgate(*args, cwd=root, database=database_url, **kw)  # noqa: E731
    root.mkdir()
    run("init", ".")
    (root / "tasks" / "routing.yaml").write_text(
        (root / "tasks" / "routing.yaml").read_text() + SETUP
    )
    gate = sealed_gate(root, database_url)
    settings = load_settings(root, database_url=database_url, environ={})
    runtime = Runtime.open(settings)
    try:
        run("train", "routing", "--data", "data/routing-train.csv")
        run("release", "create", "routing")
        run("eval", "routing", "--release", "1")
        run("release", "promote", "routing@1")

        # Live traffic: new tickets, and one whose input is a row of the sealed gate set.
        texts = [t.text for t in generate_tickets(40, seed=42, id_prefix="N")] + [gate[0].text]

        async def decide() -> None:
            try:
                loaded = runtime.release_runtime("routing")
                requests = [DecisionRequest({"text": t}, f"n{i}") for i, t in enumerate(texts)]
                await runtime.pipeline.decide_many(loaded, requests)
            finally:
                await runtime.aclose()

        asyncio.run(decide())
        _, secret = runtime.store.keys.create("alice", "reviewer", (), actor="t")
    finally:
        runtime.close()

    before = json.loads(run("accuracy", "routing", "--json").stdout)
    assert before["releases"] == [] and before["open_spot_checks"] > 10
    listed = json.loads(run("spot-checks", "list", "routing", "--json", "--api-key", secret).stdout)
    assert all(item["spot_check"] and item["route"] == "auto" for item in listed)
    corrected = [item["id"] for item in listed[:5]]
    for decision_id in corrected:  # the model was wrong about these: a person says fraud
        run("spot-checks", "correct", decision_id, "--output", '{"queue": "fraud"}',
            "--reason", "a chargeback", "--api-key", secret)  # fmt: skip
    for item in listed[5:]:
        run("spot-checks", "approve", item["id"], "--api-key", secret)

    after = json.loads(run("accuracy", "routing", "--json").stdout)
    (release,) = after["releases"]
    n = len(listed)
    assert (release["n"], release["agree"], release["spot_checks"]) == (n, n - 5, n)
    assert release["low"] < release["accuracy"] == round((n - 5) / n, 4) < release["high"]
    sealed_checked = gate[0].text in {item["input"]["text"] for item in listed}

    done = run("retrain", "routing", "--data", "data/routing-train.csv", "--json")
    figures = json.loads(done.stdout)
    assert figures["data"]["labels"]["spot_check"] == n
    assert figures["data"]["sealed_left_out"] == (1 if sealed_checked else 0)
    assert figures["release"] == {"ref": "routing@2", "created": True}
    assert figures["eval"]["dataset"] == "gate" and figures["eval"]["passed"] is True
    assert figures["eval"]["accuracy"] >= 0.7
    assert figures["shadow"] is True
    releases = run("release", "list", "routing", "--json").stdout
    stages = {r["ref"]: r["stage"] for r in json.loads(releases)}
    assert stages == {"routing@1": "live", "routing@2": "shadow"}

    settings = load_settings(root, database_url=database_url, environ={})
    runtime = Runtime.open(settings)
    try:
        with runtime.store.engine.connect() as conn:
            entries = list(
                conn.execute(
                    select(audit_log.c.subject, audit_log.c.details).where(
                        audit_log.c.action == "release.retrain"
                    )
                )
            )
        assert [e.subject for e in entries] == ["routing@2"]
        assert entries[0].details["data"]["labels"]["spot_check"] == n
        assert runtime.store.quality.profile("routing", 2) is not None
    finally:
        runtime.close()
