"""Messy files in a folder: every record ends decided, duplicate (linked) or quarantined with a
reason, and a replay after fixing the mapping decides the quarantined ones exactly once."""

from __future__ import annotations

from pathlib import Path

from lockgate.testing.messy import write_messy_folder
from tests.cli.kit import lockgate
from tests.intake.kit import (
    assert_accounted,
    decision_keys,
    prepare,
    quarantine,
    query,
    set_sources,
    show,
)

SOURCE = """\
  - name: inbox
    kind: folder
    path: inbox/
    stable_s: 0
    key: "{{id}}"
    map:
      text: {{from: [text{alias}]}}
    dedupe: {{by: content, window: 7d}}
"""


def test_every_messy_record_is_decided_duplicate_or_quarantined_and_replay_decides_once(
    tmp_path: Path, database_url: str
) -> None:
    project = prepare(tmp_path / "p", database_url, SOURCE.format(alias=""))
    manifest = write_messy_folder(project / "inbox")

    lockgate("intake", "run", "--once", cwd=project, database=database_url)

    counts = show(project, database_url, "inbox")
    assert counts["records"] == manifest.records_in
    assert_accounted(counts)
    assert counts["duplicates"] >= manifest.duplicates_at_least
    assert len(decision_keys(database_url)) == counts["decided"]
    held = quarantine(project, database_url)
    assert len(held) == counts["quarantined"]
    assert all(item["reason"] and item["position"] for item in held)
    renamed = [h for h in held if h["position"].startswith("03-renamed.csv")]
    assert len(renamed) == manifest.renamed
    assert {h["reason"] for h in renamed} == {"missing required field text (looked for: text)"}
    for name in ("07-broken.xlsx",):
        assert any(h["position"].startswith(name) for h in held), name
    first_keys = [r[0] for r in query(database_url, "select first_key from intake_duplicates")]
    assert len(first_keys) == counts["duplicates"]
    assert set(first_keys) <= set(decision_keys(database_url)), "every duplicate is linked"
    processed = sorted(p.name for p in (project / "inbox" / "processed").iterdir())
    assert "06-empty.csv" in processed and "03-renamed.csv.report.json" in processed
    assert [p.name for p in (project / "inbox" / "failed").iterdir()] == [
        "07-broken.xlsx",
        "07-broken.xlsx.report.json",
    ]

    set_sources(project, SOURCE.format(alias=", body"))
    lockgate("quarantine", "replay", "--source", "inbox", cwd=project, database=database_url)
    lockgate("quarantine", "replay", "--source", "inbox", cwd=project, database=database_url)

    after = show(project, database_url, "inbox")
    assert_accounted(after)
    assert after["records"] == manifest.records_in
    assert after["decided"] == counts["decided"] + manifest.renamed
    assert after["quarantined"] == counts["quarantined"] - manifest.renamed
    keys = decision_keys(database_url)
    assert len(keys) == len(set(keys)) == after["decided"]
    assert {f"inbox:c{i}" for i in range(manifest.renamed)} <= set(keys)
