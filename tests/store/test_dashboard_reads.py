"""The dashboard's reads (`store/dashboard.py`) give what the watch modules give over the same
rows, on both backends: cells summed per bucket in SQL equal `watch.history`'s merge, and
live accuracy from the light judgment read equals `watch.quality`'s."""

from __future__ import annotations

import functools
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

from lockgate.decide.decision import utcnow
from lockgate.server.ui.dashboard import METRICS, live_accuracy
from lockgate.store.dashboard import DashboardRepository
from lockgate.watch import history
from lockgate.watch.history import counts_of
from tests.review.kit import review_kit
from tests.watch.test_quality import SPOT_TASK, automated


def test_live_accuracy_and_history_read_for_the_dashboard_match_the_watch_modules(
    tmp_path: Path, database_url: str
) -> None:
    with review_kit(tmp_path, database_url, SPOT_TASK) as kit:
        ids = automated(kit, 8)
        kit.pending("my card was stolen")
        quality = kit.runtime.quality
        assert quality.sweep() == 8
        alice = kit.key("alice")
        downstream = kit.key("billing", "feedback", ("routing",))
        for n, decision_id in enumerate(ids[:6]):  # 4 approved, 2 rejected
            if n < 4:
                quality.judge(alice, decision_id, "approve")
            else:
                quality.judge(alice, decision_id, "reject", reason="wrong queue")
        quality.add_feedback(downstream, ids[0], False, {"queue": "fraud"})  # the check wins
        quality.add_feedback(downstream, ids[6], False, {"queue": "fraud"})
        quality.add_feedback(downstream, ids[6], True)  # the latest feedback wins
        quality.add_feedback(downstream, ids[7], False, {"queue": "fraud"})

        reads = DashboardRepository(kit.runtime.store.engine)
        expected = quality.accuracy("routing").release(1)
        got = live_accuracy(reads.judgment_counts("routing"))[1]
        assert expected is not None
        assert (got.overall.n, got.overall.agree, got.spot_checks, got.feedback) == (
            expected.overall.n, expected.overall.agree, expected.spot_checks, expected.feedback,
        )  # fmt: skip
        assert (got.overall.n, got.overall.agree) == (8, 5)
        per_bucket = reads.judgment_counts("routing", utcnow() - timedelta(hours=1), 60)
        assert sum(c.n for c in per_bucket) == 8
        assert sum(c.agree for c in per_bucket) == 5

        store = kit.runtime.store.history
        summarize = functools.partial(counts_of, label_fields={"routing": ("queue",)})
        while store.roll_up(summarize, 1000):
            pass
        store.sample_backlog()
        now = utcnow() + timedelta(minutes=1)
        start = now - timedelta(hours=2)
        for step in (60, 900, 3600):
            summed: dict[tuple[object, str, str], float] = defaultdict(float)
            for m in reads.series("routing", start, now, step, METRICS):
                summed[(m.start, m.metric, m.key)] += m.value
            merged_by_bucket: dict[tuple[object, str, str], float] = defaultdict(float)
            cells = [c for c in store.cells("routing", start, now) if c.metric in METRICS]
            grouped = defaultdict(list)
            for cell in cells:
                grouped[history.bucket_start(cell.start, step)].append(cell)
            for bucket, group in grouped.items():
                for metric, keys in history.merge(group).items():
                    for key, value in keys.items():
                        merged_by_bucket[(bucket, metric, key)] += value
            assert dict(summed) == dict(merged_by_bucket)
            assert summed  # the decisions are there
