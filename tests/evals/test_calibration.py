"""Calibration: the Clopper-Pearson bound, the lowest passing threshold, and `lockgate
calibrate` creating (or refusing to create) a release with it."""

from __future__ import annotations

import asyncio
import csv
import json
import shlex
from pathlib import Path

import pytest
from scipy.stats import beta

from lockgate.decide.records import write_records
from lockgate.decide.task import parse_task
from lockgate.errors import ConfigError
from lockgate.evals.calibration import (
    ANSWER_COLUMN,
    CONFIDENCE_COLUMN,
    ROW_COLUMN,
    ConfidentError,
    clopper_pearson_lower,
    error_table,
    pick_threshold,
)
from lockgate.evals.datasets import read_datasets
from lockgate.evals.scorers import Scored, ScoringContext
from tests.cli.kit import lockgate
from tests.evals.kit import EVAL_TASK, make_project, project_runtime, write_rows


@pytest.mark.parametrize(
    ("successes", "trials", "confidence", "expected"),
    [
        pytest.param(10, 10, 0.95, 0.05 ** (1 / 10), id="all-right-closed-form"),
        pytest.param(60, 60, 0.95, 0.05 ** (1 / 60), id="all-right-60"),
        pytest.param(5, 10, 0.95, 0.2224, id="half-of-10"),  # two-sided 90% CP: 0.2224-0.7776
        pytest.param(0, 25, 0.95, 0.0, id="none-right"),
        pytest.param(1, 1, 0.5, 0.5, id="one-of-one-at-50pct"),
    ],
)
def test_the_clopper_pearson_lower_bound_matches_known_values(
    successes: int, trials: int, confidence: float, expected: float
) -> None:
    assert clopper_pearson_lower(successes, trials, confidence) == pytest.approx(expected, abs=1e-4)


def test_the_bound_rises_with_more_evidence_and_falls_with_more_confidence() -> None:
    assert clopper_pearson_lower(98, 100, 0.95) < clopper_pearson_lower(980, 1000, 0.95)
    assert clopper_pearson_lower(98, 100, 0.99) < clopper_pearson_lower(98, 100, 0.95)
    assert clopper_pearson_lower(98, 100, 0.95) < 0.98


TASK = parse_task(
    {
        "name": "t",
        "input": {"text": {"type": "string"}},
        "output": {"label": {"type": "enum", "values": ["a", "b"]}},
        "models": [{"provider": "deterministic"}],
    },
    "tasks/t.yaml",
)


def scored(confidence: float, right: bool, eligible: bool = True) -> Scored:
    return Scored(
        expected={"label": "a"},
        output={"label": "a" if right else "b"},
        confidence=confidence,
        route="auto",
        status="decided",
        eligible=eligible,
    )


def brute_force_lowest(items: list[Scored], target: float, confidence: float) -> float | None:
    passing = []
    for t in {i.confidence for i in items if i.eligible}:
        chosen = [i for i in items if i.eligible and i.confidence >= t]  # type: ignore[operator]
        k = sum(i.output["label"] == "a" for i in chosen)  # type: ignore[index]
        bound = beta.ppf(1 - confidence, k, len(chosen) - k + 1) if k else 0.0
        if bound >= target:
            passing.append(t)
    return min(passing) if passing else None


def test_the_lowest_threshold_whose_bound_reaches_the_target_is_picked() -> None:
    items = [
        *[scored(0.99, True) for _ in range(40)],
        *[scored(0.9, True) for _ in range(40)],
        *[scored(0.8, i % 10 != 0) for i in range(40)],  # 4 of 40 wrong
        *[scored(0.6, i % 2 == 0) for i in range(40)],  # half wrong
        *[scored(0.3, False, eligible=False) for _ in range(40)],  # a rule: never automated
    ]
    context = ScoringContext(TASK, "label")
    chosen, considered = pick_threshold(items, context, target=0.9, confidence=0.95)
    assert chosen is not None
    assert chosen.threshold == brute_force_lowest(items, 0.9, 0.95) == 0.8
    assert (chosen.automated, chosen.correct, chosen.total) == (120, 116, 200)
    assert chosen.coverage == 0.6
    assert chosen.lower_bound == pytest.approx(beta.ppf(0.05, 116, 5))
    assert [t.threshold for t in considered] == [0.99, 0.9, 0.8, 0.6]


def test_no_threshold_is_picked_when_the_target_is_out_of_reach() -> None:
    items = [scored(0.95, True) for _ in range(50)]  # 50/50: bound 0.942 at 95%
    chosen, considered = pick_threshold(items, ScoringContext(TASK, "label"), 0.95, 0.95)
    assert chosen is None
    assert considered[0].lower_bound == pytest.approx(0.05 ** (1 / 50))


# The kit's model answers "card" rows `cards` at 0.95, "pay" rows `payments` at 0.7 and "hello"
# rows `other` at 0.6; the hello rows are labeled payments, so 0.6 brings in 20 wrong answers.
CALIBRATION = [
    *[(f"card {i}", "cards") for i in range(60)],
    *[(f"pay {i}", "payments") for i in range(60)],
    *[(f"hello {i}", "payments") for i in range(20)],
    *[(f"stolen {i}", "fraud") for i in range(10)],  # a rule sends fraud to review
]


def calibration_project(
    tmp_path: Path, database: str | None = None, rows: list[tuple[str, str]] = CALIBRATION
) -> Path:
    project = make_project(tmp_path)
    write_rows(project / "calib.csv", rows)
    lockgate("release", "create", "routing", cwd=project, database=database)
    lockgate("dataset", "add", "routing", "calib", "calib.csv", cwd=project, database=database)
    return project


def test_calibrate_creates_a_release_with_the_lowest_passing_threshold(
    tmp_path: Path, database_url: str
) -> None:
    project = calibration_project(tmp_path, database_url)
    result = lockgate(
        "calibrate", "routing", "--release", "routing@1", "--target-accuracy", "0.97",
        cwd=project, database=database_url,
    )  # fmt: skip
    # 0.95: 60/60 (bound 0.951, short of 0.97); 0.7: 120/120 (bound 0.975); 0.6: 120/140.
    bound = 0.05 ** (1 / 120)
    assert (
        f"at >=97.0% accuracy (95% lower bound {bound:.1%}, observed 100.0%), 80.0% of inputs "
        "are automated at threshold 0.700 (120 of 150 on calib)"
    ) in result.stdout
    assert "created routing@2 with auto_min_confidence 0.7000" in result.stdout
    shown = json.loads(lockgate("release", "show", "routing@2", cwd=project,
                                database=database_url).stdout)  # fmt: skip
    assert shown["spec"]["policy"]["auto_min_confidence"] == 0.7
    assert shown["spec"]["policy"]["review_when"] == [{"field": "queue", "equals": "fraud"}]
    with project_runtime(project, database_url) as runtime:
        first, second = runtime.store.releases.list_for("routing")
        assert second.artifacts == first.artifacts
        assert second.content_hash != first.content_hash
        (entry,) = [e for e in runtime.store.audit.entries("routing")
                    if e.action == "policy.calibrate"]  # fmt: skip
        assert entry.subject == "routing@2"
        assert entry.details["threshold"] == 0.7
        assert entry.details["source"] == "routing@1"
        assert entry.details["lower_bound"] == pytest.approx(bound)
        assert entry.details["coverage"] == pytest.approx(0.8)
    # The new release automates exactly what calibration counted.
    figures = json.loads(lockgate("eval", "routing", "--release", "2", "--dataset", "calib",
                                  "--json", cwd=project, database=database_url).stdout)  # fmt: skip
    assert figures["coverage"] == pytest.approx(0.8)
    assert figures["auto_accuracy"] == 1.0


def test_calibrate_creates_nothing_when_no_threshold_reaches_the_target(
    tmp_path: Path, database_url: str
) -> None:
    project = calibration_project(tmp_path, database_url)
    result = lockgate(
        "calibrate", "routing", "--release", "routing@1", "--target-accuracy", "0.99",
        cwd=project, database=database_url, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "no threshold reaches 99.0% accuracy at 95% confidence on calib" in result.stderr
    assert "no release created" in result.stderr
    with project_runtime(project, database_url) as runtime:
        assert len(runtime.store.releases.list_for("routing")) == 1
        assert not [e for e in runtime.store.audit.entries() if e.action == "policy.calibrate"]


def test_calibrating_on_the_gate_dataset_is_refused_with_the_reason(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/lockgate.db"
    project = calibration_project(tmp_path, database)
    refused = pytest.raises(ConfigError, match="is the gate dataset of routing: calibrating on")
    with project_runtime(project, database) as runtime, refused:
        asyncio.run(
            runtime.eval_service().calibrate("routing", release="1", target=0.9, dataset="gate")
        )


def test_the_suggested_next_eval_runs_as_printed_without_a_gate_dataset(
    tmp_path: Path, database_url: str
) -> None:
    project = make_project(tmp_path, EVAL_TASK.replace("  gate_dataset: gate\n", ""))
    write_rows(project / "calib.csv", CALIBRATION)
    write_rows(project / "holdout.csv", CALIBRATION[::3])
    run = lambda *a: lockgate(*a, cwd=project, database=database_url)  # noqa: E731
    run("release", "create", "routing")
    run("dataset", "add", "routing", "calib", "calib.csv")
    run("dataset", "add", "routing", "holdout", "holdout.csv", "--sealed")

    result = run("calibrate", "routing", "--release", "routing@1", "--target-accuracy", "0.97")

    (suggested,) = [line for line in result.stdout.splitlines() if line.startswith("next: ")]
    assert suggested == "next: lockgate eval routing --release routing@2 --dataset holdout"
    evaluated = run(*shlex.split(suggested.removeprefix("next: "))[1:])
    assert "routing@2 on holdout (sealed" in evaluated.stdout


def test_calibrate_writes_the_threshold_into_the_task_file_keeping_its_layout(
    tmp_path: Path,
) -> None:
    commented = EVAL_TASK.replace(
        "  auto_min_confidence: 0.8\n", "  auto_min_confidence: 0.8   # set by calibrate\n"
    ).replace("policy:\n", "# who may automate what\npolicy:\n")
    project = make_project(tmp_path, commented)
    write_rows(project / "calib.csv", CALIBRATION)
    lockgate("release", "create", "routing", cwd=project)
    lockgate("dataset", "add", "routing", "calib", "calib.csv", cwd=project)

    result = lockgate("calibrate", "routing", "--release", "1", "--target-accuracy", "0.97",
                      cwd=project)  # fmt: skip

    assert "created routing@2 with auto_min_confidence 0.7000" in result.stdout
    assert (
        "wrote auto_min_confidence 0.7000 into tasks/routing.yaml (was 0.8), so the next "
        "`lockgate release create` keeps it"
    ) in result.stdout
    # Only the value changed: comments, order and spacing are as they were.
    assert (project / "tasks/routing.yaml").read_text() == commented.replace(
        "auto_min_confidence: 0.8   #", "auto_min_confidence: 0.7   #"
    )
    again = lockgate("release", "create", "routing", cwd=project)
    assert "unchanged: routing@2 already has this content" in again.stdout


def test_release_create_warns_when_its_policy_differs_from_the_live_release(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path)
    write_rows(project / "calib.csv", CALIBRATION)
    lockgate("release", "create", "routing", cwd=project)
    lockgate("dataset", "add", "routing", "calib", "calib.csv", cwd=project)
    lockgate("calibrate", "routing", "--release", "1", "--target-accuracy", "0.97", cwd=project)
    lockgate("release", "promote", "routing@2", cwd=project)
    (project / "tasks/routing.yaml").write_text(EVAL_TASK)  # the threshold edited away again

    result = lockgate("release", "create", "routing", cwd=project)

    assert "unchanged: routing@1" in result.stdout
    assert (
        "warning: the policy of routing@1 differs from the live routing@2's: "
        "auto_min_confidence 0.7 -> 0.8; promoting routing@1 changes it. To keep the live value, "
        "write it into tasks/routing.yaml and run `lockgate release create routing` again"
    ) in result.stderr


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_an_errors_list_is_labeled_data_that_relabels_its_rows(tmp_path: Path, fmt: str) -> None:
    task = parse_task(
        {
            "name": "t",
            "input": {"text": {"type": "string"}, "answer": {"type": "string"}},
            "output": {
                "label": {"type": "enum", "values": ["a", "b"]},
                "amount": {"type": "number"},
            },
            "models": [{"provider": "deterministic"}],
        },
        "tasks/t.yaml",
    )
    original = tmp_path / f"data.{fmt}"
    write_records(
        original,
        [{"text": f"row {i}", "answer": "x", "label": "a", "amount": i / 2} for i in range(4)],
        ["text", "answer", "label", "amount"],
        fmt,
    )
    rows = read_datasets(task, [original])[0]
    errors = [ConfidentError(rows[2], "b", 0.97), ConfidentError(rows[0], "b", 0.9)]

    columns, listed = error_table(errors, "label", task)
    assert columns == [ROW_COLUMN, "label", ANSWER_COLUMN, CONFIDENCE_COLUMN, "amount", "text",
                       "answer"]  # fmt: skip
    assert [list(r) for r in listed] == [columns, columns]
    listed[0]["label"] = "b"  # the reviewer's correction of row 3; row 1's label stands
    reviewed = tmp_path / f"errors.{fmt}"
    write_records(reviewed, listed, columns, fmt)

    again, (report,) = read_datasets(task, [original, reviewed])
    assert [(r.seq, r.expected) for r in again] == [
        (1, {"label": "a", "amount": 0.0}),
        (2, {"label": "a", "amount": 0.5}),
        (3, {"label": "b", "amount": 1.0}),
        (4, {"label": "a", "amount": 1.5}),
    ]
    assert (report.repeated, report.changed, report.added) == (2, 1, 0)


# Two "card" rows labeled payments: the kit's model answers them `cards` at 0.95, above any
# threshold, so each one counts against every threshold.
MISLABELED = [
    *CALIBRATION[:30],
    ("card 90", "payments"),
    *CALIBRATION[30:],
    ("card 91", "payments"),
]


def test_calibrate_names_the_automated_rows_that_disagree_with_their_label(
    tmp_path: Path, database_url: str
) -> None:
    project = calibration_project(tmp_path, database_url, MISLABELED)
    run = lambda *a, **k: lockgate(*a, cwd=project, database=database_url, **k)  # noqa: E731
    calibrate = ("calibrate", "routing", "--release", "1", "--target-accuracy", "0.9")

    told = run(*calibrate)
    assert "observed 98.4%), 80.3% of inputs are automated at threshold 0.700 (122 of 152" in (
        told.stdout
    )  # 120 right of 122
    assert (
        "2 of the 122 rows automated at 0.700 disagree with their label; a wrong label among "
        "them lowers what the target automates: check them with --errors FILE"
    ) in told.stdout

    listed = run(*calibrate, "--errors", "out/errors.csv")
    assert "wrote 2 of the 122 rows automated at 0.700 that disagree with their label to " in (
        listed.stdout
    )
    # How to apply the reviewed list; the calibration set is not trained on, so not "train".
    assert "(lockgate dataset add routing calib FILE out/errors.csv) and calibrate again" in (
        listed.stdout
    )
    with (project / "out/errors.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    # The row numbers are the file's: row 31 is the first data row after 30 others. Each row
    # is the dataset's (label under the field's name), with the model's answer beside it.
    assert list(rows[0]) == ["dataset.row", "queue", "model.answer", "model.confidence", "text"]
    assert [(r["dataset.row"], r["text"], r["queue"], r["model.answer"]) for r in rows] == [
        ("31", "card 90", "payments", "cards"),
        ("152", "card 91", "payments", "cards"),
    ]
    assert [float(r["model.confidence"]) for r in rows] == [0.95, 0.95]

    # Where no threshold qualifies, the rows at the closest one are named on stderr.
    short = run(*calibrate[:-1], "0.995", "--errors", "errors.jsonl", check=False)
    assert short.returncode == 1
    assert "wrote 2 of the " in short.stderr
    lines = (project / "errors.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["dataset.row"] for line in lines] == [31, 152]

    # The reviewer corrects the one label that is wrong and adds the dataset again with the
    # reviewed file after it: row 31 is relabelled in place, row 152 keeps its label.
    rows[0]["queue"] = "cards"
    write_records(project / "out/errors.csv", rows, list(rows[0]), "csv")
    added = run("dataset", "add", "routing", "calib", "calib.csv", "out/errors.csv")
    assert (
        "out/errors.csv: relabelled 2 row(s) read before (1 label(s) changed), added 0 new row(s)"
    ) in added.stdout
    assert "added dataset routing/calib: 152 rows" in added.stdout
    with project_runtime(project, database_url) as runtime:
        stored = runtime.store.datasets
        by_seq = {r.seq: r for r in stored.rows(stored.get("routing", "calib"))}
    assert (by_seq[31].input["text"], by_seq[31].expected) == ("card 90", {"queue": "cards"})
    assert (by_seq[152].input["text"], by_seq[152].expected) == ("card 91", {"queue": "payments"})
    again = run(*calibrate)
    assert "1 of the 122 rows automated at 0.700 disagrees with their label" in again.stdout

    # An unknown file type is refused before anything is decided.
    refused = run(*calibrate, "--errors", "errors.txt", check=False)
    assert refused.returncode == 2
    assert "errors.txt: unknown file type .txt" in refused.stderr
    with project_runtime(project, database_url) as runtime:
        assert len(runtime.store.releases.list_for("routing")) == 2  # routing@2, created once


def test_an_errors_file_that_cannot_be_written_leaves_the_calibration_standing(
    tmp_path: Path,
) -> None:
    project = calibration_project(tmp_path, rows=MISLABELED)
    (project / "taken").write_text("a file, not a folder\n")

    result = lockgate("calibrate", "routing", "--release", "1", "--target-accuracy", "0.9",
                      "--errors", "taken/errors.csv", cwd=project)  # fmt: skip

    assert "warning: could not write taken/errors.csv" in result.stderr
    assert "the rest stands" in result.stderr
    assert "created routing@2 with auto_min_confidence 0.7000" in result.stdout
