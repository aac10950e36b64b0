"""Budget alerts: a task whose spending reaches its budget's soft share sends one notice to a
signed webhook, reaching the limit sends a critical one, and both resolve when the limit is
raised or the period resets; measured through the same assembly `lockgate serve` uses, on both
backends."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from lockgate.cli.watch import prometheus_rules
from lockgate.decide.decision import utcnow
from lockgate.decide.guards import Spent
from lockgate.runtime import Runtime
from lockgate.server.history import alert_rules, measure
from lockgate.settings import load_settings
from lockgate.testing.receiver import Receiver
from lockgate.watch.alerts import Evaluator, Rule
from lockgate.watch.channels import build_channels
from tests.cli.kit import make_project
from tests.watch.test_alerts import hooks_of

SECRET = "budget-hook-secret"
TASK = """\
name: routing
input:
  text: {type: string}
output:
  queue: {type: enum, values: [cards, other]}
models:
  - {provider: openai, model: paid-model}
budget:
  per_day: {calls: LIMIT}
  soft_at: 0.6
  on_hard_limit: refuse
alerts:
  - {name: budget_soft, condition: budget_used, channels: [ops]}
  - {name: budget_hard, condition: budget_used, channels: [ops], severity: critical}
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(secret=SECRET, path="/hooks/alerts") as started:
        yield started


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_budget_alerts_fire_at_the_soft_share_and_the_limit_and_resolve(
    tmp_path: Path, database_url: str, receiver: Receiver
) -> None:
    project = make_project(tmp_path / "p", TASK.replace("LIMIT", "5"))
    (project / "lockgate.yaml").write_text(
        f"alert_channels:\n  ops: {{type: webhook, url: '{receiver.url}', secret_env: HOOK}}\n"
    )
    settings = load_settings(project, database_url=database_url, environ={"HOOK": SECRET})
    runtime = Runtime.open(settings)
    clock = Clock(utcnow())

    async def setup(now: datetime) -> tuple[list[Rule], list[float | None]]:
        return measure(runtime, now)

    evaluator = Evaluator(
        store=runtime.store.async_alerts,
        leases=runtime.store.async_leases,
        owner=f"test-{uuid.uuid4().hex[:6]}",
        setup=setup,
        channels=build_channels(settings.alert_channels, {"HOOK": SECRET}),
        clock=clock,
    )

    def spend(calls: int) -> None:
        async def go() -> None:
            spec = runtime.task("routing")
            grant = await runtime.budgets.reserve(spec, [0.0] * calls)
            assert len(grant.holds) == calls
            await runtime.budgets.settle(spec, [Spent(h, 0.0) for h in grant.holds])

        asyncio.run(go())

    def round_() -> list[tuple[str, str]]:
        async def go() -> list[tuple[str, str]]:
            try:
                return [(n.rule, n.kind) for n in await evaluator.round()]
            finally:
                await runtime.aclose()

        return asyncio.run(go())

    def limit(calls: int) -> None:
        (project / "tasks" / "routing.yaml").write_text(TASK.replace("LIMIT", str(calls)))

    try:
        rules = {r.name: r for r in alert_rules(runtime)}
        # The soft rule takes its threshold from the budget's soft_at, though the task file
        # names only its channel.
        assert rules["budget_soft"].threshold == 0.6 and rules["budget_soft"].severity == "warning"
        assert rules["budget_hard"].threshold == 1.0 and rules["budget_hard"].severity == "critical"
        exported = prometheus_rules(list(rules.values()))
        assert 'max(lockgate_budget_used_ratio{scope="routing"}) >= 0.6' in exported
        assert 'max(lockgate_budget_used_ratio{scope="routing"}) >= 1' in exported
        if shutil.which("promtool"):  # Debian's prometheus package, as the export test uses
            (tmp_path / "rules.yml").write_text(exported)
            check = subprocess.run(
                ["promtool", "check", "rules", str(tmp_path / "rules.yml")],
                capture_output=True,
                text=True,
            )
            assert check.returncode == 0, check.stdout + check.stderr

        spend(2)  # 2 of 5 calls: 0.4
        assert round_() == []
        spend(1)  # 3 of 5: the soft share
        assert round_() == [("budget_soft", "firing")]
        assert round_() == []  # one notice per episode
        spend(2)  # 5 of 5: the limit
        assert round_() == [("budget_hard", "firing")]

        limit(50)  # the limit raised: 5 of 50
        assert sorted(round_()) == [("budget_hard", "resolved"), ("budget_soft", "resolved")]

        limit(5)  # lowered again: both fire, a second episode
        assert sorted(round_()) == [("budget_hard", "firing"), ("budget_soft", "firing")]
        clock.now = clock.now + timedelta(days=1)  # the day's period resets
        assert sorted(round_()) == [("budget_hard", "resolved"), ("budget_soft", "resolved")]
    finally:
        runtime.close()

    hooks = hooks_of(receiver, "routing")
    soft = [h for h in hooks if h["rule"] == "budget_soft"]
    assert [(h["kind"], h["episode"], h["severity"]) for h in soft] == [
        ("firing", 1, "warning"),
        ("resolved", 1, "warning"),
        ("firing", 2, "warning"),
        ("resolved", 2, "warning"),
    ]
    assert soft[0]["value"] == pytest.approx(0.6) and soft[0]["threshold"] == 0.6
    hard = [h for h in hooks if h["rule"] == "budget_hard"]
    assert [h["severity"] for h in hard] == ["critical"] * 4
    assert hard[0]["value"] == pytest.approx(1.0)
    assert receiver.bad_signatures == 0
