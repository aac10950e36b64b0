"""`lockgate eval`: figures equal a direct count, nothing is decided for real, repeats keep the
worst run, and the HTML report holds its three charts."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from lockgate.evals import service
from lockgate.evals.datasets import read_dataset
from lockgate.settings import Secret
from lockgate.store.tables import decisions, outbox
from lockgate.testing.fault_server import FaultServer
from tests.cli.kit import lockgate
from tests.evals.kit import EVAL_TASK, make_project, model_answer, project_runtime, write_rows

# (text, label): the model answers by keyword (see kit.ANSWERS); some labels disagree.
ROWS = [
    *[(f"card {i} declined", "cards") for i in range(8)],
    ("card blocked at the till", "payments"),  # auto, wrong
    *[(f"pay bill {i}", "payments") for i in range(5)],
    ("pay me back please", "other"),  # review, wrong
    *[(f"stolen wallet {i}", "fraud") for i in range(3)],
    *[(f"hello {i}", "other") for i in range(2)],
    ("hello, my card?", "cards"),  # "card" matches before "hello": auto, right
]

HEADLINE = {
    "n", "accuracy", "macro_f1", "coverage", "auto_accuracy", "review_share", "failed", "cost",
    "cost_per_decision", "latency_p50_ms", "latency_p95_ms", "schema_validity", "per_label",
}  # fmt: skip


def direct_count() -> dict[str, Any]:
    """The figures counted straight from the rows and the model's known answers."""
    answers = [(label, *model_answer(text)) for text, label in ROWS]  # type: ignore[misc]
    auto = [(label, out) for label, out, conf in answers if out != "fraud" and conf >= 0.8]
    right = sum(label == out for label, out, _ in answers)
    support = Counter(label for label, _, _ in answers)
    return {
        "n": len(ROWS),
        "accuracy": right / len(ROWS),
        "coverage": len(auto) / len(ROWS),
        "auto_accuracy": sum(label == out for label, out in auto) / len(auto),
        "review_share": (len(ROWS) - len(auto)) / len(ROWS),
        "support": dict(support),
    }


def test_eval_json_figures_equal_a_direct_count_and_no_decision_is_stored(
    tmp_path: Path, database_url: str
) -> None:
    project = make_project(tmp_path)
    write_rows(project / "gate.csv", ROWS)
    lockgate("release", "create", "routing", cwd=project, database=database_url)
    lockgate("dataset", "add", "routing", "gate", "gate.csv", "--sealed", cwd=project,
             database=database_url)  # fmt: skip
    result = lockgate("eval", "routing", "--json", cwd=project, database=database_url)
    figures = json.loads(result.stdout)  # exactly one JSON object on stdout
    assert HEADLINE | {"run_id", "release", "dataset"} <= set(figures)
    assert figures["release"] == "routing@1" and figures["dataset"] == "gate"
    expected = direct_count()
    for key in ("n", "accuracy", "coverage", "auto_accuracy", "review_share"):
        assert figures[key] == expected[key], key
    assert figures["failed"] == 0
    assert figures["schema_validity"] == 1.0
    assert figures["cost"] == 0.0
    assert {k: v["support"] for k, v in figures["per_label"].items()} == expected["support"]
    assert figures["per_label"]["cards"]["precision"] == 9 / 10  # 10 answered cards, 9 right
    assert figures["per_label"]["cards"]["recall"] == 9 / 9

    with project_runtime(project, database_url) as runtime:
        stored = runtime.store.evals.latest("routing", 1, "gate")
        assert stored is not None and stored.id == figures["run_id"]
        assert stored.metrics["accuracy"] == expected["accuracy"]
        assert stored.dataset_hash == runtime.store.datasets.get("routing", "gate").content_hash
        assert stored.report["dataset_hash"] == stored.dataset_hash
        assert stored.report["field"] == "queue"
        with runtime.store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(decisions)).scalar() == 0
            assert conn.execute(select(func.count()).select_from(outbox)).scalar() == 0
    assert not (project / "out").exists()


def test_eval_defaults_to_the_live_release_else_the_newest(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    write_rows(project / "gate.csv", ROWS)
    lockgate("release", "create", "routing", cwd=project)
    lockgate("dataset", "add", "routing", "gate", "gate.csv", cwd=project)
    newest = lockgate("eval", "routing", "--json", cwd=project)
    assert json.loads(newest.stdout)["release"] == "routing@1"
    task_file = project / "tasks/routing.yaml"
    task_file.write_text(task_file.read_text().replace("confidence: 0.8", "confidence: 0.5"))
    lockgate("release", "create", "routing", cwd=project)
    assert json.loads(lockgate("eval", "routing", "--json", cwd=project).stdout)["release"] == (
        "routing@2"
    )
    lockgate("release", "promote", "routing@1", cwd=project)
    assert json.loads(lockgate("eval", "routing", "--json", cwd=project).stdout)["release"] == (
        "routing@1"
    )


def test_eval_actor_is_stored_with_the_run_and_no_audit_entry_is_claimed(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/lockgate.db"
    project = make_project(tmp_path)
    write_rows(project / "gate.csv", ROWS)
    run = lambda *a: lockgate(*a, cwd=project, database=database)  # noqa: E731
    run("release", "create", "routing")
    run("dataset", "add", "routing", "gate", "gate.csv")
    help_text = " ".join(run("eval", "--help").stdout.split())
    assert "created_by" in help_text and "recorded in the audit log" not in help_text

    run("eval", "routing", "--actor", "ann")

    with project_runtime(project, database) as runtime:
        stored = runtime.store.evals.latest("routing", 1, "gate")
        assert stored is not None and stored.created_by == "ann"
        assert "ann" not in {e.actor for e in runtime.store.audit.entries("routing")}


def test_the_readable_report_and_the_html_report_with_its_three_charts(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    write_rows(project / "gate.csv", ROWS)
    lockgate("release", "create", "routing", cwd=project)
    lockgate("dataset", "add", "routing", "gate", "gate.csv", "--sealed", cwd=project)
    result = lockgate("eval", "routing", "--html", "report.html", cwd=project)
    assert "routing@1 on gate (sealed, 21 rows" in result.stdout
    assert f"accuracy {direct_count()['accuracy']:.3f}" in result.stdout
    assert "HTML report: report.html" in result.stdout
    page = (project / "report.html").read_text()
    for chart in ("confusion-matrix", "coverage-curve", "reliability-diagram"):
        assert f"<svg id='{chart}'" in page
    assert "<script" not in page and "src=" not in page and "<link" not in page
    assert "expected cards, decided payments" in page  # a confusion cell's label


def test_eval_refuses_a_sealed_dataset_changed_after_it_was_added(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    write_rows(project / "gate.csv", ROWS)
    database = f"sqlite:///{tmp_path}/lockgate.db"
    lockgate("release", "create", "routing", cwd=project, database=database)
    lockgate("dataset", "add", "routing", "gate", "gate.csv", "--sealed", cwd=project,
             database=database)  # fmt: skip
    with project_runtime(project, database) as runtime, runtime.store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM dataset_rows WHERE seq = 3")
    result = lockgate("eval", "routing", cwd=project, database=database, check=False)
    assert result.returncode == 2
    assert "sealed dataset 'gate' of task 'routing' was changed in the database" in result.stderr


OPENAI_TASK = """\
name: routing
input:
  text: {type: string}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - {provider: openai, model: gpt-test, retries: 0}
"""


def test_repeats_report_each_run_and_their_spread_and_keep_the_worst_figures(
    tmp_path: Path, database_url: str
) -> None:
    """The model server answers right the first time it sees a text, and wrong for three texts
    the second time: run 1 is perfect, run 2 is not."""
    asked: Counter[str] = Counter()

    def answer(body: dict[str, Any]) -> dict[str, str]:
        text = json.loads(body["messages"][1]["content"])["text"]
        asked[text] += 1
        label = text.split()[0]
        wrong = asked[text] == 2 and text.endswith(("0", "1", "2"))
        return {"queue": "other" if wrong else label}

    rows = [(f"{label} ticket {i}", label) for i in range(5) for label in ("cards", "payments")]
    project = make_project(tmp_path, OPENAI_TASK)
    write_rows(project / "gate.csv", rows)
    with (
        FaultServer(answer) as server,
        project_runtime(
            project, database_url, openai_base_url=server.url, openai_api_key=Secret("sk-test")
        ) as runtime,
    ):
        runtime.create_release("routing", "test")
        rows_read = read_dataset(runtime.task("routing"), project / "gate.csv")
        runtime.store.datasets.add("routing", "gate", rows_read, sealed=True, source=None,
                                   actor="test")  # fmt: skip

        async def run() -> service.Evaluation:
            try:
                return await runtime.eval_service().evaluate("routing", dataset="gate", repeat=2)
            finally:
                await runtime.aclose()

        done = asyncio.run(run())
    runs = done.run.report["runs"]
    assert [r["accuracy"] for r in runs] == [1.0, 0.4]  # 6 of 10 wrong: texts ending 0, 1, 2
    assert done.run.repeat == 2
    assert done.run.metrics["accuracy"] == 0.4
    assert done.run.report["worst_run"] == 1
    assert done.run.report["spread"]["accuracy"] == pytest.approx(
        {"min": 0.4, "max": 1.0, "mean": 0.7, "stdev": 0.3}
    )
    for slowest in ("latency_p50_ms", "latency_p95_ms"):
        assert done.run.metrics[slowest] == max(r[slowest] for r in runs)
    assert done.run.metrics["macro_f1"] == min(r["macro_f1"] for r in runs)
    assert done.run.metrics["coverage"] == 0.0  # no confidence from this server: all reviewed
    assert done.run.metrics["auto_accuracy"] is None


def test_the_promotion_gate_reads_the_stored_eval_a_worse_release_is_refused(
    tmp_path: Path,
) -> None:
    gate = "  gate: {min_accuracy: 0.8}\n"
    gated = EVAL_TASK.replace(
        "  calibration_dataset: calib\n", f"  calibration_dataset: calib\n{gate}"
    )
    project = make_project(tmp_path, gated)
    write_rows(project / "gate.csv", ROWS)
    lockgate("dataset", "add", "routing", "gate", "gate.csv", "--sealed", cwd=project)
    lockgate("release", "create", "routing", cwd=project)
    task_file = project / "tasks/routing.yaml"
    worse = task_file.read_text().replace("output: {queue: cards}", "output: {queue: payments}")
    task_file.write_text(worse)
    lockgate("release", "create", "routing", cwd=project)
    good = json.loads(lockgate("eval", "routing", "--release", "1", "--json", cwd=project).stdout)
    bad = json.loads(lockgate("eval", "routing", "--release", "2", "--json", cwd=project).stdout)
    assert good["accuracy"] >= 0.8 > bad["accuracy"]
    refused = lockgate("release", "promote", "routing@2", cwd=project, check=False)
    assert refused.returncode == 1
    assert f"min_accuracy = {bad['accuracy']:.4g}" in refused.stderr
    assert "routing@1 is live" in lockgate("release", "promote", "routing@1", cwd=project).stdout


def test_eval_lists_the_automated_rows_that_disagree_with_their_label(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    write_rows(project / "gate.csv", ROWS)
    lockgate("release", "create", "routing", cwd=project)
    lockgate("dataset", "add", "routing", "gate", "gate.csv", "--sealed", cwd=project)

    told = lockgate("eval", "routing", cwd=project)
    assert "1 automated row disagrees with their label: list them with --errors FILE" in (
        told.stdout
    )

    listed = lockgate("eval", "routing", "--json", "--errors", "gate-errors.jsonl", cwd=project)
    json.loads(listed.stdout)  # still exactly one JSON object on stdout
    assert "1 automated row disagrees with their label: written to gate-errors.jsonl" in (
        listed.stderr
    )
    lines = (project / "gate-errors.jsonl").read_text(encoding="utf-8").splitlines()
    # Only the automated wrong row: "pay me back please" is wrong too, but goes to review.
    assert [json.loads(line) for line in lines] == [
        {
            "dataset.row": 9,
            "queue": "payments",
            "model.answer": "cards",
            "model.confidence": 0.95,  # kit.ANSWERS: "card" rows are answered cards at 0.95
            "text": "card blocked at the till",
        }
    ]
