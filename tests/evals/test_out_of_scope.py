"""Out-of-scope rows (expected `__out_of_scope__`): accepted in datasets for any enum output,
counted by `eval --json` (`oos_n`, `oos_caught`, an automated one is an error in
`auto_accuracy`, left out of accuracy and the per-label figures), weighed by `calibrate` and
gated by `min_oos_caught`. The out-of-scope texts are other tasks' texts (the demo's off-topic
tickets' kind), answered by the shipped deterministic provider as any text is."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lockgate.decide.task import OUT_OF_SCOPE
from lockgate.evals.calibration import clopper_pearson_lower
from tests.cli.kit import lockgate
from tests.evals.kit import EVAL_TASK, make_project, model_answer, write_rows

# Other tasks' texts. Those that happen to contain a keyword the model knows get a confident
# in-scope answer (the dangerous case); the others get the 0.6 hash answer (review).
OTHER_TASKS = [
    "reset the password of my email account",
    "book a table for two at eight",
    "the printer on floor 3 is jammed",
    "cancel my gym membership",
    "card game rules for bridge",  # "card": cards at 0.95, automated: an error
    "pay rise negotiation tips",  # "pay": payments at 0.7, review
]
IN_SCOPE = [
    *[(f"card {i} declined", "cards") for i in range(6)],
    ("card blocked at the till", "payments"),  # auto, wrong
    *[(f"pay bill {i}", "payments") for i in range(4)],
    *[(f"stolen wallet {i}", "fraud") for i in range(2)],
]
ROWS = [*IN_SCOPE, *[(text, OUT_OF_SCOPE) for text in OTHER_TASKS]]


def independent() -> dict[str, float]:
    """The figures counted straight from the rows and the model's known answers."""
    decided = []
    for text, label in ROWS:
        known = model_answer(text)
        out, conf = known if known else ("(hash)", 0.6)
        auto = out != "fraud" and conf >= 0.8  # a rule sends fraud to review
        decided.append((label, out, auto))
    inside = [d for d in decided if d[0] != OUT_OF_SCOPE]
    outside = [d for d in decided if d[0] == OUT_OF_SCOPE]
    automated = [d for d in decided if d[2]]
    return {
        "n": len(ROWS),
        "oos_n": len(outside),
        "oos_caught": sum(not auto for _, _, auto in outside) / len(outside),
        "accuracy": sum(label == out for label, out, _ in inside) / len(inside),
        "coverage": len(automated) / len(ROWS),
        "auto_accuracy": sum(label == out for label, out, _ in automated) / len(automated),
        "in_scope_coverage": sum(auto for _, _, auto in inside) / len(inside),
    }


@pytest.fixture
def project(tmp_path: Path, database_url: str) -> Path:
    gate_task = EVAL_TASK.replace(
        "  calibration_dataset: calib\n",
        "  calibration_dataset: calib\n  gate: {min_oos_caught: 0.9}\n",
    )
    project = make_project(tmp_path, gate_task)
    write_rows(project / "gate.csv", ROWS)
    lockgate("release", "create", "routing", cwd=project, database=database_url)
    lockgate("dataset", "add", "routing", "gate", "gate.csv", "--sealed", cwd=project,
             database=database_url)  # fmt: skip
    return project


def test_eval_counts_out_of_scope_rows_as_an_independent_count_does(
    project: Path, database_url: str
) -> None:
    result = lockgate("eval", "routing", "--json", cwd=project, database=database_url)
    figures = json.loads(result.stdout)
    expected = independent()
    for key, value in expected.items():
        assert figures[key] == pytest.approx(value), key
    assert OUT_OF_SCOPE not in figures["per_label"]
    assert sum(v["support"] for v in figures["per_label"].values()) == len(IN_SCOPE)


def test_the_gate_requires_min_oos_caught(project: Path, database_url: str) -> None:
    lockgate("eval", "routing", "--json", cwd=project, database=database_url)
    refused = lockgate("release", "promote", "routing@1", cwd=project, database=database_url,
                       check=False)  # fmt: skip
    assert refused.returncode != 0
    assert "min_oos_caught" in refused.stdout + refused.stderr


def test_a_label_that_is_neither_a_value_nor_the_reserved_one_is_still_refused(
    project: Path, database_url: str
) -> None:
    write_rows(project / "bad.csv", [("card 1", "__out_of_scope")])
    result = lockgate("dataset", "add", "routing", "bad", "bad.csv", cwd=project,
                      database=database_url, check=False)  # fmt: skip
    assert result.returncode != 0
    assert "is not one of the field's values" in result.stdout + result.stderr


def calibrated_on(
    project: Path, rows: list[tuple[str, str]], database_url: str
) -> subprocess.CompletedProcess[str]:
    """`lockgate calibrate` of the task's first release at a 90% target, on `rows` added as
    the calibration dataset."""
    write_rows(project / "calib.csv", rows)
    lockgate("release", "create", "routing", cwd=project, database=database_url)
    lockgate("dataset", "add", "routing", "calib", "calib.csv", cwd=project,
             database=database_url)  # fmt: skip
    return lockgate("calibrate", "routing", "--release", "routing@1", "--target-accuracy",
                    "0.9", cwd=project, database=database_url)  # fmt: skip


def test_calibrate_counts_an_automated_out_of_scope_row_as_an_error(
    tmp_path: Path, database_url: str
) -> None:
    project = make_project(tmp_path)
    rows = [
        *[(f"card {i}", "cards") for i in range(40)],
        *[(f"pay {i}", "payments") for i in range(40)],
        *[(f"card trick {i}", OUT_OF_SCOPE) for i in range(2)],  # cards at 0.95: wrong
    ]
    result = calibrated_on(project, rows, database_url)
    # Independently: at 0.7, 82 automated with 80 right (the two out-of-scope rows are wrong).
    bound = clopper_pearson_lower(80, 82, 0.95)
    assert (
        f"(95% lower bound {bound:.1%}, observed {80 / 82:.1%}), 100.0% of inputs are "
        "automated at threshold 0.700 (82 of 82 on calib)"
    ) in result.stdout
    # Without them 80 of 80 would reach 0.95; with them no threshold does.
    assert clopper_pearson_lower(80, 80, 0.95) >= 0.95 > bound
    refused = lockgate("calibrate", "routing", "--release", "routing@1", "--target-accuracy",
                       "0.95", cwd=project, database=database_url, check=False)  # fmt: skip
    assert "no threshold reaches 95.0% accuracy" in refused.stdout + refused.stderr


def test_calibrate_never_counts_a_row_judged_out_of_scope_as_automated(
    tmp_path: Path, database_url: str
) -> None:
    """A model may judge an input out of scope and still be sure of an answer: the decision goes
    to review whatever the threshold, so calibrate must not count it as automated, and it says
    how many rows labelled in scope no threshold can automate, and which setting moves that."""
    sure_but_unknown = '{if_contains: "weather", output: {queue: other}, confidence: 0.99, '
    task = EVAL_TASK.replace(
        "    answers:\n",
        f'    answers:\n      - {sure_but_unknown}out_of_scope: "off-topic"}}\n',
    )
    project = make_project(tmp_path, task)
    rows = [
        *[(f"card {i}", "cards") for i in range(40)],
        *[(f"weather report {i}", "other") for i in range(5)],  # in scope, judged out of it
        *[(f"weather today {i}", OUT_OF_SCOPE) for i in range(2)],  # judged so, rightly
    ]
    result = calibrated_on(project, rows, database_url)
    # Independently: only the 40 card rows can be automated (0.95, all right); the seven
    # weather rows go to review as out of scope, although the model answers them at 0.99.
    assert "threshold 0.950 (40 of 47 on calib)" in result.stdout
    assert (
        "5 of the 47 rows (10.6%) have an answer but were judged out of scope, so no threshold "
        "automates them: an embedding-classifier's in_scope_pass"
    ) in result.stdout
    decided = lockgate("decide", "routing", "--release", "routing@2", "--input",
                       '{"text": "weather report 1"}', cwd=project,
                       database=database_url)  # fmt: skip
    assert json.loads(decided.stdout)["route"] == "review"
