"""The readiness report walked on a fresh `lockgate init` project: mostly `fail`, each with a
command; following the commands it prints (only its placeholders filled in) brings every item
to `pass`. The runbook it asks for is generated on the way, and every command in the runbook
parses."""

from __future__ import annotations

import csv
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from lockgate.demo.generator import generate_tickets
from lockgate.testing.receiver import Receiver
from tests.cli.kit import lockgate
from tests.watch.runbook_kit import assert_every_command_parses

SECRET = "readiness-walk-secret"
FOLD = {"cards": "cards", "fraud": "fraud", "payments": "payments", "transfers": "payments"}


def labeled(path: Path, rows: int, seed: int, taken: set[str]) -> Path:
    """Demo tickets folded to the example task's four queues (as `lockgate init` writes its
    training data), none with the text of a row in `taken` (the training data and the other
    sets): rows the model was not trained on."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "queue"])
        written = 0
        for ticket in generate_tickets(rows * 4, seed=seed, id_prefix=f"S{seed}-"):
            if ticket.text in taken:
                continue
            taken.add(ticket.text)
            writer.writerow([ticket.text, FOLD.get(ticket.queue, "other")])
            written += 1
            if written == rows:
                break
    assert written == rows
    return path


def training_texts(project: Path) -> set[str]:
    with (project / "data" / "routing-train.csv").open(encoding="utf-8", newline="") as handle:
        return {row["text"] for row in csv.DictReader(handle)}


def report(project: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        lockgate("readiness", "routing", "--json", cwd=project).stdout
    )
    return result


def test_a_fresh_project_fails_and_the_printed_commands_make_it_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lockgate("init", "support", cwd=tmp_path)
    project = tmp_path / "support"
    monkeypatch.setenv("ALERT_HOOK_SECRET", SECRET)
    taken = training_texts(project)
    with Receiver(secret=SECRET, path="/hooks/alerts") as receiver:
        fills = {
            "FILE": str(labeled(tmp_path / "gate.csv", 300, 101, taken)),
            "CALIBRATION_FILE": str(labeled(tmp_path / "calibration.csv", 600, 102, taken)),
            "TRAINING_FILE": "data/routing-train.csv",
            "TARGET": "0.9",
            "REVIEWER_1": "ana",
            "REVIEWER_2": "ben",
            "URL": receiver.url,
            "SECRET_ENV": "ALERT_HOOK_SECRET",
            "BACKUP_FILE": str(tmp_path / "backup.db"),
        }

        first = report(project)
        statuses = [item["status"] for item in first["items"]]
        assert statuses.count("fail") > len(statuses) / 2, statuses
        for item in first["items"]:
            if item["status"] != "pass":
                assert item["commands"], item
                assert item["evidence"], item
        assert first["next"] and first["score"] < 50

        ran: list[str] = []
        current = first
        for _ in range(40):
            todo = next((i for i in current["items"] if i["status"] != "pass"), None)
            if todo is None:
                break
            for command in todo["commands"]:
                assert command not in ran[-len(todo["commands"]) :], (
                    f"{todo['name']} asks again for {command} after it ran: {todo['evidence']}"
                )
                filled = command
                for name in re.findall(r"<([A-Z_0-9]+)>", command):
                    assert name in todo["placeholders"], (name, todo)
                    filled = filled.replace(f"<{name}>", fills[name])
                words = shlex.split(filled)
                assert words[0] == "lockgate"
                lockgate(*words[1:], cwd=project)
                ran.append(command)
            current = report(project)
        else:
            pytest.fail(f"not ready after 40 steps: {current['items']}")

        assert [i["status"] for i in current["items"]] == ["pass"] * len(current["items"])
        assert current["score"] == 100 and current["next"] == []
        assert receiver.requests >= 1  # `lockgate alerts test oncall` reached the webhook
    listed = json.loads(lockgate("alerts", "list", "--json", cwd=project).stdout)
    assert listed["channels"]["oncall"]["tested_at"] is not None
    assert listed["channels"]["log"]["tested_at"] is None

    runbook = (project / "RUNBOOK-routing.md").read_text()
    assert current["live"] in runbook
    assert SECRET not in runbook and SECRET not in json.dumps(current)
    assert_every_command_parses(runbook)
    text = lockgate("readiness", "routing", "--html", str(tmp_path / "r.html"), cwd=project)
    assert "readiness 100%" in text.stdout
    assert "Readiness: routing" in (tmp_path / "r.html").read_text()


FRESH = {
    "fallback": "pass",
    "timeouts": "fail",
    "review_policy": "pass",
    "spot_checks": "fail",
    "budget": "fail",
    "retention": "fail",
    "delivery": "fail",
    "sealed_dataset": "fail",
    "calibrated": "fail",
    "live_current": "fail",
    "eval_gate": "fail",
    "rollout": "fail",
    "drift_reference": "fail",
    "reviewers": "fail",
    "alerts": "fail",
    "backup": "fail",
    "runbook": "fail",
}


def test_a_fresh_project_reads_the_same_on_both_backends(tmp_path: Path, database_url: str) -> None:
    lockgate("init", "support", cwd=tmp_path)
    project = tmp_path / "support"
    lockgate(
        "keys", "create", "--name", "ana", "--role", "reviewer", cwd=project, database=database_url
    )
    found = json.loads(
        lockgate("readiness", "routing", "--json", cwd=project, database=database_url).stdout
    )
    assert {i["name"]: i["status"] for i in found["items"]} == FRESH
    reviewers = next(i for i in found["items"] if i["name"] == "reviewers")
    assert reviewers["evidence"] == "1 key may review (ana)"
    assert found["live"] is None and found["score"] == round(100 * 2 / len(FRESH))
