"""Drift: a release's reference profile made at `lockgate release create`, and `lockgate drift`
comparing the stored decisions of a window with it, on both backends; the PSI itself."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lockgate.decide.decision import input_hash
from lockgate.decide.pipeline import DecisionRequest
from lockgate.demo.generator import generate_tickets
from lockgate.evals.types import DatasetRow
from lockgate.runtime import Runtime
from lockgate.server.history import alert_context, alert_rules
from lockgate.settings import load_settings
from lockgate.testing.shifts import stream
from lockgate.watch.drift import PSI_DRIFT, noise, psi
from tests.cli.kit import lockgate, make_project

#: Answers by keyword; every other ticket gets a queue picked by its hash, at 0.9.
DRIFT_TASK = """\
name: routing
input:
  text: {type: string, max_length: 4000}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - provider: deterministic
    confidence: 0.9
    answers:
      - {if_contains: "stolen", output: {queue: fraud}, confidence: 0.97}
      - {if_contains: "card", output: {queue: cards}, confidence: 0.85}
      - {if_contains: "transfer", output: {queue: payments}, confidence: 0.7}
policy:
  auto_min_confidence: 0.8
evaluation:
  gate_dataset: gate
"""


def test_psi_is_zero_for_one_distribution_and_grows_with_the_shift() -> None:
    same = psi([0.5, 0.3, 0.2], 1000, [0.5, 0.3, 0.2], 1000)
    assert same == pytest.approx(0.0, abs=1e-9)
    small = psi([0.5, 0.3, 0.2], 1000, [0.45, 0.33, 0.22], 1000)
    large = psi([0.5, 0.3, 0.2], 1000, [0.2, 0.3, 0.5], 1000)
    assert 0 < small < 0.1 < PSI_DRIFT < large
    # A bin the reference never saw stays finite (half a count of smoothing).
    assert math.isfinite(psi([1.0, 0.0], 2000, [0.8, 0.2], 1000))
    # The allowance for sampling noise shrinks as windows grow.
    assert noise(10, 2000, 1000) < noise(10, 2000, 100)


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[tuple[Path, Runtime]]:
    """routing@1 live with its profile made by `lockgate release create` from 400 rows of the
    gate dataset (tickets from the demo generator)."""
    root = make_project(tmp_path_factory.mktemp("drift") / "project", DRIFT_TASK)
    settings = load_settings(root, database_url=module_database_url, environ={})
    runtime = Runtime.open(settings)
    rows = [
        DatasetRow(i, {"text": t.text}, {"queue": "other"}, input_hash({"text": t.text}))
        for i, t in enumerate(generate_tickets(400, seed=11, id_prefix="G"))
    ]
    runtime.store.datasets.add("routing", "gate", rows, sealed=True, source=None, actor="test")
    created = lockgate("release", "create", "routing", cwd=root, database=module_database_url)
    assert "reference profile of routing@1: 400 rows of gate" in created.stderr
    runtime.store.releases.promote("routing", 1, "test")
    try:
        yield root, runtime
    finally:
        runtime.close()


def decide(runtime: Runtime, texts: list[str], tag: str) -> None:
    async def main() -> None:
        try:
            loaded = runtime.release_runtime("routing")
            requests = [DecisionRequest({"text": t}, f"{tag}-{i}") for i, t in enumerate(texts)]
            await runtime.pipeline.decide_many(loaded, requests)
        finally:
            await runtime.aclose()

    asyncio.run(main())


def drift_json(root: Path, url: str, *args: str) -> dict:  # type: ignore[type-arg]
    answer = lockgate("drift", "routing", "--json", *args, cwd=root, database=url)
    return json.loads(answer.stdout)  # type: ignore[no-any-return]


def test_the_profile_holds_labels_confidences_and_the_text_field(
    project: tuple[Path, Runtime],
) -> None:
    _, runtime = project
    profile = runtime.store.quality.profile("routing", 1)
    assert profile is not None
    assert profile["n"] == 400 and profile["source"]["dataset"] == "gate"
    assert set(profile["labels"]["queue"]) <= {"cards", "payments", "fraud", "other"}
    assert sum(profile["labels"]["queue"].values()) == pytest.approx(1.0)
    assert sum(profile["confidence"]["shares"]) == pytest.approx(1.0)
    text = profile["fields"]["text"]
    assert text["kind"] == "text" and len(text["length"]["edges"]) >= 5
    assert 0 <= text["oov"]["mean"] < 0.5
    # The reference sample's accuracy against the dataset's expected outputs (all "other").
    assert profile["accuracy"]["field"] == "queue" and profile["accuracy"]["n"] > 0


def test_a_window_from_the_same_distribution_is_not_drift_and_a_new_language_is(
    project: tuple[Path, Runtime], module_database_url: str
) -> None:
    root, runtime = project
    decide(runtime, stream(300, seed=21), "same")
    report = drift_json(root, module_database_url, "--window", "300")
    assert report["task"] == "routing" and report["release"] == "routing@1"
    assert report["window"]["n"] == 300
    names = {s["name"] for s in report["signals"]}
    assert {"output.queue", "confidence", "input.text.length", "input.text.oov"} <= names
    assert all(set(s) >= {"name", "value", "threshold", "verdict"} for s in report["signals"])
    assert report["verdict"] != "drift", report

    # The last 300 decisions: 40% written in another language.
    decide(runtime, stream(300, seed=22, shift="language", share=0.4), "shifted")
    report = drift_json(root, module_database_url, "--window", "300")
    assert report["verdict"] == "drift"
    oov = next(s for s in report["signals"] if s["name"] == "input.text.oov")
    assert oov["verdict"] == "drift" and oov["value"] >= oov["threshold"]
    assert oov["rate"] > oov["reference_rate"]

    table = lockgate("drift", "routing", "--window", "300", cwd=root, database=module_database_url)
    assert "verdict DRIFT" in table.stdout and "input.text.oov" in table.stdout


def test_a_window_in_hours_and_a_bad_window(
    project: tuple[Path, Runtime], module_database_url: str
) -> None:
    root, runtime = project
    decide(runtime, stream(60, seed=23), "hours")
    report = drift_json(root, module_database_url, "--window", "2h")
    assert report["window"]["hours"] == 2.0 and report["window"]["n"] > 0
    bad = lockgate(
        "drift", "routing", "--window", "soon", cwd=root, database=module_database_url, check=False
    )
    assert bad.returncode != 0
    assert bad.stderr.startswith("error: --window 'soon' is not a window")


def test_a_release_without_a_profile_says_how_to_make_one(
    tmp_path: Path, database_url: str
) -> None:
    task = DRIFT_TASK.replace("evaluation:\n  gate_dataset: gate\n", "")
    root = make_project(tmp_path / "project", task)
    created = lockgate("release", "create", "routing", cwd=root, database=database_url)
    assert "no reference profile for routing@1" in created.stderr
    lockgate("release", "promote", "routing@1", cwd=root, database=database_url)
    answer = lockgate("drift", "routing", cwd=root, database=database_url, check=False)
    assert answer.returncode != 0
    assert "routing@1 has no reference profile" in answer.stderr


def test_the_drift_alert_condition_holds_on_a_shifted_window_only(
    tmp_path: Path, database_url: str
) -> None:
    root = make_project(tmp_path / "project", DRIFT_TASK)
    settings = load_settings(root, database_url=database_url, environ={})
    runtime = Runtime.open(settings)
    try:
        rows = [
            DatasetRow(i, {"text": t.text}, {"queue": "other"}, input_hash({"text": t.text}))
            for i, t in enumerate(generate_tickets(300, seed=12, id_prefix="G"))
        ]
        runtime.store.datasets.add("routing", "gate", rows, sealed=True, source=None, actor="t")
        lockgate("release", "create", "routing", cwd=root, database=database_url)
        runtime.store.releases.promote("routing", 1, "test")
        rules = {r.name: r for r in alert_rules(runtime)}
        assert rules["drift"].condition.name == "drift"  # a default rule of every task
        day = timedelta(days=1)

        def level() -> float | None:
            ctx = alert_context(runtime, runtime.tasks(), datetime.now(UTC))
            return rules["drift"].condition.measure(ctx, "routing", day)

        assert level() is None  # no decisions yet: nothing to judge
        decide(runtime, stream(200, seed=31), "same")
        assert level() in (0.0, 1.0)
        decide(runtime, stream(300, seed=32, shift="language", share=0.6), "shifted")
        assert level() == 2.0  # drift: past the rule's threshold of 1.5
        assert rules["drift"].threshold == 1.5
    finally:
        runtime.close()
