"""`lockgate review …` and `lockgate labels export` as a reviewer runs them: the CLI acts as the
reviewer's API key, so separation of duties holds there too."""

from __future__ import annotations

import csv
import json
import re
import shlex
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from lockgate.review.service import ESCALATION_BOOST
from lockgate.store.tables import decisions
from tests.cli.kit import lockgate
from tests.review.kit import review_kit


def test_a_reviewer_claims_and_corrects_from_the_cli_with_the_key_in_the_environment(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        kit.key("alice")
        decision = kit.pending("a question about my card, unsure")
        project = kit.runtime.settings.project_dir
        monkeypatch.setenv("LOCKGATE_API_KEY", kit.secrets["alice"])

        listed = lockgate("review", "list", cwd=project, database=database_url)
        assert decision.id in listed.stdout
        lockgate("review", "claim", decision.id, cwd=project, database=database_url)
        corrected = lockgate(
            "review", "correct", decision.id, "--set", "queue=payments", "--reason", "a refund",
            cwd=project, database=database_url,
        )  # fmt: skip
        assert f"{decision.id}: corrected" in corrected.stdout
        shown = lockgate(
            "review", "show", decision.id, "--json", cwd=project, database=database_url
        )
        item = json.loads(shown.stdout)
        assert (item["status"], item["output"]) == ("corrected", {"queue": "payments"})
        assert item["verdicts"][0]["reviewer"] == "alice"
        assert [e.actor for e in kit.runtime.store.audit.entries("routing")][-1] == "alice"


def test_review_commands_refuse_to_run_without_a_valid_key(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOCKGATE_API_KEY", raising=False)
    with review_kit(tmp_path, database_url) as kit:
        project = kit.runtime.settings.project_dir
        missing = lockgate("review", "list", cwd=project, database=database_url, check=False)
        assert missing.returncode != 0
        assert "review commands act as an API key" in missing.stderr
        wrong = lockgate(
            "review", "list", "--api-key", "lg_not-a-key", cwd=project, database=database_url,
            check=False,
        )  # fmt: skip
        assert wrong.returncode != 0
        assert "unknown or revoked" in wrong.stderr


def test_the_cli_refuses_self_review_and_a_viewer(tmp_path: Path, database_url: str) -> None:
    with review_kit(tmp_path, database_url) as kit:
        admin = kit.key("ops-admin", "admin")
        kit.key("vera", "viewer")
        decision = kit.pending("my card, unsure", by=admin)
        project = kit.runtime.settings.project_dir
        for name, message in (("ops-admin", "submitted the decision"),
                              ("vera", "viewer role may not review")):  # fmt: skip
            result = lockgate(
                "review", "claim", decision.id, "--api-key", kit.secrets[name],
                cwd=project, database=database_url, check=False,
            )  # fmt: skip
            assert result.returncode != 0
            assert message in result.stderr
        assert kit.reviews.item(kit.key("alice"), decision.id).claimed_by is None


def test_labels_exported_from_the_cli_train_a_classifier(tmp_path: Path, database_url: str) -> None:
    with review_kit(tmp_path, database_url) as kit:
        alice = kit.key("alice")
        for i in range(20):
            text = f"ticket {i}: my {'card' if i % 2 else 'invoice refund'}, unsure"
            decision = kit.pending(text)
            kit.reviews.claim(alice, decision.id)
            if i % 2:
                kit.reviews.approve(alice, decision.id)
            else:
                kit.reviews.correct(alice, decision.id, {"queue": "payments"}, "a refund")
        project = kit.runtime.settings.project_dir
        out = project / "data" / "labels.csv"
        exported = lockgate(
            "labels", "export", "routing", "--out", str(out), cwd=project, database=database_url
        )
        assert "wrote 20 labels" in exported.stdout
        assert "10 approved, 10 corrected; 0 rejected decisions left out" in exported.stdout
        trained = lockgate("train", "routing", "--data", str(out), cwd=project)
        assert "trained on 20 rows" in trained.stdout


def test_the_missing_key_hint_names_a_command_that_works_as_written(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOCKGATE_API_KEY", raising=False)
    with review_kit(tmp_path, database_url) as kit:
        project = kit.runtime.settings.project_dir
        missing = lockgate("review", "list", cwd=project, database=database_url, check=False)
        (suggested,) = re.findall(r"`(lockgate keys create[^`]*)`", missing.stderr)
        created = lockgate(*shlex.split(suggested)[1:], cwd=project, database=database_url)
        secret = created.stdout.strip().splitlines()[-1]
        listed = lockgate("review", "list", "--api-key", secret, cwd=project, database=database_url)
        assert listed.returncode == 0


def test_escalate_names_each_item_it_escalated_with_its_new_priority(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        overdue = kit.pending("card stolen")  # priority 10
        fresh = kit.pending("a question about my card, unsure")
        with kit.runtime.store.engine.begin() as conn:
            conn.execute(
                update(decisions)
                .where(decisions.c.id == overdue.id)
                .values(created_at=overdue.created_at - timedelta(hours=2))
            )
        project = kit.runtime.settings.project_dir

        escalated = lockgate("review", "escalate", cwd=project, database=database_url)

        assert escalated.stdout.splitlines() == [
            f"escalated routing {overdue.id}: priority now {10 + ESCALATION_BOOST}",
            "1 item escalated",
        ]
        assert fresh.id not in escalated.stdout


def test_exported_labels_append_to_init_data_and_train_on_several_files(tmp_path: Path) -> None:
    lockgate("init", "support", cwd=tmp_path)
    project = tmp_path / "support"
    run = lambda *a, **kw: lockgate(*a, cwd=project, **kw)  # noqa: E731
    run("train", "routing", "--data", "data/routing-train.csv")
    run("release", "create", "routing")
    run("release", "promote", "routing@1")
    decided = json.loads(
        run("decide", "routing", "--input", '{"text": "My card was stolen"}').stdout
    )
    secret = run("keys", "create", "--name", "alice", "--role", "reviewer").stdout.splitlines()[-1]
    fixed = "payments" if decided["output"]["queue"] != "payments" else "cards"
    run("review", "claim", decided["id"], "--api-key", secret)
    run("review", "correct", decided["id"], "--set", f"queue={fixed}", "--reason", "not stolen",
        "--api-key", secret)  # fmt: skip
    run("labels", "export", "routing", "--out", "data/labels.csv")

    train_file = (project / "data/routing-train.csv").read_text().splitlines()
    labels = (project / "data/labels.csv").read_text().splitlines()
    assert labels[0] == train_file[0] == "id,text,queue"
    assert labels[1] == f"{decided['id']},My card was stolen,{fixed}"

    with (project / "data/routing-train.csv").open(newline="") as handle:
        texts = [row["text"].strip() for row in csv.DictReader(handle)]
    repeated = len(texts) - len(set(texts))  # the example data repeats a few tickets
    trained = run("train", "routing", "--data", "data/routing-train.csv", "--data",
                  "data/labels.csv")  # fmt: skip
    assert f"{len(set(texts)) + 1} rows from 2 files ({repeated} with the same input" in (
        trained.stderr
    )
    assert f"trained on {len(set(texts)) + 1} rows" in trained.stdout
    folder = run("train", "routing", "--data", "data")
    assert f"trained on {len(set(texts)) + 1} rows" in folder.stdout


def test_review_list_has_a_header_and_a_masked_truncated_preview_of_the_input(
    tmp_path: Path,
) -> None:
    with review_kit(tmp_path, f"sqlite:///{tmp_path}/db.sqlite") as kit:
        kit.key("alice")
        text = "my card was stolen, write to jane.doe@example.com " + "and more words " * 10
        decision = kit.pending(text)
        project = kit.runtime.settings.project_dir
        listed = lockgate("review", "list", "--api-key", kit.secrets["alice"], cwd=project,
                          database=f"sqlite:///{tmp_path}/db.sqlite")  # fmt: skip
    header, row = listed.stdout.splitlines()
    assert header.split()[:4] == ["ID", "TASK", "PRIO", "STATUS"]
    assert header.endswith("INPUT (PERSONAL DATA MASKED)")
    assert row.startswith(decision.id)
    assert "jane.doe@example.com" not in row
    preview = json.loads(row[row.index('"my card') :])
    assert preview.startswith("my card was stolen, write to ") and preview.endswith("…")
    assert len(preview) == 60


def test_a_correction_that_changes_nothing_is_refused_not_turned_into_an_approval(
    tmp_path: Path,
) -> None:
    database = f"sqlite:///{tmp_path}/db.sqlite"
    with review_kit(tmp_path, database) as kit:
        kit.key("alice")
        decision = kit.pending("a question about my card, unsure")
        project = kit.runtime.settings.project_dir
        run = lambda *a: lockgate(*a, "--api-key", kit.secrets["alice"], cwd=project,  # noqa: E731
                                  database=database, check=False)  # fmt: skip
        run("review", "claim", decision.id)
        same = ",".join(f"{k}={v}" for k, v in (decision.output or {}).items())
        refused = run("review", "correct", decision.id, "--set", same, "--reason", "looks off")
        assert refused.returncode != 0
        assert "error: the correction changes nothing" in refused.stderr
        assert "hint: approve it if it is right" in refused.stderr
        shown = json.loads(run("review", "show", decision.id, "--json").stdout)
        assert (shown["status"], shown["verdicts"]) == ("pending_review", [])
