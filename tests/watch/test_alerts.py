"""Alerts fire once per episode, repeat, resolve, survive a restart without a duplicate notice,
stay quiet while silenced, and reach a signed webhook and a real SMTP server; on both
backends."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lockgate.decide.alert_rules import AlertRuleSpec
from lockgate.decide.decision import Decision, input_hash, new_id
from lockgate.errors import ConfigError
from lockgate.store import Store
from lockgate.testing.receiver import Receiver
from lockgate.testing.smtp import SmtpServer
from lockgate.watch import alerts
from lockgate.watch.alerts import CONDITIONS, Evaluator, Rule
from lockgate.watch.channels import (
    ChannelFailed,
    EmailChannel,
    EmailChannelSpec,
    WebhookChannel,
    WebhookChannelSpec,
    build_channels,
)
from lockgate.watch.conditions import AlertContext
from lockgate.watch.history import counts_of

SECRET = "hook-s3cret-value"
T1 = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


def decision(task: str, n: int, failed: bool, at: datetime) -> Decision:
    return Decision(
        id=new_id(),
        task=task,
        release=1,
        idempotency_key=f"{at.isoformat()}-{n}",
        input_hash=input_hash({"text": str(n)}),
        input={"text": "jane@example.com wants a refund"},
        redacted_input={"text": "[email] wants a refund"},
        output=None if failed else {"queue": "cards"},
        confidence=None if failed else 0.9,
        route="reject" if failed else "auto",
        status="failed" if failed else "decided",
        reason="every model failed: timeout" if failed else "confident",
        cost=0.0,
        latency_ms=12.0,
        created_at=at,
    )


class Clock:
    def __init__(self) -> None:
        self.now = T1

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Receiver, SmtpServer]]:
    with Receiver(secret=SECRET, path="/hooks/alerts") as receiver, SmtpServer() as smtp:
        yield receiver, smtp


@pytest.fixture(scope="module")
def store(module_database_url: str) -> Iterator[Store]:
    opened = Store(module_database_url)
    yield opened
    opened.close()


class Scene:
    """One task's decisions, its roll-up and an evaluator with a clock, as serve runs them."""

    def __init__(self, store: Store, receiver: Receiver, smtp: SmtpServer) -> None:
        self.store = store
        self.task = f"t{uuid.uuid4().hex[:10]}"
        self.clock = Clock()
        self.rule = Rule(
            name="failure_rate",
            task=self.task,
            condition=CONDITIONS["failure_rate"],
            threshold=0.05,
            window=timedelta(minutes=15),
            severity="critical",
            channels=("ops", "oncall", "log"),
            repeat=timedelta(hours=1),
            origin="test",
        )
        self.channels = build_channels(
            {
                "ops": {"type": "webhook", "url": receiver.url, "secret_env": "HOOK"},
                "oncall": {
                    "type": "email",
                    "host": smtp.host,
                    "port": smtp.port,
                    "from": "lockgate@example.com",
                    "to": ["oncall@example.com"],
                },
            },
            {"HOOK": SECRET},
        )

    def failing(self) -> Evaluator:
        """Half of the last minute's decisions failed; an evaluator that has not looked yet."""
        self.clock.now = T1
        self.traffic(failed=10, ok=10)
        return self.evaluator()

    def traffic(self, failed: int, ok: int) -> None:
        at = self.clock.now - timedelta(minutes=1)
        batch = [decision(self.task, n, n < failed, at) for n in range(failed + ok)]
        self.store.decisions.save(batch)
        while self.store.history.roll_up(lambda d, v: counts_of(d, v, {}), 500):
            pass

    def evaluator(self) -> Evaluator:
        """A fresh evaluator, as a (re)started `lockgate serve` builds it."""

        async def setup(now: datetime) -> tuple[list[Rule], list[float | None]]:
            ctx = AlertContext(now, {}, self.store.history, self.store.alerts)
            return [self.rule], alerts.measure_all([self.rule], ctx)

        return Evaluator(
            store=self.store.async_alerts,
            leases=self.store.async_leases,
            owner=f"replica-{uuid.uuid4().hex[:6]}",
            setup=setup,
            channels=self.channels,
            clock=self.clock,
        )

    def round(self, evaluator: Evaluator, minutes: float) -> list[str]:
        self.clock.now = T1 + timedelta(minutes=minutes)
        sent = asyncio.run(evaluator.round())
        return [n.kind for n in sent]

    def stop(self, evaluator: Evaluator) -> None:
        asyncio.run(self.store.async_leases.give_up(alerts.ALERTS_LEASE, evaluator.owner))

    def audited(self) -> list[str]:
        return [
            e.action for e in self.store.audit.entries(self.task) if e.action.startswith("alert.")
        ]


def hooks_of(receiver: Receiver, task: str) -> list[dict[str, object]]:
    return sorted(
        (body for body in receiver.applied.values() if body.get("task") == task),
        key=lambda body: str(body["at"]),
    )


def mails_of(smtp: SmtpServer, task: str) -> list[str]:
    return [str(m["Subject"]) for m in smtp.messages if f"] {task}:" in str(m["Subject"])]


def test_an_alert_fires_once_repeats_resolves_and_survives_a_restart(
    store: Store, servers: tuple[Receiver, SmtpServer]
) -> None:
    receiver, smtp = servers
    scene = Scene(store, receiver, smtp)
    first = scene.failing()
    assert scene.round(first, 0) == ["firing"]
    assert scene.round(first, 5) == []  # still holding, repeat not due
    # serve restarts: a new process, a new evaluator, the state from the database
    scene.stop(first)
    second = scene.evaluator()
    assert scene.round(second, 10) == []  # no duplicate of the firing notice
    scene.clock.now = T1 + timedelta(minutes=65)
    scene.traffic(failed=5, ok=5)
    assert scene.round(second, 65) == ["repeat"]
    scene.clock.now = T1 + timedelta(minutes=130)
    scene.traffic(failed=0, ok=20)
    assert scene.round(second, 130) == ["resolved"]
    assert scene.round(second, 131) == []
    scene.stop(second)

    hooks = hooks_of(receiver, scene.task)
    assert [h["kind"] for h in hooks] == ["firing", "repeat", "resolved"]
    assert [h["episode"] for h in hooks] == [1, 1, 1]
    assert hooks[0]["value"] == 0.5 and hooks[0]["threshold"] == 0.05
    assert receiver.bad_signatures == 0
    subjects = smtp.wait_for(1) and mails_of(smtp, scene.task)
    assert [s.split("]")[0] for s in subjects] == [
        "Lockgate alert [FIRING",
        "Lockgate alert [STILL FIRING",
        "Lockgate alert [RESOLVED",
    ]
    assert scene.audited() == ["alert.firing", "alert.repeat", "alert.resolved"]
    # Counts and rates only: no input, no secret, in any notice.
    everything = json.dumps(hooks) + "".join(m.as_string() for m in smtp.messages)
    assert "jane@example.com" not in everything and SECRET not in everything


def test_a_notice_a_channel_refused_is_sent_again_until_it_is_taken(
    store: Store, servers: tuple[Receiver, SmtpServer]
) -> None:
    receiver, smtp = servers
    scene = Scene(store, receiver, smtp)
    evaluator = scene.failing()
    receiver.fail_always(503)  # the webhook channel is down
    try:
        assert scene.round(evaluator, 0) == ["firing"]
        assert scene.round(evaluator, 1) == []  # still down: kept, tried again
        assert hooks_of(receiver, scene.task) == []
        assert [u.channel for u in evaluator.unsent] == ["ops"]  # email and log took it
    finally:
        receiver.fail_always(None)
    assert scene.round(evaluator, 2) == []  # back: the kept notice goes out, once
    assert [h["kind"] for h in hooks_of(receiver, scene.task)] == ["firing"]
    assert evaluator.unsent == []
    assert scene.round(evaluator, 3) == []
    assert len(hooks_of(receiver, scene.task)) == 1
    scene.stop(evaluator)


def test_a_notice_refused_for_longer_than_retry_for_is_dropped(
    store: Store, servers: tuple[Receiver, SmtpServer]
) -> None:
    receiver, smtp = servers
    scene = Scene(store, receiver, smtp)
    evaluator = scene.failing()
    evaluator.retry_for = timedelta(minutes=30)
    receiver.fail_always(503)
    try:
        assert scene.round(evaluator, 0) == ["firing"]
        assert scene.round(evaluator, 29) == [] and len(evaluator.unsent) == 1
        assert scene.round(evaluator, 31) == [] and evaluator.unsent == []  # dropped
    finally:
        receiver.fail_always(None)
    assert scene.round(evaluator, 32) == []
    assert hooks_of(receiver, scene.task) == []  # dropped means never sent late
    scene.stop(evaluator)


def test_a_silenced_rule_changes_state_but_sends_nothing(
    store: Store, servers: tuple[Receiver, SmtpServer]
) -> None:
    receiver, smtp = servers
    scene = Scene(store, receiver, smtp)
    store.alerts.silence("failure_rate", T1 + timedelta(hours=1), "ops-lead", scene.task)
    evaluator = scene.evaluator()
    scene.traffic(failed=10, ok=0)
    assert scene.round(evaluator, 0) == []
    state = store.alerts.states()[(scene.task, "failure_rate")]
    assert state.firing and state.episode == 1
    assert hooks_of(receiver, scene.task) == [] and mails_of(smtp, scene.task) == []
    # The silence and the silenced firing are both audited.
    assert scene.audited() == ["alert.silenced", "alert.firing"]
    entry = next(e for e in store.audit.entries(scene.task) if e.action == "alert.firing")
    assert entry.details["silenced"] is True
    # After the silence ends, the still-holding rule repeats as usual.
    scene.clock.now = T1 + timedelta(minutes=70)
    scene.traffic(failed=10, ok=0)
    assert scene.round(evaluator, 70) == ["repeat"]
    scene.stop(evaluator)


def test_one_replica_evaluates_at_a_time(
    store: Store, servers: tuple[Receiver, SmtpServer]
) -> None:
    receiver, smtp = servers
    scene = Scene(store, receiver, smtp)
    scene.traffic(failed=10, ok=0)
    holder, other = scene.evaluator(), scene.evaluator()
    assert scene.round(holder, 0) == ["firing"]
    assert scene.round(other, 0.5) == []  # the lease is taken: it does nothing
    scene.stop(holder)
    assert len(hooks_of(receiver, scene.task)) == 1


def test_the_webhook_is_signed_like_delivery_webhooks_and_can_speak_slack(
    servers: tuple[Receiver, SmtpServer],
) -> None:
    receiver, _ = servers
    spec = WebhookChannelSpec(type="webhook", url=receiver.url, secret_env="HOOK", format="slack")
    channel = WebhookChannel("chat", spec, {"HOOK": SECRET})
    notice = alerts.Notice(
        "firing", "latency_p95_ms", "routing", "latency_p95_ms", "above", "warning", 7300.0,
        5000.0, "15m", 3, T1, T1,
    )  # fmt: skip
    body = channel.body(notice)
    assert json.loads(body) == {"text": notice.title()}
    before = receiver.requests
    asyncio.run(channel.send(notice))
    assert receiver.requests == before + 1 and receiver.bad_signatures == 0
    assert receiver.applied[notice.key] == {"text": notice.title()}


def test_a_channel_failure_names_the_channel_never_the_secret(tmp_path: Path) -> None:
    with SmtpServer(user="lockgate", password="right-pw") as smtp:
        spec = EmailChannelSpec.model_validate(
            {
                "type": "email", "host": smtp.host, "port": smtp.port, "from": "a@example.com",
                "to": ["b@example.com"], "username": "lockgate", "password_env": "SMTP_PW",
            }
        )  # fmt: skip
        notice = alerts.Notice(
            "test", "test", "-", "test", "above", "info", 1.0, 0.0, "1m", 0, T1, T1
        )
        wrong = EmailChannel("oncall", spec, {"SMTP_PW": "wrong-pw-123"})
        with pytest.raises(ChannelFailed) as refused:
            asyncio.run(wrong.send(notice))
        assert "oncall" in refused.value.message and "wrong-pw-123" not in str(refused.value)
        assert smtp.failed_logins == 1
        right = EmailChannel("oncall", spec, {"SMTP_PW": "right-pw"})
        asyncio.run(right.send(notice))
        assert len(smtp.wait_for(1)) == 1
    hook = WebhookChannelSpec(type="webhook", url="http://127.0.0.1:9/x", secret_env="HOOK")
    with pytest.raises(ChannelFailed) as failed:
        asyncio.run(WebhookChannel("ops", hook, {"HOOK": SECRET}).send(notice))
    assert "ops" in failed.value.message and SECRET not in str(failed.value)
    with pytest.raises(ChannelFailed, match="HOOK"):
        asyncio.run(WebhookChannel("ops", hook, {}).send(notice))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(
            {"ops": {"type": "webhook", "url": "https://x.example", "secret": "inline"}},
            "lockgate.yaml: alert_channels.ops.secret",
            id="a-secret-in-the-file",
        ),
        pytest.param(
            {"ops": {"type": "pager"}}, "lockgate.yaml: alert_channels.ops", id="unknown-type"
        ),
        pytest.param(
            {"mail": {"type": "email", "host": "h", "from": "a@x.example", "to": []}},
            "lockgate.yaml: alert_channels.mail.to",
            id="no-recipient",
        ),
    ],
)
def test_a_bad_channel_is_one_line_naming_the_key(config: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        build_channels(config, {})
    assert refused.value.message.startswith(message)
    assert "\n" not in refused.value.message and "inline" not in refused.value.message


def test_rules_layer_defaults_then_lockgate_yaml_then_the_task_file() -> None:
    from lockgate.decide.task import TaskSpec

    task = TaskSpec.model_validate(
        {
            "name": "routing",
            "input": {"text": {"type": "string"}},
            "output": {"queue": {"type": "enum", "values": ["a", "b"]}},
            "models": [{"provider": "deterministic"}],
            "alerts": [
                {"condition": "latency_p95_ms", "threshold": 800, "channels": ["ops"]},
                {"name": "big-backlog", "condition": "review_backlog", "threshold": 50},
            ],
        }
    )
    global_rules = alerts.parse_rules(
        [
            {"condition": "failure_rate", "threshold": 0.02, "window": "30m"},
            {"condition": "stalled_intake", "enabled": False},
        ],
        "lockgate.yaml",
    )
    rules = {r.name: r for r in alerts.rules_for({"routing": task}, global_rules, ["ops"])}
    assert rules["failure_rate"].threshold == 0.02
    assert rules["failure_rate"].window == timedelta(minutes=30)
    assert rules["failure_rate"].origin == "lockgate.yaml"
    assert rules["latency_p95_ms"].threshold == 800 and rules["latency_p95_ms"].channels == ("ops",)
    assert rules["big-backlog"].threshold == 50 and rules["review_backlog"].threshold == 500
    assert "stalled_intake" not in rules
    assert rules["dead_letters"].origin == "default"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        pytest.param([{"condition": "failure_rate", "windw": "5m"}],
                     "lockgate.yaml: alerts.0.windw", id="misspelt-key"),
        pytest.param([{"condition": "failure_rate", "window": "soon"}],
                     "lockgate.yaml: alerts.0.window", id="bad-duration"),
        pytest.param({"condition": "failure_rate"}, "lockgate.yaml: alerts:", id="not-a-list"),
    ],
)  # fmt: skip
def test_a_bad_rule_is_one_line_naming_the_key(entries: object, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        alerts.parse_rules(entries, "lockgate.yaml")
    assert refused.value.message.startswith(message) and "\n" not in refused.value.message


def test_an_unknown_condition_or_channel_names_the_rule() -> None:
    from lockgate.decide.task import TaskSpec

    task = TaskSpec.model_validate(
        {
            "name": "routing",
            "input": {"text": {"type": "string"}},
            "output": {"queue": {"type": "string"}},
            "models": [{"provider": "deterministic"}],
        }
    )
    with pytest.raises(ConfigError, match=r"^lockgate.yaml: alerts.0.condition: unknown"):
        alerts.rules_for({"routing": task}, [AlertRuleSpec(condition="live_acuracy")], [])
    with pytest.raises(ConfigError, match=r"^lockgate.yaml: alerts.0.channels: unknown channel"):
        alerts.rules_for(
            {"routing": task}, [AlertRuleSpec(condition="failure_rate", channels=("pager",))], []
        )
