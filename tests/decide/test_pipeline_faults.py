"""The pipeline against a fault-injecting OpenAI-compatible server on loopback.

Each test builds a real pipeline (store on SQLite and PostgreSQL, providers from a task dict)
and scripts the server's answers: errors, hangs, slow answers, broken bodies and invalid output.
Time is faked only for the retrier's sleep and the breakers' clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lockgate.decide.decision import Decision
from lockgate.decide.validation import validate_output
from lockgate.testing.fault_server import Fault, FaultServer
from tests.pipeline_kit import API_KEY, MODEL, PRICE, Kit, build_kit, openai_model, rules_model

CONFIDENT = -0.01
"""Log-probability of a confident answer (confidence 0.99, above auto_min_confidence)."""
FINAL = {"decided", "pending_review", "failed"}

MakeKit = Callable[..., Kit]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        running.set_default(Fault.logprobs(CONFIDENT))  # a valid, confident {"queue": "cards"}
        yield running


@pytest.fixture
def make_kit(database_url: str, tmp_path: Path, server: FaultServer) -> Iterator[MakeKit]:
    kits: list[Kit] = []

    def make(*models: Mapping[str, Any], **policy: Any) -> Kit:
        kit = build_kit(database_url, tmp_path, models, server_url=server.url, **policy)
        kits.append(kit)
        return kit

    yield make
    for kit in kits:
        kit.store.close()


def trail(decision: Decision) -> list[tuple[str, str, str | None, bool]]:
    """(provider, outcome, error_class, repair) for each attempt, in order."""
    return [(a.provider, a.outcome, a.error_class, a.repair) for a in decision.attempts]


def answer(queue: str) -> Fault:
    return Fault.logprobs(CONFIDENT, json.dumps({"queue": queue}))


def last_messages(server: FaultServer) -> str:
    return "\n".join(m["content"] for m in server.requests[-1]["messages"])


# ---------------------------------------------------------------- retries


def test_a_500_is_retried_and_the_second_answer_decides(
    make_kit: MakeKit, server: FaultServer
) -> None:
    kit = make_kit(openai_model(retries=2))
    server.enqueue(Fault.status(500))

    decision = kit.decide()

    assert decision.status == "decided"
    assert decision.output == {"queue": "cards"}
    assert server.request_count == 2
    assert trail(decision) == [
        ("openai", "error", "server_error", False),
        ("openai", "valid", None, False),
    ]
    assert len(kit.sleep.delays) == 1


def test_a_429_is_retried_no_sooner_than_its_retry_after(
    make_kit: MakeKit, server: FaultServer
) -> None:
    kit = make_kit(openai_model(retries=1, backoff_s=0.01))
    server.enqueue(Fault.status(429, retry_after=2))

    decision = kit.decide()

    assert decision.status == "decided"
    assert server.request_count == 2
    assert trail(decision)[0] == ("openai", "error", "rate_limited", False)
    assert len(kit.sleep.delays) == 1
    assert kit.sleep.delays[0] >= 2.0


@pytest.mark.parametrize(
    ("status", "error_class"),
    [pytest.param(400, "bad_request", id="400"), pytest.param(401, "auth", id="401")],
)
def test_a_client_error_is_not_retried_and_the_next_model_answers(
    make_kit: MakeKit, server: FaultServer, status: int, error_class: str
) -> None:
    kit = make_kit(openai_model(retries=3), rules_model())
    server.set_default(Fault.status(status))

    decision = kit.decide("my card is blocked")

    assert server.request_count == 1
    assert kit.sleep.delays == []
    assert trail(decision) == [
        ("openai", "error", error_class, False),
        ("rules", "valid", None, False),
    ]
    assert decision.output == {"queue": "cards"}
    assert decision.status == "decided"


def test_a_hanging_server_times_out_and_is_retried_per_retries(
    make_kit: MakeKit, server: FaultServer
) -> None:
    kit = make_kit(openai_model(retries=1, timeout_s=0.3), rules_model())
    server.enqueue(Fault.hang(), Fault.hang())

    decision = kit.decide("my card is blocked")

    # Both attempts reached the server (its thread may read the second after the client gave up)
    assert server.wait_for_requests(2) == 2
    assert trail(decision) == [
        ("openai", "error", "timeout", False),
        ("openai", "error", "timeout", False),
        ("rules", "valid", None, False),
    ]
    for attempt in decision.attempts[:2]:
        assert 250 <= attempt.latency_ms < 5_000
    assert decision.output == {"queue": "cards"}


def test_a_slow_answer_within_the_timeout_is_accepted(
    make_kit: MakeKit, server: FaultServer
) -> None:
    kit = make_kit(openai_model(retries=0, timeout_s=2.0))
    server.enqueue(answer("loans").after(0.2))

    decision = kit.decide()

    assert server.request_count == 1
    assert trail(decision) == [("openai", "valid", None, False)]
    assert decision.attempts[0].latency_ms >= 150
    assert decision.output == {"queue": "loans"}
    assert decision.status == "decided"


# ---------------------------------------------------------------- broken answers


def test_a_malformed_body_is_a_retryable_bad_response(
    make_kit: MakeKit, server: FaultServer
) -> None:
    kit = make_kit(openai_model(retries=1))
    server.enqueue(Fault.malformed_body())

    decision = kit.decide()

    assert server.request_count == 2
    assert trail(decision) == [
        ("openai", "error", "bad_response", False),
        ("openai", "valid", None, False),
    ]
    assert decision.status == "decided"


def test_content_that_is_not_json_is_repaired_once_with_the_problem_sent_back(
    make_kit: MakeKit, server: FaultServer
) -> None:
    kit = make_kit(openai_model(retries=0))
    server.enqueue(Fault.content("not json {"), answer("loans"))

    decision = kit.decide()

    assert server.request_count == 2
    assert "not json" not in json.dumps(server.requests[0]["messages"])
    repair_request = last_messages(server)
    assert "Your previous answer was invalid" in repair_request
    assert "not valid JSON" in repair_request
    assert trail(decision) == [
        ("openai", "invalid", None, False),
        ("openai", "valid", None, True),
    ]
    assert decision.output == {"queue": "loans"}
    assert decision.status == "decided"


def test_schema_violating_answers_twice_move_the_chain_to_the_next_model(
    make_kit: MakeKit, server: FaultServer
) -> None:
    kit = make_kit(openai_model(retries=0), rules_model(queue="other"))
    server.enqueue(
        Fault.content(json.dumps({"queue": "unknown-queue"})),
        Fault.content(json.dumps({"queue": "cards", "extra": 1})),
    )

    decision = kit.decide("my card is blocked")

    assert server.request_count == 2
    assert "queue: must be one of cards, loans, other" in last_messages(server)
    assert trail(decision) == [
        ("openai", "invalid", None, False),
        ("openai", "invalid", None, True),
        ("rules", "valid", None, False),
    ]
    assert decision.attempts[1].message is not None
    assert "1 unexpected field; allowed: queue" in decision.attempts[1].message
    assert decision.output == {"queue": "other"}  # from the rules, not from either bad answer


def test_no_unvalidated_output_is_ever_stored(make_kit: MakeKit, server: FaultServer) -> None:
    kit = make_kit(openai_model(retries=0), rules_model(pattern="(?i)card"))
    server.set_default(Fault.content(json.dumps({"queue": "unknown-queue"})))
    server.enqueue(*[answer("loans")] * 6)  # a few valid answers among the invalid ones
    texts = [f"ticket {i}: " + ("my card was declined" if i % 3 else "hello") for i in range(40)]

    decisions = kit.decide_many(texts)

    assert len({d.id for d in decisions}) == 40
    assert any(d.output is not None for d in decisions)
    assert any(d.output is None for d in decisions)
    for decision in decisions:
        assert decision.reason
        if decision.output is not None:
            assert validate_output(kit.spec, decision.output) == decision.output
            assert decision.attempts[-1].outcome == "valid"
            assert decision.status in {"decided", "pending_review"}
        else:
            assert decision.status in {"failed", "pending_review"}
            assert f"openai:{MODEL}" in decision.reason
            assert "rules" in decision.reason
            assert all(a.outcome != "valid" for a in decision.attempts)


def test_a_matching_rule_decides_even_when_another_input_in_the_batch_matches_none(
    make_kit: MakeKit,
) -> None:
    kit = make_kit(rules_model(pattern="(?i)card"))

    matched, unmatched = kit.decide_many(["my card was declined", "hello"])

    assert matched.output == {"queue": "cards"}
    assert unmatched.status == "failed"


def test_inputs_that_match_no_rule_do_not_open_the_rules_breaker(make_kit: MakeKit) -> None:
    kit = make_kit(rules_model(pattern="(?i)card", breaker_failures=2))

    for _ in range(2):
        assert kit.decide("hello").status == "failed"
    decision = kit.decide("my card was declined")

    assert decision.output == {"queue": "cards"}


# ---------------------------------------------------------------- circuit breaker


def open_the_breaker(kit: Kit, server: FaultServer) -> None:
    server.set_default(Fault.status(500))
    for _ in range(3):
        assert trail(kit.decide()) == [("openai", "error", "server_error", False)]
    assert server.request_count == 3
    assert set(kit.breakers.states().values()) == {"open"}


def breaker_model() -> dict[str, Any]:
    return openai_model(retries=0, breaker_failures=3, breaker_cooldown_s=10)


def test_the_breaker_opens_after_consecutive_failures_and_refuses_without_a_call(
    make_kit: MakeKit, server: FaultServer
) -> None:
    kit = make_kit(breaker_model())
    open_the_breaker(kit, server)

    decision = kit.decide()

    assert server.request_count == 3
    assert trail(decision) == [("openai", "error", "breaker_open", False)]
    assert decision.attempts[0].latency_ms == 0
    assert decision.status == "failed"
    assert "breaker_open" in decision.reason


def test_a_failed_half_open_probe_opens_the_breaker_again(
    make_kit: MakeKit, server: FaultServer
) -> None:
    kit = make_kit(breaker_model())
    open_the_breaker(kit, server)
    kit.clock.advance(9.9)
    assert trail(kit.decide())[0][2] == "breaker_open"
    kit.clock.advance(0.2)

    probe = kit.decide()
    refused = kit.decide()

    assert trail(probe) == [("openai", "error", "server_error", False)]
    assert trail(refused) == [("openai", "error", "breaker_open", False)]
    assert server.request_count == 4


def test_a_successful_half_open_probe_closes_the_breaker(
    make_kit: MakeKit, server: FaultServer
) -> None:
    kit = make_kit(breaker_model())
    open_the_breaker(kit, server)
    kit.clock.advance(10)
    server.set_default(Fault.logprobs(CONFIDENT))

    probe = kit.decide()
    later = [kit.decide() for _ in range(3)]

    assert probe.status == "decided"
    assert set(kit.breakers.states().values()) == {"closed"}
    assert [d.status for d in later] == ["decided"] * 3
    assert server.request_count == 3 + 1 + 3


def test_an_open_breaker_falls_back_to_the_next_model(
    make_kit: MakeKit, server: FaultServer
) -> None:
    kit = make_kit(breaker_model(), rules_model(pattern="."))
    server.set_default(Fault.status(500))
    for _ in range(3):
        kit.decide()

    decision = kit.decide()

    assert server.request_count == 3
    assert trail(decision) == [
        ("openai", "error", "breaker_open", False),
        ("rules", "valid", None, False),
    ]


# ---------------------------------------------------------------- fallback chain and records


def test_the_fallback_chain_answers_when_the_first_model_keeps_failing(
    make_kit: MakeKit, server: FaultServer
) -> None:
    kit = make_kit(openai_model(retries=1, backoff_s=0.5), rules_model())
    server.set_default(Fault.status(500))

    decision = kit.decide("my card is blocked")

    assert server.request_count == 2
    assert len(kit.sleep.delays) == 1
    assert 0 <= kit.sleep.delays[0] <= 0.5
    assert trail(decision) == [
        ("openai", "error", "server_error", False),
        ("openai", "error", "server_error", False),
        ("rules", "valid", None, False),
    ]
    first, _, last = decision.attempts
    assert (first.model, first.endpoint) == (MODEL, f"openai:{server.url}:{MODEL}")
    assert (last.model, last.endpoint) == (None, "rules:tickets")
    assert all(a.latency_ms >= 0 for a in decision.attempts)
    assert first.latency_ms > 0
    assert decision.output == {"queue": "cards"}
    assert decision.confidence == 0.9
    assert decision.status == "decided"


def test_tokens_and_cost_come_from_the_valid_attempts_usage(
    make_kit: MakeKit, server: FaultServer
) -> None:
    kit = make_kit(openai_model(retries=1))
    server.enqueue(Fault.status(503))

    decision = kit.decide()

    failed, valid = decision.attempts
    assert (failed.input_tokens, failed.output_tokens, failed.cost) == (0, 0, 0.0)
    assert valid.input_tokens > 0
    assert valid.output_tokens > 0
    assert valid.cost == pytest.approx(PRICE.cost(valid.input_tokens, valid.output_tokens))
    assert decision.cost == pytest.approx(valid.cost)


def test_when_every_model_fails_the_decision_fails_naming_each_model_and_error(
    make_kit: MakeKit, server: FaultServer
) -> None:
    kit = make_kit(openai_model(retries=0), rules_model(pattern="(?i)card"))
    server.set_default(Fault.status(500))

    decision = kit.decide("hello")

    assert decision.status == "failed"
    assert decision.output is None
    assert decision.route is None
    assert decision.reason == (
        f"every model failed: openai:{MODEL}: server_error; rules: no_rule_matched"
    )


def test_with_on_failure_review_a_total_failure_waits_for_a_person(
    make_kit: MakeKit, server: FaultServer
) -> None:
    kit = make_kit(openai_model(retries=0), on_failure="review")
    server.set_default(Fault.content("not json {"))

    decision = kit.decide()

    assert decision.status == "pending_review"
    assert decision.route == "review"
    assert decision.output is None
    assert decision.reason.startswith(f"every model failed: openai:{MODEL}: invalid output")


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault.status(500), id="500"),
        pytest.param(Fault.status(429, retry_after=1), id="429"),
        pytest.param(Fault.status(400), id="400"),
        pytest.param(Fault.content("not json {"), id="invalid-json"),
        pytest.param(Fault.content(json.dumps({"queue": "unknown-queue"})), id="schema"),
        pytest.param(answer("loans").after(0.05), id="slow-ok"),
    ],
)
def test_every_decision_ends_in_a_final_status_with_a_reason(
    make_kit: MakeKit, server: FaultServer, fault: Fault
) -> None:
    kit = make_kit(openai_model(retries=1))
    server.set_default(fault)

    decision = kit.decide()

    assert decision.status in FINAL
    assert decision.reason
    assert decision.attempts


# ---------------------------------------------------------------- secrets


def stored_text(kit: Kit) -> str:
    """Every value of every row of every table, as text."""
    metadata = sa.MetaData()
    metadata.reflect(kit.store.engine)
    lines: list[str] = []
    with kit.store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            lines.extend(repr(tuple(row)) for row in conn.execute(sa.select(table)))
    return "\n".join(lines)


def test_the_api_key_is_sent_but_never_stored(make_kit: MakeKit, server: FaultServer) -> None:
    kit = make_kit(openai_model(retries=1, timeout_s=0.3), rules_model(pattern="(?i)card"))
    faults: Sequence[Fault] = [
        Fault.status(401),
        Fault.status(500),
        Fault.status(500),
        Fault.hang(),
        Fault.malformed_body(),
        Fault.content("not json {"),
        Fault.content(json.dumps({"queue": "unknown-queue"})),
    ]
    for fault in faults:
        server.set_default(fault)
        kit.decide("hello")
        kit.decide("my card")

    headers = server.request_headers
    assert headers and all(h["Authorization"] == f"Bearer {API_KEY}" for h in headers)
    text = stored_text(kit)
    assert "every model failed" in text and "server_error" in text  # the scan sees the rows
    assert API_KEY not in text
    assert API_KEY[3:] not in text  # not even without the "sk-" prefix
