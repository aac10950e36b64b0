"""Labels: every approved or corrected decision is an example `lockgate train` can learn from;
rejected decisions are left out."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lockgate.decide.records import iter_records
from lockgate.providers.classifier_training import train_classifier
from lockgate.review.labels import export_labels
from tests.review.kit import ReviewKit, review_kit


def review_some(kit: ReviewKit) -> dict[str, str]:
    """24 labeled decisions (even: approved as cards, odd: corrected to payments) and 3
    rejected ones; returns the expected label per input text."""
    alice = kit.key("alice")
    expected: dict[str, str] = {}
    for i in range(27):
        text = f"ticket {i} about my {'card' if i % 2 == 0 else 'invoice refund'}, unsure"
        decision = kit.pending(text)
        kit.reviews.claim(alice, decision.id)
        if i >= 24:
            kit.reviews.reject(alice, decision.id, "spam")
        elif i % 2 == 0:
            kit.reviews.approve(alice, decision.id)
            expected[text] = "cards"
        else:
            kit.reviews.correct(alice, decision.id, {"queue": "payments"}, "a refund")
            expected[text] = "payments"
    return expected


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_export_has_input_and_output_columns_and_leaves_rejected_out(
    tmp_path: Path, database_url: str, fmt: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        expected = review_some(kit)
        spec = kit.runtime.task("routing")
        result = export_labels(kit.runtime.store.reviews, spec, tmp_path / f"labels.{fmt}")

        assert (result.rows, result.approved, result.corrected, result.rejected_left_out) == (
            24,
            12,
            12,
            3,
        )
        assert "3 rejected decisions left out" in result.summary()
        if fmt == "csv":
            with (tmp_path / "labels.csv").open(newline="") as handle:
                rows = list(csv.DictReader(handle))
            assert list(rows[0]) == ["id", "text", "amount", "queue"]
        else:
            rows = [
                json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()
            ]
        assert {row["text"]: row["queue"] for row in rows} == expected


def test_lockgate_train_learns_from_the_exported_labels(tmp_path: Path, database_url: str) -> None:
    with review_kit(tmp_path, database_url) as kit:
        expected = review_some(kit)
        spec = kit.runtime.task("routing")
        path = tmp_path / "labels.csv"
        export_labels(kit.runtime.store.reviews, spec, path)

        report = train_classifier(spec, path, kit.runtime.settings)
        assert report.n_rows == len(expected) == len(list(iter_records(path)))
        # It learned both labels people gave (cards, and payments from the corrections) and
        # tells them apart on inputs it did not fit on.
        assert set(report.unseen_labels["queue"]) == {"fraud", "other"}
        assert report.holdout_accuracy["queue"] == 1.0
