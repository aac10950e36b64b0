"""The whole path with the real `lockgate eval`: a sealed gate dataset, evals stored by the
eval command, a worse release refused with its numbers, a better one promoted, rollback used
by the next decision."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.kit import lockgate, make_project
from tests.rollout.kit import task_yaml

GATE = """evaluation:
  gate_dataset: gate
  gate:
    min_accuracy: 0.9
    non_inferior_to_live: {metric: accuracy, margin: 0.01}
"""
KNOWS_ALL = (("stolen", "fraud"), ("card", "cards"), ("refund", "payments"), ("hello", "other"))


def test_promotion_follows_the_eval_command_from_refusal_to_rollback(
    tmp_path: Path, database_url: str
) -> None:
    root = make_project(tmp_path / "project", task_yaml(answers=KNOWS_ALL, extra=GATE))

    def run(*args: str, check: bool = True) -> tuple[int, str, str]:
        done = lockgate(*args, cwd=root, database=database_url, check=check)
        return done.returncode, done.stdout, done.stderr

    words = [
        ("my card is blocked", "cards"),
        ("stolen wallet", "fraud"),
        ("refund please", "payments"),
        ("hello there", "other"),
    ]
    rows = [f"{text} #{i},{queue}" for i in range(15) for text, queue in words]
    (root / "gate.csv").write_text("text,queue\n" + "\n".join(rows) + "\n")
    run("dataset", "add", "routing", "gate", "gate.csv", "--sealed")

    run("release", "create", "routing")  # routing@1 knows every queue
    accuracy_1 = json.loads(run("eval", "routing", "--release", "routing@1", "--json")[1])
    assert accuracy_1["accuracy"] == 1.0
    run("release", "promote", "routing@1")

    (root / "tasks" / "routing.yaml").write_text(task_yaml(extra=GATE))  # knows only fraud
    run("release", "create", "routing")
    code, _, err = run("release", "promote", "routing@2", check=False)
    assert code == 1 and "FAIL eval: routing@2 is not evaluated on the gate dataset 'gate'" in err
    worse = json.loads(run("eval", "routing", "--release", "routing@2", "--json")[1])
    assert worse["accuracy"] < 0.9
    code, _, err = run("release", "promote", "routing@2", check=False)
    assert code == 1
    figure = f"{worse['accuracy']:.6g}"
    assert f"FAIL min_accuracy = {figure} (bound 0.9)" in err
    assert f"FAIL non_inferior_to_live.accuracy = {figure} (bound 0.99)" in err

    (root / "tasks" / "routing.yaml").write_text(
        task_yaml(answers=KNOWS_ALL, confidence=0.95, extra=GATE)
    )
    run("release", "create", "routing")
    run("eval", "routing", "--release", "routing@3", "--json")
    _, out, _ = run("release", "promote", "routing@3")
    assert "pass min_accuracy = 1 (bound 0.9)" in out and "routing@3 is live" in out

    _, out, _ = run("decide", "routing", "--input", '{"text": "my card"}')
    assert json.loads(out)["release"] == "routing@3"
    run("release", "rollback", "routing")
    _, out, _ = run("decide", "routing", "--input", '{"text": "my card again"}')
    assert json.loads(out)["release"] == "routing@1"
