"""The `combined` provider: several models answer every input and one calibrated answer comes out.

    - provider: combined
      combine:
        method: mean              # mean | geometric | agreement
        calibration: temperature  # temperature | isotonic | weights | none (default:
                                  # temperature for mean, isotonic for agreement; weights:
                                  # geometric only)
        models:
          - provider: local-classifier
          - provider: embedding-classifier

`mean` averages the members' probability vectors over each enum output field; `geometric`
averages their logarithms (a value one member rules out stays unlikely, where the plain mean
would keep half of the other member's belief in it). `agreement`
raises confidence when independent members agree on the answer (1 - prod(1 - p_i)) and sends a
disagreement to review (confidence 0, the reason names both answers).

`calibration: weights` (geometric only) gives each member its own exponent in the geometric
mean, fitted by log-likelihood on the held-out rows instead of one temperature: the member that
is more often right on them counts more, and the weights' sum sets the sharpness.

Calibration makes a confidence of 0.9 mean about 90% correct: `lockgate train` fits every
trainable member on a share of the rows, fits the calibration on their answers for the held-out
rest, refits the members on every row and stores the calibration as a `combined` artifact
(pinned by sha256 like the members' own).

`escalate: {below: 0.6, models: [...]}` lists members consulted only for the inputs the others
are unsure of: where the combination of `models` is below `below` (and not out of scope), the
`escalate` members answer those inputs too and the combination of all of them decides, with a
calibration of its own; the reason says so. This keeps a slow, strong member (an
`embedding-classifier` with `model: all-mpnet-base-v2`) off the inputs the fast members
settle alone. `lockgate train` fits both calibrations on the same held-out rows.

When a member fails (it raises, or answers one input with an error), the others' answer is
used with their own confidence, and the reason says so; an `escalate` member that fails leaves
the first answer in place. The combination is a provider rather
than a pipeline feature: the chain, timeouts, retries and breaker apply to it as a whole.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lockgate.decide.records import Record
from lockgate.decide.task import ModelSpec, TaskSpec
from lockgate.errors import ConfigError
from lockgate.providers.base import (
    BatchProvider,
    Candidate,
    PreparedRequest,
    Provider,
    ProviderContext,
    ProviderError,
)
from lockgate.settings import Settings

if TYPE_CHECKING:
    from lockgate.providers.classifier_training import TrainReport

KIND = "combined"
Method = Literal["mean", "geometric", "agreement"]
METHODS: tuple[str, ...] = ("mean", "geometric", "agreement")
CalibrationKind = Literal["temperature", "isotonic", "weights", "none"]
CALIBRATIONS: tuple[str, ...] = ("temperature", "isotonic", "weights", "none")
_EPS = 1e-9


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class CombineSpec:
    method: Method
    calibration: CalibrationKind
    members: tuple[ModelSpec, ...]
    escalation: tuple[ModelSpec, ...] = ()
    """Members asked only where the others' combined confidence is below `escalate_below`."""
    escalate_below: float = 0.0

    @property
    def everyone(self) -> tuple[ModelSpec, ...]:
        """Every member, the escalation ones last (the order of labels and calibrations)."""
        return self.members + self.escalation

    @classmethod
    def parse(cls, spec: ModelSpec) -> CombineSpec:
        raw = spec.option("combine")
        if not isinstance(raw, Mapping):
            raise ConfigError(
                "a combined model needs `combine: {method: mean, models: [...]}`",
                hint="list at least two models under combine.models",
            )
        unknown = sorted(set(raw) - {"method", "calibration", "models", "escalate"})
        if unknown:
            raise ConfigError(
                f"combine: unknown key(s) {', '.join(unknown)} "
                "(known: method, calibration, models, escalate)"
            )
        method = raw.get("method", "mean")
        if method not in METHODS:
            raise ConfigError(
                f"combine.method: must be mean, geometric or agreement, not {method!r}"
            )
        default = "isotonic" if method == "agreement" else "temperature"
        calibration = raw.get("calibration", default)
        if calibration not in CALIBRATIONS:
            raise ConfigError(
                "combine.calibration: must be temperature, isotonic, weights or none, "
                f"not {calibration!r}"
            )
        if calibration == "weights" and method != "geometric":
            raise ConfigError(
                f"combine.calibration: weights are fitted for method geometric, not {method}",
                hint="set combine.method: geometric, or calibration: temperature",
            )
        models = raw.get("models")
        escalate = raw.get("escalate")
        if escalate is not None and isinstance(models, list) and len(models) == 1:
            pass  # one model first, the escalate ones where it is unsure
        elif not isinstance(models, list) or len(models) < 2:
            raise ConfigError("combine.models: list at least two models to combine")
        members = _member_specs(models, "combine.models")
        if escalate is None:
            return cls(method, calibration, members)
        if not isinstance(escalate, Mapping) or set(escalate) != {"below", "models"}:
            raise ConfigError(
                "combine.escalate: needs `below:` (a confidence) and `models:` (a list)",
                hint="for example escalate: {below: 0.6, models: [{provider: ...}]}",
            )
        below = escalate["below"]
        if isinstance(below, bool) or not isinstance(below, int | float) or not 0 < below <= 1:
            raise ConfigError(
                f"combine.escalate.below: must be above 0 and at most 1, not {below!r}"
            )
        extra = escalate["models"]
        if not isinstance(extra, list) or not extra:
            raise ConfigError("combine.escalate.models: list at least one model")
        escalation = _member_specs(extra, "combine.escalate.models")
        return cls(method, calibration, members, escalation, float(below))


def _member_specs(entries: list[Any], where: str) -> tuple[ModelSpec, ...]:
    members = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or "provider" not in entry:
            raise ConfigError(f"{where}.{i}: needs a `provider:` key")
        if entry["provider"] == KIND:
            raise ConfigError(f"{where}.{i}: a combined model cannot contain another")
        try:
            members.append(ModelSpec.model_validate(dict(entry)))
        except Exception as exc:
            raise ConfigError(f"{where}.{i}: {exc}") from None
    return tuple(members)


@dataclass(frozen=True)
class Calibration:
    """What `lockgate train` fitted: a temperature, or an isotonic map of raw confidence."""

    method: Method
    kind: CalibrationKind
    members: tuple[str, ...]
    temperature: float = 1.0
    iso_x: tuple[float, ...] = ()
    iso_y: tuple[float, ...] = ()
    n_rows: int = 0
    member_temperatures: tuple[float, ...] = ()
    """Each member's own temperature, applied before averaging (mean with a temperature)."""
    member_weights: tuple[float, ...] = ()
    """Each member's exponent in the geometric mean (`weights`), in the members' order."""
    first: Calibration | None = None
    """With `escalate`: the calibration of the members that answer every input, by themselves
    (this one is for all of them together)."""

    def members_tempered(self, stacked: np.ndarray) -> np.ndarray:
        """Each member's probabilities (members first: one row, or rows, per member, in order)
        at its own temperature."""
        if len(self.member_temperatures) != len(stacked):
            return stacked
        return np.stack(
            [_tempered(rows, t) for rows, t in zip(stacked, self.member_temperatures, strict=True)]
        )

    def distribution(self, probs: np.ndarray) -> np.ndarray:
        """Temperature-scaled rows (unchanged for other kinds)."""
        if self.kind != "temperature" or self.temperature == 1.0:
            return probs
        return _tempered(probs, self.temperature)

    def confidence(self, raw: np.ndarray) -> np.ndarray:
        if self.kind != "isotonic" or not self.iso_x:
            return raw
        return np.interp(raw, np.asarray(self.iso_x), np.asarray(self.iso_y))


UNCALIBRATED = Calibration("mean", "none", ())


def pooled(
    method: Method, stacked: np.ndarray, weights: Sequence[float] | None = None
) -> np.ndarray:
    """The members' probability rows (members first) pooled into one distribution per row:
    the geometric mean, renormalised, for `geometric` (with `weights`, the product of each
    member's row raised to its weight); the arithmetic mean otherwise."""
    if method != "geometric":
        return np.asarray(stacked.mean(axis=0))
    logs = np.log(np.maximum(stacked, _EPS))
    if weights is not None and len(weights) == len(stacked):
        w = np.asarray(weights, dtype=np.float64).reshape((-1,) + (1,) * (logs.ndim - 1))
        logs = (logs * w).sum(axis=0)
    else:
        logs = logs.mean(axis=0)
    logs -= logs.max(axis=-1, keepdims=True)
    out = np.exp(logs)
    return np.asarray(out / out.sum(axis=-1, keepdims=True))


def _tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.log(np.maximum(probs, _EPS)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    out = np.exp(logits)
    return np.asarray(out / out.sum(axis=-1, keepdims=True))


# ---------------------------------------------------------------- combining


@dataclass
class MemberAnswers:
    """One member's answers for a batch: per output field a probability row per input (None
    where it failed), its out-of-scope verdicts, and why it failed where it did."""

    label: str
    probabilities: dict[str, list[np.ndarray | None]]
    out_of_scope: list[str | None]
    failures: list[str | None]

    def subset(self, rows: Sequence[int]) -> MemberAnswers:
        """The answers for `rows` only, in that order."""
        return MemberAnswers(
            self.label,
            {name: [p[i] for i in rows] for name, p in self.probabilities.items()},
            [self.out_of_scope[i] for i in rows],
            [self.failures[i] for i in rows],
        )


def _joined(note: str | None, more: str) -> str:
    return f"{note}; {more}" if note else more


def combine(
    method: Method,
    calibration: Calibration,
    values: Mapping[str, Sequence[str]],
    answers: Sequence[MemberAnswers],
) -> list[Candidate | ProviderError]:
    """One candidate per input from the members' answers (see the module docstring)."""
    n = len(answers[0].failures)
    fields = list(values)
    whole_rows = [i for i in range(n) if all(a.failures[i] is None for a in answers)]
    position = {i: j for j, i in enumerate(whole_rows)}
    pooled_whole = (
        {}
        if method == "agreement" or not whole_rows
        else {name: _pooled_rows(method, calibration, answers, name, whole_rows) for name in fields}
    )
    results: list[Candidate | ProviderError] = []
    for i in range(n):
        alive = [a for a in answers if a.failures[i] is None]
        failed = [f"{a.label} failed ({a.failures[i]})" for a in answers if a.failures[i]]
        if not alive:
            results.append(
                ProviderError(
                    "provider_crash",
                    "every combined model failed: " + "; ".join(failed),
                    retryable=False,
                )
            )
            continue
        output: dict[str, str] = {}
        alternatives: dict[str, list[tuple[str, float]]] = {}
        confidence = 1.0
        notes: list[str] = []
        for name in fields:
            names = values[name]
            if i in position and name in pooled_whole:  # every member answered: done above
                dist_all, top_all, score_all = pooled_whole[name]
                j = position[i]
                dist, top = dist_all[j], top_all[j]
                output[name] = names[top[0]]
                alternatives[name] = [(names[t], float(dist[t])) for t in top]
                confidence = min(confidence, float(score_all[j]))
                continue
            # Here a member failed (the survivors' own answer, as they gave it), or the method
            # is agreement (its mean ignores weights; its members are not tempered).
            rows = [a.probabilities[name][i] for a in alive]
            stacked = np.vstack([r for r in rows if r is not None])
            mean = pooled(method, stacked)[None, :]
            dist = calibration.distribution(mean)[0] if len(alive) == len(answers) else mean[0]
            order = np.argsort(-dist, kind="stable")
            output[name] = names[order[0]]
            alternatives[name] = [(names[j], float(dist[j])) for j in order[:3]]
            if method == "agreement" and len(alive) > 1:
                tops = stacked.argmax(axis=1)
                if len(set(tops.tolist())) > 1:
                    said = ", ".join(
                        f"{a.label}: {names[t]}" for a, t in zip(alive, tops.tolist(), strict=True)
                    )
                    notes.append(f"the models disagree on {name} ({said})")
                    confidence = 0.0
                    continue
                raw = 1.0 - float(np.prod(1.0 - stacked[:, tops[0]]))
                score = float(calibration.confidence(np.asarray([raw]))[0])
            else:
                score = float(dist[order[0]])
            confidence = min(confidence, score)
        scope = next((a.out_of_scope[i] for a in alive if a.out_of_scope[i]), None)
        if scope is not None:
            confidence = 0.0
        if failed:
            survivors = ", ".join(a.label for a in alive)
            notes.append(f"{'; '.join(failed)}: the answer of {survivors} alone")
        results.append(
            Candidate(
                output=output,
                confidence=confidence,
                alternatives=alternatives,
                out_of_scope=scope,
                note="; ".join(notes) or None,
            )
        )
    return results


def _pooled_rows(
    method: Method,
    calibration: Calibration,
    answers: Sequence[MemberAnswers],
    name: str,
    rows: Sequence[int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the `rows` every member answered, in one pass: the calibrated distributions over
    field `name`'s values, the indices of each row's three best values (best first) and each
    row's confidence. The same arithmetic as `combine` does row by row for the other rows."""
    stacked = np.stack([np.vstack([_row(a, name, i) for i in rows]) for a in answers])
    return _pooled_stack(method, calibration, stacked)


def _pooled_stack(
    method: Method, calibration: Calibration, stacked: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_pooled_rows` for the members' probability rows already stacked (members x rows x
    values): the calibrated distributions, each row's three best values and its confidence."""
    if method == "mean":
        stacked = calibration.members_tempered(stacked)
    dist = calibration.distribution(pooled(method, stacked, calibration.member_weights))
    top = np.argsort(-dist, axis=1, kind="stable")[:, :3]
    scores = calibration.confidence(np.take_along_axis(dist, top[:, :1], axis=1)[:, 0])
    return dist, top, scores


def _row(answers: MemberAnswers, name: str, i: int) -> np.ndarray:
    row = answers.probabilities[name][i]
    assert row is not None  # the member answered row i
    return row


def from_candidates(
    label: str,
    values: Mapping[str, Sequence[str]],
    answers: Sequence[Candidate | BaseException],
) -> MemberAnswers:
    """A member's probability rows from its candidates: the listed alternatives with their
    scores (or the answer with its confidence), the rest spread evenly over the other values."""
    probabilities: dict[str, list[np.ndarray | None]] = {name: [] for name in values}
    scopes: list[str | None] = []
    failures: list[str | None] = []
    for answer in answers:
        if isinstance(answer, BaseException):
            for name in values:
                probabilities[name].append(None)
            scopes.append(None)
            failures.append(_failure(answer))
            continue
        output = answer.output if isinstance(answer.output, Mapping) else {}
        rows = {}
        problem = None
        for name, names in values.items():
            listed = dict((answer.alternatives or {}).get(name) or ())
            chosen = output.get(name)
            if not isinstance(chosen, str) or chosen not in names:
                problem = "invalid output"
                break
            if chosen not in listed:
                listed[chosen] = answer.confidence if answer.confidence is not None else 0.5
            rows[name] = _spread(listed, names)
        if problem is not None:
            for name in values:
                probabilities[name].append(None)
            scopes.append(None)
            failures.append(problem)
            continue
        for name in values:
            probabilities[name].append(rows[name])
        scopes.append(answer.out_of_scope)
        failures.append(None)
    return MemberAnswers(label, probabilities, scopes, failures)


def _spread(listed: Mapping[str, float], names: Sequence[str]) -> np.ndarray:
    row = np.zeros(len(names))
    index = {n: j for j, n in enumerate(names)}
    for value, score in listed.items():
        if value in index:
            row[index[value]] = max(0.0, float(score))
    total = row.sum()
    rest = [j for j in range(len(names)) if row[j] == 0]
    if total < 1.0 and rest:
        row[rest] = (1.0 - total) / len(rest)
    return row / max(row.sum(), _EPS)


def _failure(exc: BaseException) -> str:
    if isinstance(exc, ProviderError):
        return exc.error_class
    if isinstance(exc, TimeoutError):
        return "timeout"
    return type(exc).__name__


# ---------------------------------------------------------------- the provider


class CombinedProvider:
    """Members that answer one input at a time (an LLM among them): answers are awaited."""

    name = KIND
    can_repair = False

    def __init__(
        self,
        task: TaskSpec,
        combine_spec: CombineSpec,
        members: Sequence[Provider],
        calibration: Calibration,
        sha256: str | None,
    ) -> None:
        self.task = task
        self.spec = combine_spec
        self.members = tuple(members)
        self.labels = _labels(combine_spec.everyone)
        self.first = len(combine_spec.members)
        """How many members answer every input (the rest only where escalated)."""
        self.calibration = calibration
        self.sha256 = sha256
        ids = "+".join(m.endpoint for m in self.members)
        self.endpoint = f"{KIND}:{combine_spec.method}:{ids}"
        self.values = {name: task.enum_values(name) for name in task.output}

    @classmethod
    def pinned_artifacts(cls, spec: ModelSpec, context: ProviderContext) -> dict[str, str]:
        from lockgate.providers.registry import ProviderRegistry

        combine_spec = CombineSpec.parse(spec)
        registry = ProviderRegistry.discover()
        pinned: dict[str, str] = {}
        for j, member in enumerate(combine_spec.everyone):
            sub = ProviderContext(task=context.task, settings=context.settings)
            for key, digest in registry.pinned_artifacts(member, sub).items():
                pinned[f"models.{j}.{key}"] = digest
        if combine_spec.calibration != "none":
            pinned[KIND] = _latest(context)
        return pinned

    @classmethod
    def from_spec(cls, spec: ModelSpec, context: ProviderContext) -> CombinedProvider:
        from lockgate.providers.registry import ProviderRegistry

        task = context.task
        combine_spec = CombineSpec.parse(spec)
        for name, out in task.output.items():
            if out.type != "enum":
                raise ConfigError(
                    f"task {task.name!r}: output.{name} is of type {out.type}; a combined model "
                    "combines enum output fields only"
                )
        registry = ProviderRegistry.discover()
        members = []
        for j, member in enumerate(combine_spec.everyone):
            prefix = f"models.{j}."
            pinned = {
                k.removeprefix(prefix): v
                for k, v in context.artifacts.items()
                if k.startswith(prefix)
            }
            sub = ProviderContext(task=task, settings=context.settings, artifacts=pinned)
            members.append(registry.build(member, sub))
        calibration, sha = UNCALIBRATED, None
        if combine_spec.calibration != "none":
            sha = context.artifacts.get(KIND) or _latest(context)
            calibration = _load(context.settings, task.name, sha)
            if calibration.members != tuple(_labels(combine_spec.everyone)) or (
                calibration.method != combine_spec.method
            ):
                raise ConfigError(
                    f"task {task.name!r}: the combined calibration {sha[:12]} was fitted for "
                    f"{calibration.method} of {', '.join(calibration.members)}",
                    hint=f"run `lockgate train {task.name} --data FILE` to fit it again",
                )
        kind = CombinedBatchProvider if all(isinstance(m, BatchProvider) for m in members) else cls
        return kind(task, combine_spec, members, calibration, sha)

    def training_inputs(self) -> frozenset[str] | None:
        found: set[str] = set()
        recorded = False
        for member in self.members:
            inputs = getattr(member, "training_inputs", None)
            got = inputs() if callable(inputs) else None
            if got is not None:
                found |= got
                recorded = True
        return frozenset(found) if recorded else None

    async def complete(self, request: PreparedRequest) -> Candidate:
        async def ask(member: Provider) -> Candidate | BaseException:
            try:
                return await member.complete(request)
            except Exception as exc:
                return exc

        async def answers(first: int, last: int) -> list[MemberAnswers]:
            got = await asyncio.gather(*(ask(m) for m in self.members[first:last]))
            labels = self.labels[first:last]
            return [
                from_candidates(label, self.values, [answer])
                for label, answer in zip(labels, got, strict=True)
            ]

        members = await answers(0, self.first)
        results = combine(self.spec.method, self.first_calibration, self.values, members)
        if self.unsure(results):
            extra = await answers(self.first, len(self.members))
            results = self.escalated(results, members, extra, [0])
        (result,) = results
        if isinstance(result, ProviderError):
            raise result
        return result

    @property
    def first_calibration(self) -> Calibration:
        """The calibration of the members that answer every input."""
        if not self.spec.escalation:
            return self.calibration
        return self.calibration.first or replace(UNCALIBRATED, method=self.spec.method)

    def unsure(self, results: Sequence[Candidate | ProviderError]) -> list[int]:
        """The inputs to escalate: answered, in scope, and below `escalate.below`."""
        if not self.spec.escalation:
            return []
        return [
            i
            for i, r in enumerate(results)
            if isinstance(r, Candidate)
            and r.out_of_scope is None
            and (r.confidence or 0.0) < self.spec.escalate_below
        ]

    def escalated(
        self,
        results: list[Candidate | ProviderError],
        first: Sequence[MemberAnswers],
        extra: Sequence[MemberAnswers],
        unsure: Sequence[int],
    ) -> list[Candidate | ProviderError]:
        """`results` with the `unsure` inputs decided by every member (`extra` answered those
        inputs only, in order); where an escalation member failed, the first answer stays."""
        both = [a.subset(unsure) for a in first] + list(extra)
        full = combine(self.spec.method, self.calibration, self.values, both)
        asked = ", ".join(a.label for a in extra)
        for j, (i, answer) in enumerate(zip(unsure, full, strict=True)):
            before = results[i]
            assert isinstance(before, Candidate)
            failed = [f"{a.label} failed ({a.failures[j]})" for a in extra if a.failures[j]]
            why = f"confidence {before.confidence or 0.0:.2f} below {self.spec.escalate_below:g}"
            if failed or not isinstance(answer, Candidate):
                broke = "; ".join(failed) or "it failed"
                note = f"escalated ({why}), but {broke}: the first answer kept"
                results[i] = replace(before, note=_joined(before.note, note))
            else:
                note = f"escalated ({why}): {asked} consulted"
                results[i] = replace(answer, note=_joined(answer.note, note))
        return results

    async def aclose(self) -> None:
        for member in self.members:
            await member.aclose()


class CombinedBatchProvider(CombinedProvider):
    """Every member answers batches: one vectorised pass per member."""

    def complete_batch(
        self, requests: Sequence[PreparedRequest]
    ) -> Sequence[Candidate | ProviderError]:
        if not requests:
            return []
        first = [
            member_answers(label, member, requests, self.values)
            for label, member in zip(
                self.labels[: self.first], self.members[: self.first], strict=True
            )
        ]
        results = combine(self.spec.method, self.first_calibration, self.values, first)
        unsure = self.unsure(results)
        if not unsure:
            return results
        asked = [requests[i] for i in unsure]
        extra = [
            member_answers(label, member, asked, self.values)
            for label, member in zip(
                self.labels[self.first :], self.members[self.first :], strict=True
            )
        ]
        return self.escalated(results, first, extra, unsure)

    async def complete(self, request: PreparedRequest) -> Candidate:
        (result,) = self.complete_batch([request])
        if isinstance(result, ProviderError):
            raise result
        return result


def member_answers(
    label: str,
    member: Provider,
    requests: Sequence[PreparedRequest],
    values: Mapping[str, Sequence[str]],
) -> MemberAnswers:
    """A batch member's full probability rows where it exposes them, else from candidates; a
    member that raises has failed on every input."""
    n = len(requests)
    try:
        rows = probability_rows(member, requests, values)
        if rows is not None:
            probs, scopes = rows
            return MemberAnswers(
                label,
                {name: list(p) for name, p in probs.items()},
                scopes,
                [None] * n,
            )
        assert isinstance(member, BatchProvider)
        answers = member.complete_batch(requests)
    except Exception as exc:
        return from_candidates(label, values, [exc] * n)
    return from_candidates(label, values, list(answers))


def probability_rows(
    member: Provider, requests: Sequence[PreparedRequest], values: Mapping[str, Sequence[str]]
) -> tuple[dict[str, np.ndarray], list[str | None]] | None:
    """Full probability rows (columns in the enum's order) for the classifier members."""
    from lockgate.providers.embedding_classifier import (
        EmbeddingClassifierProvider,
        align,
        scope_note,
    )
    from lockgate.providers.local_classifier import LocalClassifierProvider

    if isinstance(member, EmbeddingClassifierProvider):
        probs, similarity = member.probabilities(requests)
        threshold = member.model.oos_threshold
        scopes = [scope_note(float(s), threshold) if s < threshold else None for s in similarity]
        return probs, scopes
    if isinstance(member, LocalClassifierProvider):
        model = member._model
        raw = model.predict_proba([model.text(r.input) for r in requests])
        aligned = {name: align(raw[name], model.classes(name), values[name]) for name in values}
        return aligned, [None] * len(requests)
    return None


def _labels(members: Sequence[ModelSpec]) -> list[str]:
    labels = [m.label for m in members]
    return [f"{label}#{i}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]


# ---------------------------------------------------------------- artifacts and training


def _latest(context: ProviderContext) -> str:
    import json

    from lockgate.providers.classifier_training import _SHA256

    name = context.task.name
    pointer = context.settings.artifact_dir / name / KIND / "latest.json"
    retrain = f"run `lockgate train {name} --data FILE` (it fits the combined calibration)"
    try:
        sha = json.loads(pointer.read_text(encoding="utf-8")).get("sha256")
    except FileNotFoundError:
        raise ConfigError(
            f"task {name!r} has no fitted combined calibration", hint=retrain
        ) from None
    except (OSError, ValueError, AttributeError):
        sha = None
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise ConfigError(f"{pointer}: not a valid pointer to a combined calibration", hint=retrain)
    return sha


def _load(settings: Settings, task_name: str, sha256: str) -> Calibration:
    import hashlib
    import io

    import joblib

    from lockgate.providers.classifier_training import _SHA256

    retrain = f"run `lockgate train {task_name} --data FILE` to fit it again"
    if not _SHA256.match(sha256):
        raise ConfigError(f"{sha256!r} is not a sha256 of a combined calibration")
    path = settings.artifact_dir / task_name / KIND / f"{sha256}.joblib"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"task {task_name!r} has no combined calibration {sha256[:12]} (missing {path})",
            hint=retrain,
        ) from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ConfigError(
            f"{path}: the artifact was modified after training; refusing to load it", hint=retrain
        )
    try:
        calibration = joblib.load(io.BytesIO(data))
    except Exception as exc:
        raise ConfigError(f"{path}: cannot load ({type(exc).__name__})", hint=retrain) from None
    if not isinstance(calibration, Calibration):
        raise ConfigError(f"{path}: not a combined calibration", hint=retrain)
    return calibration


def _fit_temperature(probs: np.ndarray, truth: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of the true values."""
    from scipy.optimize import minimize_scalar

    rows = np.arange(len(truth))

    def nll(log_t: float) -> float:
        tempered = _tempered(probs, float(np.exp(log_t)))
        return float(-np.log(np.maximum(tempered[rows, truth], _EPS)).mean())

    best = minimize_scalar(nll, bounds=(np.log(0.2), np.log(20.0)), method="bounded")
    return float(np.exp(best.x))


def _fit_weights(stacked: np.ndarray, truth: np.ndarray) -> tuple[float, ...]:
    """Each member's exponent in the geometric mean (0 to 20) that minimises the negative
    log-likelihood of the true values (members x rows x values)."""
    from lockgate.providers.embedding_classifier import fit_exponents

    return fit_exponents(np.log(np.maximum(stacked, _EPS)), truth)


def fit_calibration(
    method: Method,
    kind: CalibrationKind,
    labels: Sequence[str],
    member_probs: Sequence[np.ndarray],
    truth: np.ndarray,
) -> Calibration:
    """Fit the calibration on held-out rows: `member_probs[k]` is member k's probability rows
    for one output field, `truth` the index of the true value of each row."""
    if kind == "none":
        return Calibration(method, kind, tuple(labels), n_rows=len(truth))
    stacked = np.stack(member_probs)  # members x rows x values
    if kind == "weights":
        return Calibration(
            method,
            kind,
            tuple(labels),
            n_rows=len(truth),
            member_weights=_fit_weights(stacked, truth),
        )
    mean = pooled(method, stacked)
    if method == "mean" and kind == "temperature":
        # Each member at its own temperature first (so that a sharper member does not drown
        # the other in the average), then one temperature for the average.
        members = tuple(_fit_temperature(probs, truth) for probs in stacked)
        tempered = np.stack([_tempered(p, t) for p, t in zip(stacked, members, strict=True)])
        return Calibration(
            method,
            kind,
            tuple(labels),
            temperature=_fit_temperature(tempered.mean(axis=0), truth),
            n_rows=len(truth),
            member_temperatures=members,
        )
    if method == "geometric" and kind == "temperature":
        return Calibration(
            method,
            kind,
            tuple(labels),
            temperature=_fit_temperature(mean, truth),
            n_rows=len(truth),
        )
    if method != "agreement":
        raw = mean.max(axis=1)
        correct = mean.argmax(axis=1) == truth
    else:
        tops = stacked.argmax(axis=2)  # members x rows
        agree = (tops == tops[0]).all(axis=0)
        chosen = tops[0]
        picked = np.take_along_axis(stacked, chosen[None, :, None], axis=2)[:, :, 0]
        raw = 1.0 - np.prod(1.0 - picked, axis=0)
        raw, correct = raw[agree], (chosen == truth)[agree]
        if kind == "temperature":  # a temperature has no meaning for agreement: isotonic
            kind = "isotonic"
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(raw, correct.astype(float))
    return Calibration(
        method,
        kind,
        tuple(labels),
        iso_x=tuple(float(x) for x in iso.X_thresholds_),
        iso_y=tuple(float(y) for y in iso.y_thresholds_),
        n_rows=len(truth),
    )


@dataclass(frozen=True)
class CombinedTrainReport:
    task: str
    sha256: str | None
    path: Path | None
    calibration: Calibration
    holdout_accuracy: Mapping[str, float]
    member_reports: Mapping[str, Any]
    duration_s: float


def holdout_rows(
    member: ModelSpec,
    task: TaskSpec,
    texts: Sequence[str],
    labels: Mapping[str, Sequence[str]],
    train: np.ndarray,
    test: np.ndarray,
    seed: int,
    settings: Settings | None = None,
) -> dict[str, np.ndarray]:
    """A trainable member fitted on `train` rows: its probability rows for the `test` rows
    (a fine-tuned embedding member: with the encoder of its latest artifact in `settings`)."""
    from lockgate.providers.embedding_classifier import KIND as EMBEDDING
    from lockgate.providers.embedding_classifier import (
        align,
        encoder_for,
        holdout_scores,
        nearest_option,
        trained_encoder,
    )

    if member.provider == EMBEDDING:
        encoder = trained_encoder(member, task, settings) if settings else encoder_for(member)
        vectors = encoder.embed(list(texts))
        heads, _, held = holdout_scores(vectors, labels, train, test, seed, nearest_option(member))
        return {
            name: align(held[name], head.classes, task.enum_values(name))
            for name, head in heads.items()
        }
    if member.provider == "local-classifier":
        from lockgate.providers.classifier_training import _evaluate

        return _evaluate(task, texts, labels, train, test, seed)[1]
    raise ConfigError(
        f"combine: cannot calibrate over {member.provider!r}: only local-classifier and "
        "embedding-classifier members are trained by `lockgate train`",
        hint="set combine.calibration: none for this combination",
    )


def train_combined(
    task: TaskSpec,
    spec: ModelSpec,
    records: Iterable[Record] | str | Path,
    settings: Settings,
    *,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    sealed: Mapping[str, str] | None = None,
    train_members: bool = True,
    local: TrainReport | None = None,
) -> CombinedTrainReport:
    """Train the trainable members and fit the combination's calibration on held-out rows
    (`local`: the report of the local classifier just trained on these rows, which is then
    not trained again). A member trained here, or `local`, already answered the held-out rows
    from the same split: its answers are reused rather than fitting it a second time."""
    from lockgate.providers.classifier_training import _split, train_classifier
    from lockgate.providers.embedding_classifier import (
        KIND as EMBEDDING,
    )
    from lockgate.providers.embedding_classifier import (
        read_labeled,
        store_artifact,
        train_embedding_classifier,
    )

    started = time.perf_counter()
    say = progress or (lambda _message: None)
    combine_spec = CombineSpec.parse(spec)
    labels = _labels(combine_spec.everyone)
    rows = list(records) if not isinstance(records, str | Path) else records
    data = read_labeled(task, rows, sealed=sealed)
    train, test = _split(data.labels, task.evaluation.holdout_share, seed)
    per_field: dict[str, list[np.ndarray]] = {name: [] for name in data.labels}
    calibrate = combine_spec.calibration != "none"
    reports: dict[str, Any] = {}
    if train_members:
        for label, member in zip(labels, combine_spec.everyone, strict=True):
            if member.provider == EMBEDDING:
                say(f"{label}: training on every row")
                reports[label] = train_embedding_classifier(
                    task, rows, settings, member, seed=seed, sealed=sealed, progress=progress
                )
            elif member.provider == "local-classifier" and local is None:
                say(f"{label}: training on every row")
                reports[label] = local = train_classifier(
                    task, rows, settings, seed=seed, sealed=sealed
                )
    if calibrate:
        # after the members: a fine-tuned encoder (tuned on the same `train` rows) is used
        for label, member in zip(labels, combine_spec.everyone, strict=True):
            trained = local if member.provider == "local-classifier" else reports.get(label)
            answered = trained.held_out if trained is not None else None
            reused = answered.for_split(data.data_hash, test) if answered is not None else None
            if reused is not None:
                say(f"{label}: calibrating with its answers on the {len(test)} held-out rows")
                rows_by_field = dict(reused)
            else:
                say(f"{label}: fitting on {len(train)} rows to calibrate on {len(test)} held out")
                rows_by_field = holdout_rows(
                    member, task, data.texts, data.labels, train, test, seed, settings
                )
            for name, probs in rows_by_field.items():
                per_field[name].append(probs)
    if not calibrate:
        return CombinedTrainReport(
            task.name, None, None, UNCALIBRATED, {}, reports, time.perf_counter() - started
        )
    first = next(iter(data.labels))
    values = task.enum_values(first)
    index = {v: j for j, v in enumerate(values)}
    truth = np.asarray([index[data.labels[first][i]] for i in test])
    calibration = fit_calibration(
        combine_spec.method, combine_spec.calibration, labels, per_field[first], truth
    )
    escalated: float | None = None
    if combine_spec.escalation:
        n = len(combine_spec.members)
        alone = fit_calibration(
            combine_spec.method, combine_spec.calibration, labels[:n], per_field[first][:n], truth
        )
        calibration = replace(calibration, first=alone)
        if combine_spec.method != "agreement":
            escalated = float(
                (
                    _pooled_stack(combine_spec.method, alone, np.stack(per_field[first][:n]))[2]
                    < combine_spec.escalate_below
                ).mean()
            )
            say(f"escalate: {escalated:.1%} of the held-out rows are below the threshold")
    accuracy = {}
    for name, member_probs in per_field.items():
        names = task.enum_values(name)
        _, top, _ = _pooled_stack(combine_spec.method, calibration, np.stack(member_probs))
        predicted = np.asarray(names)[top[:, 0]]
        accuracy[name] = float(
            (predicted == np.asarray([data.labels[name][i] for i in test])).mean()
        )
    meta = {
        "task": task.name,
        "kind": KIND,
        "method": combine_spec.method,
        "calibration": calibration.kind,
        "members": labels,
        "temperature": calibration.temperature,
        "member_weights": list(calibration.member_weights),
        "escalate": (
            {"below": combine_spec.escalate_below, "holdout_share_escalated": escalated}
            if combine_spec.escalation
            else None
        ),
        "n_holdout": len(test),
        "holdout_accuracy": accuracy,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_hash": data.data_hash,
        "seed": seed,
    }
    sha, path = store_artifact(settings, task.name, KIND, calibration, meta)
    return CombinedTrainReport(
        task.name, sha, path, calibration, accuracy, reports, time.perf_counter() - started
    )
