"""Live accuracy: spot checks of delivered automated decisions, feedback from downstream
systems, and the accuracy of the automated share with its Wilson interval, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from lockgate.errors import Conflict, Forbidden, InputError, NotFound
from lockgate.server.history import alert_context, alert_rules
from lockgate.stats import wilson_interval
from lockgate.store.tables import audit_log, outbox
from lockgate.watch.quality import chosen_for_check
from tests.review.kit import REVIEW_TASK, ReviewKit, review_kit

#: Every automated decision is spot-checked; "stolen" goes to review, "unsure" is not sure.
SPOT_TASK = REVIEW_TASK.replace("  review_sla_minutes: 30\n", "  spot_check_rate: 1.0\n").replace(
    "    answers:\n", '    answers:\n      - {if_contains: "hello", output: {queue: cards}}\n'
)


def automated(kit: ReviewKit, n: int, text: str = "a payment went missing") -> list[str]:
    ids = []
    for i in range(n):
        decision = kit.decide(f"{text} #{i}", amount=10)
        assert decision.route == "auto" and decision.status == "decided", decision.reason
        ids.append(decision.id)
    return ids


def test_a_spot_check_is_queued_after_the_fact_and_never_touches_the_decision_or_its_delivery(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url, SPOT_TASK) as kit:
        ids = automated(kit, 3)
        reviewed = kit.pending("my card was stolen")
        before = {i: kit.runtime.store.decisions.get(i) for i in ids}
        outbox_before = kit.outbox_rows()

        assert kit.runtime.quality.sweep() == 3
        assert kit.runtime.quality.sweep() == 0  # a second sweep queues nothing twice

        alice = kit.key("alice")
        listed = kit.runtime.quality.open_checks(alice, "routing")
        open_ids = [d.id for _, d in listed]
        assert sorted(open_ids) == sorted(ids)
        for check, shown in listed:  # the decision as stored, marked as a spot check
            stored = before[shown.id]
            assert (shown.output, shown.status, shown.created_at, shown.release) == (
                stored.output, stored.status, stored.created_at, stored.release,
            )  # fmt: skip
            assert check.verdict is None and check.decided_at == stored.created_at
        assert reviewed.id not in open_ids  # only automated decisions are spot-checked
        for decision_id in ids:
            kit.runtime.quality.judge(alice, decision_id, "reject", reason="wrong queue")
            # The decision, its status and its outbox row stay exactly as they were.
            assert kit.runtime.store.decisions.get(decision_id) == before[decision_id]
            assert kit.outbox_rows(decision_id) == 1
        assert kit.outbox_rows() == outbox_before
        assert kit.runtime.quality.open_checks(alice, "routing") == []


def test_the_spot_checked_share_follows_the_rate_and_every_replica_picks_the_same(
    tmp_path: Path, database_url: str
) -> None:
    task = SPOT_TASK.replace("spot_check_rate: 1.0", "spot_check_rate: 0.3")
    with review_kit(tmp_path, database_url, task) as kit:
        ids = automated(kit, 40)
        expected = {i for i in ids if chosen_for_check(i, 0.3)}
        assert kit.runtime.quality.sweep() == len(expected)
        alice = kit.key("alice")
        picked = {d.id for _, d in kit.runtime.quality.open_checks(alice, limit=500)}
        assert picked == expected
    # The rule itself: about the rate over many ids, and never at rate 0.
    share = sum(chosen_for_check(f"{n:032x}", 0.02) for n in range(20_000)) / 20_000
    assert 0.015 < share < 0.025
    assert not any(chosen_for_check(f"{n:032x}", 0.0) for n in range(1000))


def test_spot_check_verdicts_move_live_accuracy_per_release_and_per_label(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url, SPOT_TASK) as kit:
        payments = automated(kit, 4)
        others = automated(kit, 2, text="hello there")  # the model says cards
        kit.runtime.quality.sweep()
        alice = kit.key("alice")
        report = kit.runtime.quality.accuracy("routing")
        assert report.releases == () and report.open_spot_checks == 6

        for decision_id in payments[:3]:
            kit.runtime.quality.judge(alice, decision_id, "approve")
        kit.runtime.quality.judge(
            alice, payments[3], "correct", {"queue": "fraud"}, reason="a chargeback"
        )
        kit.runtime.quality.judge(alice, others[0], "reject", reason="spam")
        kit.runtime.quality.judge(alice, others[1], "approve")

        report = kit.runtime.quality.accuracy("routing")
        release = report.release(1)
        assert release is not None
        assert (release.overall.n, release.overall.agree) == (6, 4)
        assert release.overall.interval == wilson_interval(4, 6)
        assert release.labels["payments"].agree == 3 and release.labels["payments"].n == 4
        assert (release.labels["cards"].n, release.labels["cards"].agree) == (2, 1)
        low, high = release.overall.interval
        assert low < 4 / 6 < high
        shown = report.as_dict()["releases"][0]
        assert shown["release"] == "routing@1" and shown["accuracy"] == round(4 / 6, 4)
        assert report.open_spot_checks == 0


def test_the_submitter_never_judges_its_own_decision_and_a_check_takes_one_verdict(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url, SPOT_TASK) as kit:
        admin = kit.key("ops-admin", "admin")
        decision = kit.decide("a payment went missing", by=admin, amount=1)
        kit.runtime.quality.sweep()
        assert kit.runtime.quality.open_checks(admin) == []  # not offered to its submitter
        with pytest.raises(Forbidden, match="submitted the decision"):
            kit.runtime.quality.judge(admin, decision.id, "approve")
        viewer = kit.key("vera", "viewer")
        with pytest.raises(Forbidden, match="may not review"):
            kit.runtime.quality.judge(viewer, decision.id, "approve")
        alice, bob = kit.key("alice"), kit.key("bob")
        with pytest.raises(InputError, match="is the model's output"):
            kit.runtime.quality.judge(alice, decision.id, "correct", {"queue": "payments"}, "x")
        with pytest.raises(InputError, match="reason is required"):
            kit.runtime.quality.judge(alice, decision.id, "reject")
        kit.runtime.quality.judge(alice, decision.id, "approve", reason="right")
        with pytest.raises(Conflict, match="already has a verdict"):
            kit.runtime.quality.judge(bob, decision.id, "reject", reason="no")
        with kit.runtime.store.engine.connect() as conn:
            actions = [
                row.action
                for row in conn.execute(
                    select(audit_log.c.action).where(audit_log.c.subject == decision.id)
                )
            ]
        assert actions == ["spot_check.approve"]


def test_a_decision_without_a_spot_check_cannot_be_judged_as_one(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:  # no spot_check_rate
        (decision_id,) = automated(kit, 1)
        assert kit.runtime.quality.sweep() == 0
        with pytest.raises(NotFound, match="has no spot check"):
            kit.runtime.quality.judge(kit.key("alice"), decision_id, "approve")


def test_feedback_counts_toward_live_accuracy_and_is_audited_without_its_comment(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url) as kit:
        client = kit.key("crm", "submitter")
        other = kit.key("other-client", "submitter")
        downstream = kit.key("billing", "feedback", ("routing",))
        mine = kit.decide("a payment went missing", by=client, amount=1)
        theirs = kit.decide("a payment went missing again", by=other, amount=1)
        quality = kit.runtime.quality

        quality.add_feedback(client, mine.id, False, {"queue": "fraud"}, "call ana@example.org")
        with pytest.raises(NotFound):  # another client's decision is not there for it
            quality.add_feedback(client, theirs.id, True)
        quality.add_feedback(downstream, theirs.id, True)
        with pytest.raises(Forbidden, match="may not feedback"):
            quality.add_feedback(kit.key("vera", "viewer"), theirs.id, True)
        with pytest.raises(InputError, match="output schema"):
            quality.add_feedback(downstream, theirs.id, False, {"queue": "nowhere"})
        with pytest.raises(InputError, match='goes with "correct": false'):
            quality.add_feedback(downstream, theirs.id, True, {"queue": "cards"})

        release = quality.accuracy("routing").release(1)
        assert release is not None
        assert (release.overall.n, release.overall.agree, release.feedback) == (2, 1, 2)
        (given,) = quality.feedback_of(mine.id)
        assert given.comment == "call ana@example.org" and given.output == {"queue": "fraud"}
        with kit.runtime.store.engine.connect() as conn:
            rows = list(
                conn.execute(
                    select(audit_log.c.details).where(audit_log.c.action == "decision.feedback")
                )
            )
        assert len(rows) == 2
        assert all("ana@example.org" not in str(row.details) for row in rows)
        assert rows[0].details == {"correct": False, "output_fields": ["queue"], "comment": True}
        # Feedback changes nothing about the decision or its delivery.
        assert kit.runtime.store.decisions.get(mine.id) == mine
        with kit.runtime.store.engine.connect() as conn:
            assert len(list(conn.execute(select(outbox).where(outbox.c.decision_id == mine.id))))


def test_the_live_accuracy_alert_condition_compares_the_lower_bound_with_the_target(
    tmp_path: Path, database_url: str
) -> None:
    task = SPOT_TASK + "evaluation:\n  gate:\n    min_auto_accuracy: 0.8\n"
    with review_kit(tmp_path, database_url, task) as kit:
        ids = automated_batch(kit, 60)
        kit.runtime.quality.sweep()
        rules = {r.name: r for r in alert_rules(kit.runtime)}
        condition = rules["live_accuracy"].condition
        assert (condition.comparison, rules["live_accuracy"].threshold) == ("below", 0.0)

        def value() -> float | None:
            ctx = alert_context(kit.runtime, kit.runtime.tasks(), datetime.now(UTC))
            return condition.measure(ctx, "routing", timedelta(days=7))

        alice = kit.key("alice")
        for decision_id in ids[:40]:
            kit.runtime.quality.judge(alice, decision_id, "approve")
        assert value() is None  # 40 judged: too few to judge
        for decision_id in ids[40:]:
            kit.runtime.quality.judge(alice, decision_id, "reject", reason="wrong")
        low, _ = wilson_interval(40, 60)
        assert value() == pytest.approx(low - 0.8)  # about 0.54 - 0.8: the rule fires
        assert value() < 0  # type: ignore[operator]


def automated_batch(kit: ReviewKit, n: int) -> list[str]:
    """`n` automated decisions, decided as one batch."""
    import asyncio

    from lockgate.decide.pipeline import DecisionRequest

    async def main() -> list[str]:
        try:
            loaded = kit.runtime.release_runtime("routing")
            requests = [
                DecisionRequest({"text": f"a payment went missing #{i}", "amount": 1}, f"b{i}")
                for i in range(n)
            ]
            results = await kit.runtime.pipeline.decide_many(loaded, requests)
        finally:
            await kit.runtime.aclose()
        decisions = [r.decision for r in results]
        assert all(d is not None and d.route == "auto" for d in decisions)
        return [d.id for d in decisions if d is not None]

    return asyncio.run(main())
