"""The decision flow: intake, idempotency, model chain, validation, policy, one commit.

No HTTP and no SQL here: the pipeline talks to a `DecisionStore` and to providers through
small interfaces, so the CLI, the HTTP server and tests drive the very same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, cast

from lockgate.decide.chain import Breakers, CircuitBreaker, Retrier, Try, build_attempt
from lockgate.decide.decision import (
    Attempt,
    Decision,
    Status,
    input_hash,
    new_id,
    unencodable,
    utcnow,
)
from lockgate.decide.guards import (
    AnswerCache,
    CachedAnswer,
    Hold,
    Refusal,
    SpendGuard,
    Spent,
    Withheld,
)
from lockgate.decide.policy import Routing, gated_route, priority, route, route_input_only
from lockgate.decide.router import in_canary
from lockgate.decide.task import ModelSpec, TaskSpec, sink_names
from lockgate.decide.validation import OutputInvalid, validate_input, validate_output
from lockgate.errors import BudgetExceeded, InputError, KeyTaken, LockgateError, MalformedInput
from lockgate.monitor.observer import Id, NullObserver, Observer
from lockgate.monitor.redaction import redact_record
from lockgate.providers.base import (
    BatchProvider,
    Candidate,
    PreparedRequest,
    Provider,
    ProviderError,
)

log = logging.getLogger("lockgate.decide.pipeline")


class DecisionStore(Protocol):
    """What the pipeline needs from storage (`Store.async_decisions`). Both methods are
    awaited, so a store keeps the event loop free while the database works."""

    async def find(self, task: str, keys: Sequence[str]) -> Mapping[str, Decision]:
        """The stored decisions of `task` with these idempotency keys, by key."""
        ...

    async def save(self, batch: Sequence[Decision], sinks: Sequence[str] = ()) -> list[Decision]:
        """Commit `batch` (with outbox rows for `sinks`) in one transaction; where another
        writer stored a key first, its decision comes back in place of ours."""
        ...


@dataclass(frozen=True)
class ChainModel:
    spec: ModelSpec
    provider: Provider
    batch: bool = field(init=False)
    """Whether the provider answers many inputs in one call (`BatchProvider`): checked once
    here, as `isinstance` against a runtime-checkable Protocol walks its members every time
    (2% of a request's CPU at concurrency 1)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch", isinstance(self.provider, BatchProvider))


@dataclass(frozen=True)
class ReleaseRuntime:
    """A release ready to decide: its task spec and its model chain, providers built."""

    task: TaskSpec
    release: int
    models: tuple[ChainModel, ...]
    canary: ReleaseRuntime | None = None
    """The task's canary release, deciding a sticky `canary_percent` % of keys (see router.py)."""
    canary_percent: float = 0.0
    content_hash: str = ""
    """The release's content hash: with the normalised input, the key of the answer cache."""

    @property
    def sinks(self) -> tuple[str, ...]:
        return sink_names(self.task)


@dataclass(frozen=True)
class DecisionRequest:
    input: Mapping[str, Any]
    idempotency_key: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    submitted_by: str | None = None
    request_id: str | None = None
    """The caller's request id (e.g. of an HTTP request), for logs only; never stored."""


@dataclass(frozen=True)
class Result:
    """The outcome for one request: a decision (new or replayed), or an error for the caller."""

    decision: Decision | None
    replayed: bool = False
    error: LockgateError | None = None


@dataclass
class _Item:
    request: DecisionRequest
    input: dict[str, Any]
    hash: str
    attempts: list[Attempt] = field(default_factory=list)
    candidate: Candidate | None = None
    output: dict[str, Any] | None = None
    failures: list[str] = field(default_factory=list)
    routing: Routing | None = None
    input_problem: str | None = None
    """Why the input was refused (batch jobs store such an input as a failed decision)."""
    id: str = field(default_factory=new_id)
    """The id the decision will have: known from intake on, so traces and logs can carry it."""
    cached: CachedAnswer | None = None
    """The release's earlier answer for this input, reused (`cache:`): no model call."""
    hold: Hold | None = None
    """The reserved worst-case cost of the next paid call (budgets)."""
    refusal: Refusal | None = None
    """A hard budget limit stopped this item before any paid call: `review` or `refuse`."""
    free_only: bool = False
    """A hard budget limit was reached: only free models may still answer (`fallback`)."""


class Pipeline:
    def __init__(
        self,
        decisions: DecisionStore,
        *,
        breakers: Breakers | None = None,
        retrier: Retrier | None = None,
        concurrency: int = 16,
        clock: Callable[[], float] = time.perf_counter,
        observer: Observer | None = None,
        spend: SpendGuard | None = None,
        cache: AnswerCache | None = None,
    ) -> None:
        self.decisions = decisions
        self.breakers = breakers or Breakers()
        self.retrier = retrier or Retrier()
        self.concurrency = concurrency
        self.clock = clock
        self.observer: Observer = observer or NullObserver()
        self.spend = spend
        """Budgets: paid calls are reserved before and settled after (tasks a budget covers)."""
        self.cache = cache
        """The answer cache (tasks with `cache:`)."""

    def with_store(self, decisions: DecisionStore) -> Pipeline:
        """This pipeline (its breakers, retries, observer, budgets and cache) storing through
        another `DecisionStore` (a batch's committer)."""
        return Pipeline(
            decisions,
            breakers=self.breakers,
            retrier=self.retrier,
            concurrency=self.concurrency,
            clock=self.clock,
            observer=self.observer,
            spend=self.spend,
            cache=self.cache,
        )

    async def decide(self, runtime: ReleaseRuntime, request: DecisionRequest) -> Result:
        """Decide one input; bad input raises `InputError`, a reused key with other input
        raises `Conflict`, and nothing is stored for either."""
        (result,) = await self.decide_many(runtime, [request], invalid_input="error")
        if result.error is not None:
            raise result.error
        return result

    async def decide_many(
        self,
        runtime: ReleaseRuntime,
        requests: Sequence[DecisionRequest],
        *,
        invalid_input: Literal["fail", "error"] = "fail",
        budget_refused: Literal["fail", "error"] | None = None,
    ) -> list[Result]:
        """Decide a batch and commit it in one transaction before returning.

        With `invalid_input="fail"` (batch jobs) an input that breaks the schema is stored as a
        `failed` decision with the reason, so a re-run does not retry it; with "error" it is
        returned as an error and nothing is stored. `budget_refused` says the same of an item a
        refusing budget limit stopped (default: as `invalid_input`); intake sources pass
        "error", so such a record is read again once the limit allows.
        """
        on_refusal = budget_refused or invalid_input
        if runtime.canary is not None and runtime.canary_percent > 0:
            return await self._decide_split(runtime, requests, invalid_input, on_refusal)
        started = self.clock()
        task = runtime.task
        observer = self.observer
        stages: dict[str, float] = {}
        results: list[Result | None] = [None] * len(requests)
        with (
            observer.protect(_pii_values(task, requests)),
            observer.span("decide_batch", task=task.name, release=runtime.release),
        ):
            with self._stage("idempotency", stages, task.name):
                keys = [r.idempotency_key for r in requests]
                known = await self.decisions.find(task.name, keys)
            fresh: dict[str, tuple[int, _Item]] = {}
            later: list[tuple[int, str, str]] = []  # repeated keys inside this batch
            with self._stage("intake", stages, task.name):
                for index, request in enumerate(requests):
                    malformed = unencodable(request.input, "input") or unencodable(
                        request.metadata, "metadata"
                    )
                    if malformed is not None:
                        # Not even a failed decision can keep it: refused in every mode.
                        observer.input_rejected(task.name, malformed, request_id=request.request_id)
                        results[index] = Result(None, error=MalformedInput(malformed, hint=_FIX))
                        continue
                    clean, problems = validate_input(task, request.input)
                    digest = input_hash(clean if not problems else dict(request.input))
                    key = request.idempotency_key
                    stored = known.get(key)
                    if stored is not None:
                        results[index] = _replay(stored, digest)
                    elif key in fresh:
                        later.append((index, key, digest))
                    elif problems and invalid_input == "error":
                        reason = "; ".join(problems)
                        observer.input_rejected(task.name, reason, request_id=request.request_id)
                        results[index] = Result(None, error=InputError(reason))
                    else:
                        item = _Item(request, clean, digest)
                        fresh[key] = (index, item)
                        if problems:
                            item.input_problem = "; ".join(problems)
                        else:
                            item.routing = route_input_only(task.policy, item.input)
            items = [item for _, item in fresh.values()]
            to_model = [i for i in items if i.input_problem is None and i.routing is None]
            if to_model and self.cache is not None and task.cache is not None:
                with self._stage("cache", stages, task.name):
                    to_model = await self._from_cache(runtime, to_model)
            with self._stage("model_chain", stages, task.name):
                await self._run_chain(runtime, to_model)
            observer.breaker_states(self.breakers.states())
            to_save: list[tuple[int, _Item, Decision]] = []
            refused: dict[str, Result] = {}
            with self._stage("policy", stages, task.name):
                for index, item in fresh.values():
                    refusal = item.refusal
                    if (
                        refusal is not None
                        and refusal.outcome == "refuse"
                        and on_refusal == "error"
                    ):  # nothing is decided or stored: the caller may come back later
                        refused[item.request.idempotency_key] = results[index] = Result(
                            None, error=_exceeded(refusal)
                        )
                        continue
                    to_save.append((index, item, self._finish(runtime, item, started)))
            decisions = [decision for _, _, decision in to_save]
            with self._stage("commit", stages, task.name):
                stored_batch = (
                    await self.decisions.save(decisions, runtime.sinks) if decisions else []
                )
            elapsed = self.clock() - started
            observer.stages_timed(task.name, stages, size=len(requests))
            for (index, item, new), stored in zip(to_save, stored_batch, strict=True):
                # Another writer may have stored the same key first: theirs is the decision.
                if stored.id == new.id:
                    results[index] = Result(stored)
                    observer.decision_finished(
                        new, elapsed_s=elapsed, request_id=item.request.request_id
                    )
                else:
                    results[index] = _replay(stored, item.hash)
            if self.cache is not None and task.cache is not None:
                await self._keep_answers(runtime, to_save, stored_batch)
        by_key = {d.idempotency_key: d for d in stored_batch}
        for index, key, digest in later:
            results[index] = _replay(by_key[key], digest) if key in by_key else refused[key]
        return [r if r is not None else Result(None) for r in results]

    # ---- cache

    async def _from_cache(self, runtime: ReleaseRuntime, items: list[_Item]) -> list[_Item]:
        """Answer the items the release answered before from the cache; the rest go on."""
        assert self.cache is not None
        name = runtime.task.name
        found = await self.cache.find(name, runtime.content_hash, [i.hash for i in items])
        if not found:
            return items
        for item in items:
            item.cached = found.get(item.hash)
        self.cache.hit(name, sum(item.cached is not None for item in items))
        return [item for item in items if item.cached is None]

    async def _keep_answers(
        self,
        runtime: ReleaseRuntime,
        saved: Sequence[tuple[int, _Item, Decision]],
        stored: Sequence[Decision],
    ) -> None:
        """Remember the automated answers just committed (never a failed or reviewed one)."""
        assert self.cache is not None and runtime.task.cache is not None
        answers = {
            item.hash: new.id
            for (_, item, new), kept in zip(saved, stored, strict=True)
            if kept.id == new.id
            and new.status == "decided"
            and new.route == "auto"
            and new.cached_from is None
            and new.output is not None
        }
        if not answers:
            return
        try:
            await self.cache.keep(
                runtime.task.name, runtime.content_hash, runtime.task.cache.ttl_seconds, answers
            )
        except Exception as exc:  # the decisions are committed; only later reuse is lost
            log.warning(
                "could not remember %d answers of %s in the cache (%s)",
                len(answers),
                runtime.task.name,
                type(exc).__name__,
            )

    async def _decide_split(
        self,
        runtime: ReleaseRuntime,
        requests: Sequence[DecisionRequest],
        invalid_input: Literal["fail", "error"],
        budget_refused: Literal["fail", "error"],
    ) -> list[Result]:
        """Keys in the canary's share go to the canary release, the rest to the live one; each
        part is decided and committed as its own batch, results come back in request order."""
        assert runtime.canary is not None
        name, percent = runtime.task.name, runtime.canary_percent
        picks = [in_canary(name, r.idempotency_key, percent) for r in requests]
        results: list[Result] = [Result(None)] * len(requests)
        for chosen, target in ((False, replace(runtime, canary=None)), (True, runtime.canary)):
            indexes = [i for i, pick in enumerate(picks) if pick == chosen]
            if not indexes:
                continue
            part = await self.decide_many(
                target,
                [requests[i] for i in indexes],
                invalid_input=invalid_input,
                budget_refused=budget_refused,
            )
            for i, result in zip(indexes, part, strict=True):
                results[i] = result
        return results

    @contextlib.contextmanager
    def _stage(self, name: str, stages: dict[str, float], task: str) -> Iterator[None]:
        started = self.clock()
        with self.observer.span(name, task=task):
            yield
        stages[name] = self.clock() - started

    def _record(self, item: _Item, attempt: Attempt) -> None:
        item.attempts.append(attempt)
        self.observer.attempt_recorded(attempt, decision_id=item.id)

    # ---- model chain

    async def _run_chain(self, runtime: ReleaseRuntime, items: list[_Item]) -> None:
        task = runtime.task
        spend = self.spend if self.spend is not None and self.spend.watches(task) else None
        if spend is None:
            await self._run_models(runtime, items, None)
            return
        spent: list[Spent] = []
        try:
            await self._run_models(runtime, items, _Meter(spend, task, spent))
        except asyncio.CancelledError:
            raise  # holds not settled lapse after their lifetime, booked at their worst case
        except BaseException:
            await self._settle_quietly(spend, task, spent)
            raise
        if spent:
            await spend.settle(task, spent)

    async def _settle_quietly(self, spend: SpendGuard, task: TaskSpec, spent: list[Spent]) -> None:
        if not spent:
            return
        try:
            await spend.settle(task, spent)
        except Exception as exc:  # the holds lapse after their lifetime instead
            log.warning("could not settle %d model calls (%s)", len(spent), type(exc).__name__)

    async def _run_models(
        self, runtime: ReleaseRuntime, items: list[_Item], meter: _Meter | None
    ) -> None:
        pending = items
        for model in runtime.models:
            if not pending:
                return
            todo = pending
            metered = meter is not None and meter.guard.paid(model.spec)
            if metered:
                assert meter is not None
                todo = await self._hold_first_calls(meter.at(model), model, pending)
            breaker = self.breakers.for_endpoint(model.provider.endpoint, model.spec)
            if todo:
                at = meter.at(model) if metered and meter is not None else None
                if model.batch:
                    await self._run_batch(runtime.task, model, breaker, todo, at)
                else:
                    await self._run_each(runtime.task, model, breaker, todo, at)
            pending = [i for i in pending if i.output is None and i.refusal is None]

    async def _hold_first_calls(
        self, meter: _Meter, model: ChainModel, items: list[_Item]
    ) -> list[_Item]:
        """Reserve the first call of `model` for each item that may still use a paid model, in
        one transaction; the items refused get the task's hard-limit outcome. Returns the items
        that hold a reservation."""
        allowed = [item for item in items if not item.free_only]
        if not allowed:
            return []
        task = meter.task
        grant = await meter.guard.reserve(
            task,
            [meter.guard.worst_case(model.spec, PreparedRequest(task, i.input)) for i in allowed],
        )
        for item, hold in zip(allowed, grant.holds, strict=False):
            item.hold = hold
        refusal = grant.refusal
        for item in allowed[len(grant.holds) :]:
            assert refusal is not None
            item.failures.append(f"{model.spec.label}: {refusal.reason}")
            if refusal.outcome == "fallback" or item.attempts:
                # Paid calls were made for it already: it goes on as a failure of this
                # model, to the free models left in the chain.
                item.free_only = True
            else:
                item.refusal = refusal
        return allowed[: len(grant.holds)]

    async def _run_batch(
        self,
        task: TaskSpec,
        model: ChainModel,
        breaker: CircuitBreaker,
        items: list[_Item],
        meter: _Meter | None = None,
    ) -> None:
        provider = cast(BatchProvider, model.provider)  # `model.batch` said so
        requests = [PreparedRequest(task, item.input) for item in items]

        async def call() -> Sequence[Candidate | ProviderError]:
            return provider.complete_batch(requests)

        make_call: Callable[[], Awaitable[Sequence[Candidate | ProviderError]]] = call
        unused: Callable[[], None] | None = None
        if meter is not None:
            make_call, unused = meter.metered_batch(call, requests, [i.hold for i in items])
            for item in items:
                item.hold = None
        with self.observer.span("model_call", size=len(items), **_model_ids(model)):
            outcome = await self.retrier.call(make_call, model.spec, breaker)
        if unused is not None:
            unused()
        for item_index, item in enumerate(items):
            self._record_tries(model, item, outcome.tries, repair=False)
            if outcome.value is None:
                continue
            answer = outcome.value[item_index]
            if isinstance(answer, ProviderError):
                # This input alone could not be answered: the call itself succeeded.
                failed = Try(outcome.tries[-1].latency_ms, answer)
                self._record_tries(model, item, [failed], repair=False)
            else:
                self._accept(task, model, item, answer, outcome.tries[-1])

    async def _run_each(
        self,
        task: TaskSpec,
        model: ChainModel,
        breaker: CircuitBreaker,
        items: list[_Item],
        meter: _Meter | None = None,
    ) -> None:
        limit = asyncio.Semaphore(self.concurrency)

        async def one(item: _Item) -> None:
            async with limit:
                await self._run_one(task, model, breaker, item, meter)

        await asyncio.gather(*(one(item) for item in items))

    async def _run_one(
        self,
        task: TaskSpec,
        model: ChainModel,
        breaker: CircuitBreaker,
        item: _Item,
        meter: _Meter | None = None,
    ) -> None:
        request = PreparedRequest(task, item.input)
        for repair in (False, True):
            make_call: Callable[[], Awaitable[Candidate]] = functools.partial(
                model.provider.complete, request
            )
            unused: Callable[[], None] | None = None
            if meter is not None:
                make_call, unused = meter.metered(make_call, request, item.hold)
                item.hold = None
            with self.observer.span("model_call", decision_id=item.id, **_model_ids(model)):
                outcome = await self.retrier.call(make_call, model.spec, breaker)
            if unused is not None:
                unused()  # no try was made (an open breaker): its hold goes, at no cost
            self._record_tries(model, item, outcome.tries, repair=repair)
            if outcome.value is None:
                return
            problems = self._accept(task, model, item, outcome.value, outcome.tries[-1], repair)
            if problems is None or not model.provider.can_repair:
                return
            request = replace(request, repair_hint="; ".join(problems))

    def _record_tries(
        self, model: ChainModel, item: _Item, tries: Sequence[Try], *, repair: bool
    ) -> None:
        """Record failed tries; the last successful one is recorded by `_accept`."""
        for t in tries:
            if t.error is None:
                continue
            self._record(item, build_attempt(model, t, "error", repair=repair, error=t.error))
        if tries and tries[-1].error is not None:
            item.failures.append(f"{model.spec.label}: {tries[-1].error.error_class}")

    def _accept(
        self,
        task: TaskSpec,
        model: ChainModel,
        item: _Item,
        candidate: Candidate,
        last: Try,
        repair: bool = False,
    ) -> list[str] | None:
        """Validate a candidate; keep it if valid. Returns the problems when invalid."""
        try:
            output = validate_output(task, candidate.output)
        except OutputInvalid as exc:
            self._record(
                item,
                build_attempt(
                    model,
                    last,
                    "invalid",
                    repair=repair,
                    candidate=candidate,
                    message="; ".join(exc.problems),
                ),
            )
            item.failures.append(f"{model.spec.label}: invalid output ({exc.problems[0]})")
            return exc.problems
        self._record(item, build_attempt(model, last, "valid", repair=repair, candidate=candidate))
        item.output = output
        item.candidate = candidate
        return None

    # ---- outcome

    def _finish(self, runtime: ReleaseRuntime, item: _Item, started: float) -> Decision:
        task = runtime.task
        confidence = item.candidate.confidence if item.candidate else None
        status: Status
        input_problem = item.input_problem
        if item.cached is not None:
            return self._reused(runtime, item, item.cached, started)
        if input_problem is not None:
            routing, status = Routing("reject", f"invalid input: {input_problem}"), "failed"
        elif item.routing is not None:  # rejected on input alone, before any model
            routing, status = item.routing, "rejected"
        elif item.refusal is not None:  # a hard budget limit, before any paid call
            if item.refusal.outcome == "review":
                routing, status = Routing("review", item.refusal.reason), "pending_review"
            else:  # refuse, in a batch job: a failed record, tried again by a later run
                routing, status = Routing("reject", item.refusal.reason), "failed"
        elif item.output is None:
            reason = "every model failed: " + "; ".join(item.failures or ["no model configured"])
            if task.policy.on_failure == "review":
                routing, status = Routing("review", reason), "pending_review"
            else:
                routing, status = Routing("reject", reason), "failed"
        else:
            candidate = item.candidate
            routing = route(
                task.policy,
                item.output,
                confidence,
                item.input,
                out_of_scope=candidate.out_of_scope if candidate else None,
                note=candidate.note if candidate else None,
            )
            status = {"auto": "decided", "review": "pending_review", "reject": "rejected"}[
                routing.route
            ]  # type: ignore[assignment]
        alternatives = item.candidate.alternatives if item.candidate else None
        metadata = dict(item.request.metadata)
        queue_priority = 0
        if status == "pending_review":
            queue_priority = priority(task.policy, item.output or {}, item.input)
            if task.policy.mode == "suggest" and item.output is not None:
                # What gated automation would have done: the suggest report compares it with
                # the human verdicts.
                would = gated_route(
                    task.policy,
                    item.output,
                    confidence,
                    item.input,
                    out_of_scope=item.candidate.out_of_scope if item.candidate else None,
                )
                metadata["suggested_route"] = would.route
        # A refused input is kept as it was sent, so a person can see what was wrong with it.
        kept = item.input if input_problem is None else dict(item.request.input)
        return Decision(
            id=item.id,
            task=task.name,
            release=runtime.release,
            idempotency_key=item.request.idempotency_key,
            input_hash=item.hash,
            input=kept,
            redacted_input=redact_record(kept),
            output=item.output,
            confidence=confidence,
            route=None if status == "failed" else routing.route,
            status=status,
            reason=routing.reason,
            cost=sum(a.cost for a in item.attempts),
            latency_ms=(self.clock() - started) * 1000,
            created_at=utcnow(),
            attempts=tuple(item.attempts),
            alternatives={k: [list(p) for p in v] for k, v in alternatives.items()}
            if alternatives
            else None,
            metadata=metadata,
            submitted_by=item.request.submitted_by,
            priority=queue_priority,
        )

    def _reused(
        self, runtime: ReleaseRuntime, item: _Item, cached: CachedAnswer, started: float
    ) -> Decision:
        """A decision of its own that reuses the release's earlier answer: no model call, no
        cost, and `cached_from` names the decision whose answer it is."""
        return Decision(
            id=item.id,
            task=runtime.task.name,
            release=runtime.release,
            idempotency_key=item.request.idempotency_key,
            input_hash=item.hash,
            input=item.input,
            redacted_input=redact_record(item.input),
            output=dict(cached.output),
            confidence=cached.confidence,
            route="auto",
            status="decided",
            reason=cached.reason,
            cost=0.0,
            latency_ms=(self.clock() - started) * 1000,
            created_at=utcnow(),
            alternatives=dict(cached.alternatives) if cached.alternatives else None,
            metadata=dict(item.request.metadata),
            submitted_by=item.request.submitted_by,
            cached_from=cached.decision_id,
        )


@dataclass
class _Meter:
    """Paid calls of one batch: each reserved before it is made (the first one of an item
    ahead, for the whole batch in one transaction; a retry or a repair when it comes) and what
    it cost noted in `spent`, settled in one transaction after the chain."""

    guard: SpendGuard
    task: TaskSpec
    spent: list[Spent]
    model: ModelSpec | None = None

    def at(self, model: ChainModel) -> _Meter:
        return replace(self, model=model.spec)

    async def _hold(self, requests: Sequence[PreparedRequest]) -> list[Hold]:
        """Holds for one more call per request, all or none (a retry, a repair)."""
        assert self.model is not None
        model = self.model
        try:
            grant = await self.guard.reserve(
                self.task, [self.guard.worst_case(model, r) for r in requests]
            )
        except Exception as exc:
            refusal = Refusal(
                "refuse", f"budget: could not reserve ({type(exc).__name__})", utcnow()
            )
            raise Withheld(refusal) from None
        if len(grant.holds) < len(requests):
            self.spent.extend(Spent(h, 0.0, called=False) for h in grant.holds)
            assert grant.refusal is not None
            raise Withheld(grant.refusal)
        return list(grant.holds)

    def metered(
        self,
        call: Callable[[], Awaitable[Candidate]],
        request: PreparedRequest,
        first: Hold | None,
    ) -> tuple[Callable[[], Awaitable[Candidate]], Callable[[], None]]:
        """The call, reserving one more call for each try after the first; and what lets the
        first hold go when no try was made (an open breaker)."""
        ahead = [first] if first is not None else []

        async def metered_call() -> Candidate:
            (hold,) = [ahead.pop()] if ahead else await self._hold([request])
            try:
                candidate = await call()
            except ProviderError as exc:
                self.spent.append(Spent(hold, exc.usage.cost))
                raise
            except BaseException:
                # A timeout or a stop during the call: the server may have answered it.
                self.spent.append(Spent(hold, hold.usd))
                raise
            self.spent.append(Spent(hold, candidate.usage.cost))
            return candidate

        return metered_call, functools.partial(self._unused, ahead)

    def _unused(self, ahead: list[Hold] | list[list[Hold]]) -> None:
        for left in ahead:
            for hold in left if isinstance(left, list) else [left]:
                self.spent.append(Spent(hold, 0.0, called=False))
        ahead.clear()

    def metered_batch(
        self,
        call: Callable[[], Awaitable[Sequence[Candidate | ProviderError]]],
        requests: Sequence[PreparedRequest],
        first: Sequence[Hold | None],
    ) -> tuple[Callable[[], Awaitable[Sequence[Candidate | ProviderError]]], Callable[[], None]]:
        ahead = [[h for h in first if h is not None]]

        async def metered_call() -> Sequence[Candidate | ProviderError]:
            holds = ahead.pop() if ahead else await self._hold(requests)
            try:
                answers = await call()
            except BaseException:
                self.spent.extend(Spent(h, h.usd) for h in holds)
                raise
            for hold, answer in zip(holds, answers, strict=False):
                self.spent.append(Spent(hold, answer.usage.cost))
            return answers

        return metered_call, functools.partial(self._unused, ahead)


def _exceeded(refusal: Refusal) -> BudgetExceeded:
    wait = max(1, math.ceil((refusal.resets_at - utcnow()).total_seconds()))
    resets = refusal.resets_at.isoformat()
    return BudgetExceeded(
        refusal.reason,
        hint=f"nothing was decided; send it again after {resets}, when the limit resets, "
        "or raise the task's budget",
        retry_after_seconds=wait,
        resets_at=resets,
    )


_FIX = "send valid Unicode text and finite numbers (JSON has no NaN or Infinity)"


def _model_ids(model: ChainModel) -> dict[str, Id]:
    return {"provider": model.provider.name, "model": model.spec.model}


def _pii_values(task: TaskSpec, requests: Sequence[DecisionRequest]) -> list[str]:
    """The values of the task's `pii: true` input fields, to be kept out of logs and traces."""
    fields = task.pii_fields
    if not fields:
        return []
    return [str(r.input[f]) for r in requests for f in fields if r.input.get(f) is not None]


def _replay(stored: Decision, digest: str) -> Result:
    if stored.input_hash != digest:
        return Result(None, error=KeyTaken())
    return Result(stored, replayed=True)
