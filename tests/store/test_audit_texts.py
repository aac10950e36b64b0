"""Free text in the audit log (a reviewer's reason) is kept beside the hash chain, referenced by
hash: it shows in `audit list` as before, and erasing it later leaves `audit verify` passing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from lockgate.store.audit import ERASED, TEXT_REF, AuditEntry
from lockgate.store.tables import audit_log, audit_texts
from tests.cli.kit import lockgate
from tests.review.kit import ReviewKit, review_kit

REASON = "customer Jane Roe called, see ticket 4711"


@pytest.fixture
def kit(tmp_path: Path, database_url: str) -> Iterator[ReviewKit]:
    """A rejected decision whose verdict has a typed reason."""
    with review_kit(tmp_path, database_url) as opened:
        alice = opened.key("alice")
        decision = opened.pending("nothing special, unsure")
        opened.reviews.claim(alice, decision.id)
        opened.reviews.reject(alice, decision.id, REASON)
        yield opened


def verdict_entry(kit: ReviewKit) -> AuditEntry:
    (entry,) = kit.runtime.store.audit.entries(action="review.reject")
    return entry


def audit(kit: ReviewKit, *args: str) -> tuple[int, str, str]:
    root = kit.runtime.settings.project_dir
    done = lockgate("audit", *args, cwd=root, database=kit.runtime.settings.database_url)
    return done.returncode, done.stdout, done.stderr


def test_a_verdicts_reason_shows_in_the_entries_and_in_audit_list(kit: ReviewKit) -> None:
    entry = verdict_entry(kit)
    assert (entry.details["reason"], entry.erased) == (REASON, ())
    code, out, _ = audit(kit, "list", "--action", "review.reject", "--json")
    assert code == 0
    (listed,) = json.loads(out)
    assert listed["details"]["reason"] == REASON and listed["erased"] == []


def test_the_chained_entry_holds_only_a_reference_to_the_reason(kit: ReviewKit) -> None:
    with kit.runtime.store.engine.connect() as conn:
        stored = conn.execute(
            select(audit_log.c.details).where(audit_log.c.action == "review.reject")
        ).scalar_one()
    assert REASON not in json.dumps(stored)
    assert set(stored["reason"]) == {TEXT_REF} and len(stored["reason"][TEXT_REF]) == 64


def test_after_the_reason_is_erased_the_log_verifies_and_shows_it_erased(kit: ReviewKit) -> None:
    ref = verdict_entry(kit).chained["reason"][TEXT_REF]
    with kit.runtime.store.engine.begin() as conn:  # as an erasure job would
        conn.execute(
            update(audit_texts).where(audit_texts.c.hash == ref).values(text=None, salt=None)
        )
    entry = verdict_entry(kit)
    assert (entry.details["reason"], entry.erased) == (ERASED, ("reason",))
    assert kit.runtime.store.audit.first_break() is None
    code, out, err = audit(kit, "verify")
    assert (code, err) == (0, "") and "audit log intact" in out
    code, out, _ = audit(kit, "list", "--action", "review.reject", "--json")
    assert REASON not in out and json.loads(out)[0]["erased"] == ["reason"]


def test_a_deleted_text_row_also_reads_as_erased_and_the_chain_holds(kit: ReviewKit) -> None:
    with kit.runtime.store.engine.begin() as conn:
        conn.execute(audit_texts.delete())
    assert verdict_entry(kit).details["reason"] == ERASED
    assert kit.runtime.store.audit.first_break() is None


def test_the_repository_erases_a_text_once(kit: ReviewKit) -> None:
    ref = verdict_entry(kit).chained["reason"][TEXT_REF]
    assert kit.runtime.store.audit.erase_text(ref) is True
    assert kit.runtime.store.audit.erase_text(ref) is False
    assert verdict_entry(kit).details["reason"] == ERASED
    assert kit.runtime.store.audit.verify() is None


def test_a_changed_reason_text_is_detected(kit: ReviewKit) -> None:
    with kit.runtime.store.engine.begin() as conn:
        conn.execute(update(audit_texts).values(text="nothing to see here"))
    broken = kit.runtime.store.audit.first_break()
    assert broken is not None and broken.entry.action == "review.reject"
    assert "reason text does not match its hash" in broken.why


def test_a_changed_chained_field_of_an_entry_with_a_reason_is_still_detected(
    kit: ReviewKit,
) -> None:
    entry = verdict_entry(kit)
    with kit.runtime.store.engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == entry.id).values(actor="mallory"))
    broken = kit.runtime.store.audit.first_break()
    assert broken is not None and broken.entry.id == entry.id and "changed" in broken.why
