"""The file sink writes each decision once, even after a crash or a replay; the python sink
calls the function; a rejected or pending decision goes nowhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockgate.delivery.sinks.file import JsonlFile
from lockgate.testing.receiver import Receiver
from tests.delivery.kit import SECRET, project, webhook
from tests.delivery.targets import OUT_ENV

FILE = {"sink": "file", "path": "out/decisions.jsonl"}
TEXTS = [f"transfer {i}" for i in range(10)]


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_file_sink_appends_one_json_line_per_decision(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url, [FILE]) as p:
        decided = p.decide(TEXTS)
        p.drain()
        written = lines(p.root / "out/decisions.jsonl")
    # One line each; sent concurrently, so in no particular order.
    assert sorted(written, key=lambda x: x["id"]) == sorted(
        (d.public() for d in decided), key=lambda x: x["id"]
    )


def test_a_replay_to_the_file_sink_writes_no_second_line(tmp_path: Path, database_url: str) -> None:
    with project(tmp_path, database_url, [FILE]) as p:
        decided = p.decide(TEXTS)
        p.drain()
        replayed = p.runtime.store.outbox.replay("ops", decision_id=decided[3].id)
        assert [r.status for r in replayed] == ["pending"]
        assert p.drain().delivered == 1
        written = lines(p.root / "out/decisions.jsonl")
    assert sorted(x["id"] for x in written) == sorted(d.id for d in decided)


def test_after_a_crash_mid_write_the_file_holds_each_decision_once(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url, [FILE]) as p:
        decided = p.decide(TEXTS)
        # A worker wrote decision 0 and died before recording it, then died again halfway
        # through the line for decision 1.
        out = p.root / "out/decisions.jsonl"
        out.parent.mkdir()
        whole = json.dumps(decided[0].public()) + "\n"
        out.write_text(whole + json.dumps(decided[1].public())[:40])
        p.drain()
        written = lines(out)
    assert sorted(x["id"] for x in written) == sorted(d.id for d in decided)


def test_two_writers_of_one_file_never_duplicate_a_decision(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    first, second = JsonlFile(path), JsonlFile(path)
    assert first.append("a", b'{"id": "a"}\n')
    assert not second.append("a", b'{"id": "a"}\n')
    assert second.append("b", b'{"id": "b"}\n')
    assert not first.append("b", b'{"id": "b"}\n')
    assert path.read_text() == '{"id": "a"}\n{"id": "b"}\n'


@pytest.mark.parametrize("function", ["record", "record_async"])
def test_the_python_sink_calls_the_function_with_the_decision(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, function: str
) -> None:
    out = tmp_path / "called.jsonl"
    monkeypatch.setenv(OUT_ENV, str(out))
    sink = {"sink": "python", "callable": f"tests.delivery.targets:{function}"}
    with project(tmp_path, database_url, [sink]) as p:
        decided = p.decide(TEXTS[:3])
        assert p.drain().delivered == 3
    called = sorted(lines(out), key=lambda x: x["id"])
    assert called == sorted(
        ({"called": function, **d.public()} for d in decided), key=lambda x: x["id"]
    )


def test_a_python_sink_that_refuses_dead_letters_at_once_and_a_crash_keeps_no_data(
    tmp_path: Path, database_url: str
) -> None:
    sinks = [
        {"sink": "python", "callable": "tests.delivery.targets:refuse"},
        {"sink": "python", "callable": "tests.delivery.targets:crash", "max_tries": 1},
    ]
    with project(tmp_path, database_url, sinks) as p:
        (decision,) = p.decide(TEXTS[:1])
        p.drain()
        errors = {r.sink: (r.status, r.tries, r.last_error) for r in p.rows()}
    assert errors == {
        "0:python": (
            "dead",
            1,
            "tests.delivery.targets:refuse refused the decision (Undeliverable)",
        ),
        "1:python": ("dead", 1, "tests.delivery.targets:crash raised ValueError"),
    }
    assert decision.id not in str(errors)


def test_a_python_sink_that_cannot_be_imported_says_which_module(
    tmp_path: Path, database_url: str
) -> None:
    sink = {"sink": "python", "callable": "no_such_module_here:send", "max_tries": 1}
    with project(tmp_path, database_url, [sink]) as p:
        p.decide(TEXTS[:1])
        p.drain()
        (row,) = p.rows("dead")
    assert row.last_error is not None and "cannot import no_such_module_here" in row.last_error


def test_rejected_and_pending_decisions_are_never_delivered(
    tmp_path: Path, database_url: str
) -> None:
    with (
        Receiver(SECRET) as receiver,
        project(tmp_path, database_url, [webhook(receiver.url), FILE]) as p,
    ):
        rejected, pending, automated = p.decide(["", "my card was stolen", "transfer 1"])
        assert (rejected.status, pending.status) == ("rejected", "pending_review")
        assert {r.decision_id for r in p.rows()} == {automated.id}
        p.drain()
        assert list(receiver.applied) == [automated.id]
        assert [x["id"] for x in lines(p.root / "out/decisions.jsonl")] == [automated.id]
