"""Spans for each pipeline stage and model attempt, carrying ids and never input text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lockgate.monitor.telemetry import build_observer
from lockgate.monitor.tracing import build_tracing
from lockgate.settings import Settings
from lockgate.testing.fault_server import Fault, FaultServer
from tests.monitor.kit import TASK, deterministic_model, observed_kit
from tests.pipeline_kit import MODEL, openai_model, rules_model

STAGES = {"idempotency", "intake", "model_chain", "policy", "commit"}
TEXT = "please move my card limit, ticket written by Alice Example"


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        running.set_default(Fault.logprobs(-0.01))
        yield running


def test_tracing_is_off_without_an_endpoint(tmp_path: Path) -> None:
    settings = Settings(project_dir=tmp_path, database_url="sqlite://")

    assert build_tracing(settings) is None
    assert build_observer(settings).tracing is None


def test_tracing_exports_by_otlp_when_an_endpoint_is_set(tmp_path: Path) -> None:
    settings = Settings(
        project_dir=tmp_path, database_url="sqlite://", otlp_endpoint="http://127.0.0.1:9"
    )

    tracing = build_tracing(settings)

    assert tracing is not None
    tracing.shutdown()


def test_each_stage_is_a_child_span_of_the_batch(database_url: str, tmp_path: Path) -> None:
    with observed_kit(database_url, tmp_path, [deterministic_model()]) as observed:
        decision = observed.kit.decide(TEXT)

        spans = {s.name: s for s in observed.finished_spans()}
        batch = spans["decide_batch"]
        assert batch.attributes is not None
        assert batch.attributes["lockgate.task"] == TASK
        assert batch.attributes["lockgate.release"] == 1
        assert batch.parent is None
        for stage in STAGES:
            assert spans[stage].parent is not None, stage
            assert spans[stage].parent.span_id == batch.context.span_id, stage
        attempt = spans["model_attempt"]
        assert attempt.attributes is not None
        assert attempt.attributes["lockgate.decision_id"] == decision.id
        assert attempt.attributes["lockgate.provider"] == "deterministic"
        assert attempt.context.trace_id == batch.context.trace_id


def test_attempt_spans_carry_provider_model_and_error_class(
    database_url: str, tmp_path: Path, server: FaultServer
) -> None:
    models = [openai_model(retries=0), rules_model(pattern=".")]
    with observed_kit(database_url, tmp_path, models, server_url=server.url) as observed:
        server.set_default(Fault.status(500))

        decision = observed.kit.decide(TEXT)

        attempts = [
            dict(s.attributes or {}) for s in observed.finished_spans() if s.name == "model_attempt"
        ]
        assert [(a["lockgate.provider"], a.get("lockgate.error_class")) for a in attempts] == [
            ("openai", "server_error"),
            ("rules", None),
        ]
        assert attempts[0]["lockgate.model"] == MODEL
        assert {a["lockgate.decision_id"] for a in attempts} == {decision.id}
        calls = [s for s in observed.finished_spans() if s.name == "model_call"]
        assert len(calls) == 2
        assert all(s.end_time and s.start_time and s.end_time >= s.start_time for s in calls)


def test_no_span_carries_input_text(database_url: str, tmp_path: Path, server: FaultServer) -> None:
    models = [openai_model(retries=0), rules_model(pattern=".")]
    with observed_kit(database_url, tmp_path, models, server_url=server.url) as observed:
        server.enqueue(Fault.status(500))
        observed.kit.decide(TEXT)
        observed.kit.decide(TEXT + " again")

        spans = observed.finished_spans()
        assert len(spans) > 10
        for span in spans:
            values = [str(v) for v in (span.attributes or {}).values()]
            assert not any("Alice" in v or "card limit" in v for v in values), span.name
