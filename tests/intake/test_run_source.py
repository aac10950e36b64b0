"""`lockgate run` as an intake source: a task file that declares a source of kind `run` gets
the file's records mapped (aliases, coercion), de-duplicated by content (answered with the
first decision) and, when they cannot be mapped, held in quarantine, with the keys, the
resume, the header check, the summary and the output file of `lockgate run`. Both backends."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.kit import lockgate
from tests.intake.kit import assert_accounted, decision_keys, prepare, quarantine, show

RUN = """\
  - name: run
    kind: run
    map:
      text: {from: [text, body]}
      amount: {type: number, decimal: ","}
    dedupe: {by: content, window: 7d}
"""
FILE = (
    "ticket,Body,amount\n"
    'T1,my card was stolen,"12,50"\n'
    'T2,  my card was stolen ,"12,50"\n'  # the same content once trimmed
    "T3,,1\n"  # no text: held in quarantine
    'T4,payment failed twice,"3,0"\n'
)


def test_run_maps_dedupes_and_quarantines_and_a_second_run_decides_nothing_again(
    tmp_path: Path, database_url: str
) -> None:
    project = prepare(tmp_path / "p", database_url, RUN)
    (project / "tickets.csv").write_text(FILE)
    run = lambda *a: lockgate(*a, cwd=project, database=database_url)  # noqa: E731

    first = json.loads(
        run(
            "run", "routing", "tickets.csv", "--run-id", "r1", "--out", "out.jsonl", "--json"
        ).stdout
    )
    assert (first["total"], first["new"], first["already_decided"]) == (4, 2, 1)
    assert (first["duplicates"], first["quarantined"]) == (1, 1)
    assert first["failures"][0]["reason"].startswith("quarantined: missing required field text")
    lines = [json.loads(line) for line in (project / "out.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == ["1", "2", "3", "4"]
    assert [line["status"] for line in lines] == ["decided", "decided", "quarantined", "decided"]
    assert lines[0]["output"] == lines[1]["output"] == {"queue": "fraud"}
    assert sorted(decision_keys(database_url)) == ["run:r1:1", "run:r1:4"]
    [held] = quarantine(project, database_url)
    assert (held["source"], held["position"]) == ("run", "tickets.csv@r1 row 3")

    again = json.loads(run("run", "routing", "tickets.csv", "--run-id", "r1", "--json").stdout)
    assert (again["new"], again["already_decided"], again["quarantined"]) == (0, 3, 1)
    assert sorted(decision_keys(database_url)) == ["run:r1:1", "run:r1:4"]
    assert len(quarantine(project, database_url)) == 1  # the same record, held once
    counts = show(project, database_url, "run")
    assert (counts["decided"], counts["quarantined"]) == (2, 2)
    assert_accounted(counts)


def test_a_file_without_any_mapped_name_of_a_required_field_is_refused_before_deciding(
    tmp_path: Path, database_url: str
) -> None:
    project = prepare(tmp_path / "p", database_url, RUN)
    (project / "tickets.csv").write_text("ticket,subject\nT1,card stolen\n")
    refused = lockgate(
        "run", "routing", "tickets.csv", cwd=project, database=database_url, check=False
    )
    assert refused.returncode == 2
    assert "no column for the task's required input field text (looked for: text, body)" in (
        refused.stderr
    )
    assert decision_keys(database_url) == []
