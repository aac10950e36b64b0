"""Prometheus metrics move as a real pipeline decides, and render as valid exposition text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lockgate.monitor.metrics import Metrics, endpoint_label
from lockgate.testing.fault_server import Fault, FaultServer
from tests.monitor.kit import TASK, deterministic_model, observed_kit
from tests.pipeline_kit import MODEL, openai_model, rules_model

CONFIDENT = -0.01


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        running.set_default(Fault.logprobs(CONFIDENT))
        yield running


def test_decisions_are_counted_by_task_release_route_and_status(
    database_url: str, tmp_path: Path
) -> None:
    with observed_kit(database_url, tmp_path, [deterministic_model()]) as observed:
        observed.kit.decide_many(["first ticket", "second ticket", "third ticket"])
        observed.kit.decide("fourth ticket")

        decided = {"task": TASK, "release": "1", "route": "auto", "status": "decided"}
        assert observed.sample("lockgate_decisions_total", **decided) == 4
        assert observed.sample("lockgate_decision_latency_seconds_count", task=TASK) == 4
        for stage in ("intake", "idempotency", "model_chain", "policy", "commit"):
            count = observed.sample("lockgate_stage_latency_seconds_count", stage=stage)
            assert count == 2, stage  # one observation per batch
        valid = {"provider": "deterministic", "outcome": "valid", "error_class": ""}
        assert observed.sample("lockgate_model_attempts_total", **valid) == 4


def test_replayed_decisions_are_not_counted_again(database_url: str, tmp_path: Path) -> None:
    with observed_kit(database_url, tmp_path, [deterministic_model()]) as observed:
        kit = observed.kit
        request = kit.request("same ticket")
        kit.run(lambda: kit.pipeline.decide(kit.runtime, request))
        kit.run(lambda: kit.pipeline.decide(kit.runtime, request))

        assert observed.total("lockgate_decisions_total") == 1


def test_bad_input_counts_a_rejection_and_no_decision(database_url: str, tmp_path: Path) -> None:
    with observed_kit(database_url, tmp_path, [deterministic_model()]) as observed:
        kit = observed.kit
        with pytest.raises(Exception, match="at most 400"):
            kit.decide("x" * 401)

        assert observed.sample("lockgate_input_rejections_total", task=TASK) == 1
        assert observed.total("lockgate_decisions_total") == 0


def test_retries_fallbacks_and_error_classes_are_counted(
    database_url: str, tmp_path: Path, server: FaultServer
) -> None:
    models = [openai_model(retries=1), rules_model(pattern=".")]
    with observed_kit(database_url, tmp_path, models, server_url=server.url) as observed:
        server.set_default(Fault.status(500))

        decision = observed.kit.decide("my card is blocked")

        assert decision.attempts[-1].provider == "rules"
        errors = {"provider": "openai", "model": MODEL, "error_class": "server_error"}
        assert observed.sample("lockgate_model_attempts_total", **errors) == 2
        assert observed.sample("lockgate_model_retries_total", provider="openai") == 1
        assert observed.sample("lockgate_fallbacks_total", task=TASK, provider="rules") == 1


def test_a_first_model_answer_is_no_fallback_and_carries_tokens_and_cost(
    database_url: str, tmp_path: Path, server: FaultServer
) -> None:
    models = [openai_model(retries=0), rules_model(pattern=".")]
    with observed_kit(database_url, tmp_path, models, server_url=server.url) as observed:
        decision = observed.kit.decide("my card is blocked")

        (valid,) = decision.attempts
        labels = {"task": TASK, "provider": "openai", "model": MODEL}
        assert observed.total("lockgate_fallbacks_total") == 0
        assert observed.sample("lockgate_tokens_total", direction="input", **labels) == (
            valid.input_tokens
        )
        assert observed.sample("lockgate_tokens_total", direction="output", **labels) == (
            valid.output_tokens
        )
        assert observed.sample("lockgate_cost_usd_total", **labels) == pytest.approx(valid.cost)


def test_invalid_outputs_count_as_validation_failures(
    database_url: str, tmp_path: Path, server: FaultServer
) -> None:
    with observed_kit(
        database_url, tmp_path, [openai_model(retries=0)], server_url=server.url
    ) as observed:
        server.set_default(Fault.content(json.dumps({"queue": "unknown-queue"})))

        decision = observed.kit.decide()

        assert decision.status == "failed"
        assert [a.outcome for a in decision.attempts] == ["invalid", "invalid"]  # and a repair
        failures = observed.sample("lockgate_validation_failures_total", provider="openai")
        assert failures == 2
        failed = {"route": "none", "status": "failed"}
        assert observed.sample("lockgate_decisions_total", **failed) == 1


def test_the_breaker_gauge_shows_open_after_consecutive_failures(
    database_url: str, tmp_path: Path, server: FaultServer
) -> None:
    model = openai_model(retries=0, breaker_failures=3, breaker_cooldown_s=10)
    with observed_kit(database_url, tmp_path, [model], server_url=server.url) as observed:
        endpoint = endpoint_label(f"openai:{server.url}:{MODEL}")
        observed.kit.decide()
        assert observed.sample("lockgate_breaker_state", endpoint=endpoint) == 0
        server.set_default(Fault.status(500))

        for _ in range(3):
            observed.kit.decide()
        assert observed.sample("lockgate_breaker_state", endpoint=endpoint) == 2
        refused = observed.kit.decide()

        assert refused.attempts[0].error_class == "breaker_open"
        breaker_open = {"provider": "openai", "error_class": "breaker_open"}
        assert observed.sample("lockgate_model_attempts_total", **breaker_open) == 1


def test_render_is_prometheus_text_with_every_family() -> None:
    metrics = Metrics()
    body, content_type = metrics.render()

    families = {f.name for f in text_string_to_metric_families(body.decode())}

    assert content_type.startswith("text/plain;")
    assert {
        "lockgate_decisions",
        "lockgate_decision_latency_seconds",
        "lockgate_stage_latency_seconds",
        "lockgate_model_attempts",
        "lockgate_model_retries",
        "lockgate_fallbacks",
        "lockgate_breaker_state",
        "lockgate_tokens",
        "lockgate_cost_usd",
        "lockgate_validation_failures",
    } <= families


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.record_input_rejected("t")

    assert b'lockgate_input_rejections_total{task="t"} 1.0' in first.render()[0]
    assert b'task="t"' not in second.render()[0]


def test_endpoint_labels_drop_credentials_in_the_address() -> None:
    label = endpoint_label("openai:https://user:s3cret@llm.example/v1:gpt")

    assert label == "openai:https://llm.example/v1:gpt"
