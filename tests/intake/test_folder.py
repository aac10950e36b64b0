"""The folder source: only complete files are taken, each is moved with a report beside it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.cli.kit import lockgate_command
from tests.intake.kit import decision_keys, drop, folder_source, intake_once, prepare


def test_a_file_still_being_written_waits_until_it_is_stable(
    tmp_path: Path, database_url: str
) -> None:
    project = prepare(
        tmp_path / "p", database_url, folder_source().replace("stable_s: 0", "stable_s: 60")
    )
    drop(project, "new.csv", "text\nhello\n")
    drop(project, "old.csv", "text\nolder\n")
    old = time.time() - 120
    os.utime(project / "inbox" / "old.csv", (old, old))
    (report,) = intake_once(project, database_url)
    assert report["decided"] == 1
    assert (project / "inbox" / "new.csv").exists(), "a file changed in the last 60 s waits"
    assert (project / "inbox" / "processed" / "old.csv").exists()


def test_with_ready_marker_only_files_with_a_done_marker_are_taken(
    tmp_path: Path, database_url: str
) -> None:
    project = prepare(tmp_path / "p", database_url, folder_source(ready="marker"))
    drop(project, "a.jsonl", '{"text": "first"}\n')
    drop(project, "b.jsonl", '{"text": "second"}\n')
    drop(project, "b.jsonl.done", "")
    intake_once(project, database_url)
    assert (project / "inbox" / "a.jsonl").exists()
    assert sorted(p.name for p in (project / "inbox" / "processed").iterdir()) == [
        "b.jsonl",
        "b.jsonl.done",
        "b.jsonl.report.json",
    ]
    assert len(decision_keys(database_url)) == 1


def test_the_report_beside_a_processed_file_counts_its_records(
    tmp_path: Path, database_url: str
) -> None:
    project = prepare(tmp_path / "p", database_url, folder_source())
    drop(project, "a.csv", "text,amount\nhello,1\n,2\nhi,x\n")
    intake_once(project, database_url)
    report = json.loads((project / "inbox" / "processed" / "a.csv.report.json").read_text())
    assert {k: report[k] for k in ("records", "decided", "duplicates", "quarantined")} == {
        "records": 3,
        "decided": 1,
        "duplicates": 0,
        "quarantined": 2,
    }
    assert report["encoding"] == "utf-8"


def test_a_record_with_nan_or_a_lone_surrogate_is_quarantined_and_kept(
    tmp_path: Path, database_url: str
) -> None:
    project = prepare(tmp_path / "p", database_url, folder_source())
    lines = ['{"text": "fine"}', '{"text": "x", "amount": NaN}', '{"text": "bad \\ud800 text"}']
    drop(project, "a.jsonl", "\n".join(lines) + "\n")
    (report,) = intake_once(project, database_url)
    assert (report["decided"], report["quarantined"]) == (1, 2)


def test_intake_run_keeps_polling_until_ctrl_c(tmp_path: Path, database_url: str) -> None:
    project = prepare(tmp_path / "p", database_url, folder_source())
    (project / "inbox").mkdir()
    command = lockgate_command("intake", "run", "--interval", "0.2", "--database", database_url)
    process = subprocess.Popen(
        command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(1)
        drop(project, "late.csv", "text\narrived while running\n")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not decision_keys(database_url):
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert decision_keys(database_url) == ["inbox:late.csv:1"]
    assert process.returncode == 0, err
    assert "stopped; every committed batch is kept" in err and "Traceback" not in err
