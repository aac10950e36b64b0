"""The readiness report: a task's production checklist, read from the live state.

Each item is `pass`, `warn` or `fail`, with its evidence (what was found) and, unless it
passes, the commands that fix it, in the order to run them. A command may hold placeholders
written `<NAME>` (a file to give, a key's name, the accuracy the owner wants); the item lists
them with what to put there. The items are ordered so that fixing the first one that does not
pass never needs a later one: follow the first item's commands, run the report again, and
repeat.

Settings that are part of how a task decides (its chain, policy, budget, sinks, gate) are read
from the task file, and one item checks that the live release is the task file as it is now;
the other items read the live release and the database.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from lockgate.decide.task import TaskSpec
from lockgate.evals.types import Dataset
from lockgate.rollout.gates import GateResult
from lockgate.rollout.release import Release
from lockgate.security import PERMISSIONS, ApiKey

Status = Literal["pass", "warn", "fail"]

MIN_SEALED_ROWS = 200
CHANNEL_TEST_DAYS = 30
BACKUP_HOURS = 24

PLACEHOLDERS: dict[str, str] = {
    "FILE": "a CSV or JSONL file of labeled rows (columns named by the task's input and output "
    "fields), never used for training",
    "TRAINING_FILE": "the task's labeled training data (CSV or JSONL)",
    "CALIBRATION_FILE": "labeled rows for calibrating the threshold: not the gate dataset's, "
    "not the training data's",
    "TARGET": "the accuracy the task's owner needs on automated decisions, e.g. 0.95",
    "REVIEWER_1": "a name for a reviewer's key (a person or a team)",
    "REVIEWER_2": "a name for a second reviewer's key (another person)",
    "URL": "the https:// address of your on-call webhook (or use an email channel)",
    "SECRET_ENV": "the environment variable that holds the webhook's signing secret",
    "BACKUP_FILE": "where the backup goes, e.g. backups/lockgate-2026-11-29.db",
    "PATTERN": "a regular expression for inputs the rules model recognises",
    "VALUE": "the output a rule gives",
}


@dataclass(frozen=True)
class Item:
    name: str
    title: str
    status: Status
    evidence: str
    commands: tuple[str, ...] = ()

    @property
    def placeholders(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for command in self.commands:
            for name, meaning in PLACEHOLDERS.items():
                if f"<{name}>" in command:
                    found[name] = meaning
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "evidence": self.evidence,
            "commands": list(self.commands),
            "placeholders": self.placeholders,
        }


@dataclass(frozen=True)
class Report:
    task: str
    live: str | None
    items: tuple[Item, ...]
    checked_at: datetime

    @property
    def score(self) -> int:
        """Per cent: a pass counts 1, a warning half."""
        if not self.items:
            return 0
        points = sum(
            1.0 if i.status == "pass" else 0.5 if i.status == "warn" else 0.0 for i in self.items
        )
        return round(100 * points / len(self.items))

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for i in self.items if i.status == s) for s in ("pass", "warn", "fail")}

    def next_steps(self, limit: int = 3) -> list[str]:
        """The commands of the first items that do not pass, in order, without repeats."""
        steps: list[str] = []
        for item in self.items:
            if item.status == "pass":
                continue
            for command in item.commands:
                if command not in steps:
                    steps.append(command)
            if len(steps) >= limit:
                break
        return steps[:limit]

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "live": self.live,
            "checked_at": self.checked_at.isoformat(),
            "score": self.score,
            "counts": self.counts(),
            "items": [i.as_dict() for i in self.items],
            "next": self.next_steps(),
        }


class ReadinessStore(Protocol):
    """What the report reads from storage (`server.readiness.StoreFacts` over `Store`)."""

    def releases(self, task: str) -> Sequence[Release]: ...

    def datasets(self, task: str) -> Sequence[Dataset]: ...

    def gate(self, release: Release) -> GateResult | None: ...

    def api_keys(self) -> Sequence[ApiKey]: ...

    def dead_letters(self, task: str) -> int: ...

    def audited(
        self, task: str, actions: tuple[str, ...]
    ) -> Sequence[tuple[str, str | None, dict[str, Any]]]: ...

    def has_profile(self, task: str, number: int) -> bool: ...

    def newest_backup(self) -> datetime | None: ...

    def channel_tests(self) -> Mapping[str, datetime]: ...

    def runbook(self, task: str) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True)
class Setup:
    """What the edge knows of the project besides storage."""

    spec: TaskSpec
    task_file: str
    """The task file as shown to the user, e.g. tasks/routing.yaml."""
    draft_hash: str | None
    """The content hash of the release the task file describes now; None when it cannot be
    built (`draft_problem` says why, e.g. the model is not trained yet)."""
    draft_problem: str | None
    trained_providers: frozenset[str]
    """Providers of the chain that `lockgate train` trains."""
    channels: frozenset[str]
    """Alert channels declared in lockgate.yaml (not `log`)."""
    rule_channels: Mapping[str, tuple[str, ...]]
    """The task's alert rules and the channels each notifies."""
    overall_budget: bool
    backend: str
    now: datetime
    cli: str = "lockgate"
    project_option: tuple[str, ...] = field(default=())
    """Options every command needs to reach this project (`--project DIR`), if any."""


def may_review(key: ApiKey, task: str) -> bool:
    """An active key whose role may give verdicts on `task`'s items."""
    return (
        key.revoked_at is None
        and "review" in PERMISSIONS[key.role]
        and (not key.tasks or task in key.tasks)
    )


def readiness(store: ReadinessStore, setup: Setup) -> Report:
    """Every item of the checklist, in the order to fix them."""
    check = _Checks(store, setup)
    items = [
        check.fallback(),
        check.timeouts(),
        check.review_policy(),
        check.spot_checks(),
        check.budget(),
        check.retention(),
        check.delivery(),
        check.sealed_dataset(),
        check.calibrated(),
        check.live_current(),
        check.eval_gate(),
        check.rollout(),
        check.drift_reference(),
        check.reviewers(),
        check.alerts(),
        check.backup(),
        check.runbook(),
    ]
    live = check.live
    return Report(setup.spec.name, live.ref if live else None, tuple(items), setup.now)


class _Checks:
    def __init__(self, store: ReadinessStore, setup: Setup) -> None:
        self.store = store
        self.setup = setup
        self.spec = setup.spec
        self.task = setup.spec.name
        self.releases = list(store.releases(self.task))
        self.live = next((r for r in self.releases if r.stage == "live"), None)
        self.candidate = next(
            (r for r in self.releases if setup.draft_hash and r.content_hash == setup.draft_hash),
            None,
        )

    # ---- helpers

    def cmd(self, *words: str) -> str:
        shown = [self.setup.cli, *words, *self.setup.project_option]
        return " ".join(
            w if w.startswith("<") and w.endswith(">") else shlex.quote(w) for w in shown
        )

    def set_cmd(self, *pairs: str) -> str:
        return self.cmd("set", self.task, *pairs)

    def item(self, name: str, title: str, status: Status, evidence: str, *commands: str) -> Item:
        return Item(name, title, status, evidence, () if status == "pass" else tuple(commands))

    def release_steps(self) -> tuple[str, str]:
        """The next step towards a live release that is the task file as it is now, and why."""
        setup = self.setup
        if setup.draft_hash is None:
            trained = sorted(setup.trained_providers)
            if trained:
                return (
                    self.cmd("train", self.task, "--data", "<TRAINING_FILE>"),
                    f"the task file's release cannot be built: {setup.draft_problem}",
                )
            return "", f"the task file's release cannot be built: {setup.draft_problem}"
        candidate = self.candidate
        if candidate is None:
            return self.cmd("release", "create", self.task), "the task file is not a release yet"
        if candidate.stage == "live":
            return "", f"{candidate.ref} is live and is the task file as it is now"
        gate = self.store.gate(candidate)
        if gate is not None and not gate.passed:
            dataset = self.spec.evaluation.gate_dataset
            if dataset is not None and self._dataset(dataset) is not None:
                return (
                    self.cmd(
                        "eval", self.task, "--release", str(candidate.number), "--dataset", dataset
                    ),
                    f"{candidate.ref} does not pass its gate yet: {gate.summary()}",
                )
            return "", f"{candidate.ref} does not pass its gate: {gate.summary()}"
        if not self._rolled_out(candidate):
            return (
                self.cmd("release", "shadow", candidate.ref),
                f"{candidate.ref} ({candidate.stage}) has not run in shadow or as a canary",
            )
        return (
            self.cmd("release", "promote", candidate.ref),
            f"{candidate.ref} passes its gate and went through {self._rolled_out(candidate)}; "
            "it is not live",
        )

    def _rolled_out(self, release: Release) -> str:
        found = self.store.audited(self.task, ("release.shadow_started", "release.canary_started"))
        stages = [
            a.removeprefix("release.").removesuffix("_started")
            for a, s, _ in found
            if s == release.ref
        ]
        return " and ".join(sorted(set(stages)))

    def _dataset(self, name: str) -> Dataset | None:
        return next((d for d in self.store.datasets(self.task) if d.name == name), None)

    def _needs_live(self, name: str, title: str) -> Item | None:
        """A failing item when the task has no live release, or the live one is not the task
        file as it is now (the commands are the next release step)."""
        if self.live is not None and self.live.content_hash == self.setup.draft_hash:
            return None
        step, why = self.release_steps()
        evidence = "no live release" if self.live is None else f"{self.live.ref} is live; {why}"
        return self.item(name, title, "fail", evidence, *([step] if step else []))

    # ---- the task file

    def fallback(self) -> Item:
        title = "A fallback model in the chain"
        models = self.spec.models
        chain = ", then ".join(m.label for m in models)
        if len(models) >= 2:
            return self.item("fallback", title, "pass", f"models: {chain}")
        first = next(iter(self.spec.output))
        rule = (
            f'{{provider: rules, rules: [{{if_matches: "<PATTERN>", then: {{{first}: <VALUE>}}}}]}}'
        )
        return self.item(
            "fallback",
            title,
            "fail",
            f"one model only ({chain}): when it fails, every decision fails",
            self.set_cmd(f"models.{len(models)}={rule}"),
        )

    def timeouts(self) -> Item:
        title = "Timeouts and retries set for every model"
        missing: list[str] = []
        shown: list[str] = []
        for i, model in enumerate(self.spec.models):
            stated = model.model_fields_set
            shown.append(f"{model.label} {model.timeout_s:g}s x{model.retries + 1}")
            if "timeout_s" not in stated:
                missing.append(f"models.{i}.timeout_s={model.timeout_s:g}")
            if "retries" not in stated:
                missing.append(f"models.{i}.retries={model.retries}")
        if not missing:
            return self.item("timeouts", title, "pass", "; ".join(shown))
        return self.item(
            "timeouts",
            title,
            "fail",
            f"{self.setup.task_file} leaves {', '.join(m.split('=')[0] for m in missing)} to the "
            "defaults; state them (the values shown are the defaults in force)",
            self.set_cmd(*missing),
        )

    def review_policy(self) -> Item:
        title = "A review policy"
        policy = self.spec.policy
        rules = len(policy.review_when)
        if policy.mode == "gated" and (rules or policy.auto_min_confidence > 0):
            evidence = f"confidence below {policy.auto_min_confidence:g} goes to review"
            if rules:
                evidence += f"; {rules} review_when rule{'s' if rules > 1 else ''}"
            if policy.two_person_when:
                evidence += f"; {len(policy.two_person_when)} two_person_when rule(s)"
            return self.item("review_policy", title, "pass", evidence)
        if policy.mode != "gated":
            return self.item(
                "review_policy",
                title,
                "warn",
                f"policy.mode is {policy.mode}: nothing is decided without a person",
                self.set_cmd("policy.mode=gated"),
            )
        return self.item(
            "review_policy",
            title,
            "fail",
            "every decision is automated: no review_when rule and auto_min_confidence 0",
            self.set_cmd("policy.auto_min_confidence=0.8"),
        )

    def spot_checks(self) -> Item:
        rate = self.spec.policy.spot_check_rate
        title = "Spot checks on automated decisions"
        if rate:
            return self.item("spot_checks", title, "pass", f"policy.spot_check_rate {rate:g}")
        return self.item(
            "spot_checks",
            title,
            "fail",
            "policy.spot_check_rate is not set: the accuracy of automated decisions is not "
            "measured",
            self.set_cmd("policy.spot_check_rate=0.02"),
        )

    def budget(self) -> Item:
        title = "A budget"
        budget = self.spec.budget
        if budget is not None:
            parts = [
                f"per {period}: "
                + ", ".join(
                    part
                    for part in (
                        f"${limit.usd:g}" if limit.usd is not None else "",
                        f"{limit.calls} calls" if limit.calls is not None else "",
                    )
                    if part
                )
                for period, limit in (("day", budget.per_day), ("month", budget.per_month))
                if limit is not None
            ]
            return self.item(
                "budget",
                title,
                "pass",
                "; ".join(parts) + f"; at the limit: {budget.on_hard_limit}",
            )
        if self.setup.overall_budget:
            return self.item("budget", title, "pass", "lockgate.yaml's overall budget applies")
        return self.item(
            "budget",
            title,
            "fail",
            "no budget: nothing limits what the model calls cost",
            self.set_cmd("budget={per_day: {calls: 5000}, on_hard_limit: review}"),
        )

    def retention(self) -> Item:
        title = "Retention set"
        kept = self.spec.retention
        if kept is not None:
            parts = [
                f"{k} {getattr(kept, k)}"
                for k in ("inputs", "outputs", "attempts")
                if getattr(kept, k) is not None
            ]
            forever = [k for k in ("inputs", "outputs", "attempts") if getattr(kept, k) is None]
            evidence = "keeps " + ", ".join(parts)
            if forever:
                return self.item(
                    "retention",
                    title,
                    "warn",
                    evidence + f"; {', '.join(forever)} for ever",
                    self.set_cmd(
                        *(f"retention.{k}={'365d' if k == 'outputs' else '90d'}" for k in forever)
                    ),
                )
            return self.item("retention", title, "pass", evidence)
        return self.item(
            "retention",
            title,
            "fail",
            "no retention: inputs (personal data) are kept for ever",
            self.set_cmd("retention={inputs: 90d, outputs: 365d, attempts: 30d}"),
        )

    def delivery(self) -> Item:
        title = "A delivery sink with no dead letters"
        sinks = self.spec.deliver
        if not sinks:
            return self.item(
                "delivery",
                title,
                "fail",
                "no sink under deliver: outcomes are only read back from Lockgate",
                self.set_cmd(f"deliver=[{{sink: file, path: out/{self.task}.jsonl}}]"),
            )
        names = ", ".join(s.sink for s in sinks)
        dead = self.store.dead_letters(self.task)
        if dead:
            return self.item(
                "delivery",
                title,
                "fail",
                f"sinks: {names}; {dead} dead-lettered deliver{'y' if dead == 1 else 'ies'}",
                self.cmd("deliveries", "list", "--status", "dead"),
            )
        return self.item("delivery", title, "pass", f"sinks: {names}; no dead letters")

    def sealed_dataset(self) -> Item:
        title = f"A sealed gate dataset of at least {MIN_SEALED_ROWS} rows, and a gate"
        name = self.spec.evaluation.gate_dataset
        found = self._dataset(name) if name is not None else None
        if found is not None and found.sealed and found.rows >= MIN_SEALED_ROWS:
            evidence = f"{name}: {found.rows} rows, sealed ({found.content_hash[:12]})"
            gate = self.spec.evaluation.gate
            if gate is None:
                return self.item(
                    "sealed_dataset",
                    title,
                    "fail",
                    f"{evidence}; no evaluation.gate: a release can be promoted untested",
                    self.set_cmd("evaluation.gate={min_accuracy: 0.8}"),
                )
            bounds = ", ".join(
                f"{k} {v:g}"
                for k, v in gate.model_dump(exclude_none=True).items()
                if isinstance(v, int | float)
            )
            return self.item(
                "sealed_dataset", title, "pass", f"{evidence}; gate: {bounds or 'set'}"
            )
        big = [d for d in self.store.datasets(self.task) if d.sealed and d.rows >= MIN_SEALED_ROWS]
        if big:
            return self.item(
                "sealed_dataset",
                title,
                "fail",
                f"{big[0].name} ({big[0].rows} rows, sealed) is not the task's "
                "evaluation.gate_dataset",
                self.set_cmd(f"evaluation.gate_dataset={big[0].name}"),
            )
        if found is None:
            why, fresh = "no sealed dataset", name or "gate"
        else:
            why = f"{name} has {found.rows} rows" + ("" if found.sealed else " and is not sealed")
            fresh = f"{name}-sealed"
        commands = [self.cmd("dataset", "add", self.task, fresh, "<FILE>", "--sealed")]
        if fresh != name:
            commands.append(self.set_cmd(f"evaluation.gate_dataset={fresh}"))
        return self.item("sealed_dataset", title, "fail", why, *commands)

    def calibrated(self) -> Item:
        title = "The threshold calibrated to a stated target"
        threshold = self.spec.policy.auto_min_confidence
        for _, subject, details in reversed(self.store.audited(self.task, ("policy.calibrate",))):
            if details.get("threshold") == threshold:
                return self.item(
                    "calibrated",
                    title,
                    "pass",
                    f"auto_min_confidence {threshold:g} was calibrated for "
                    f"{details.get('target_accuracy', 0):.1%} accuracy on automated decisions "
                    f"(lower bound {details.get('lower_bound', 0):.1%}, "
                    f"{details.get('coverage', 0):.1%} automated) on {details.get('dataset')} "
                    f"({subject})",
                )
        evidence = f"auto_min_confidence {threshold:g} was not calibrated"
        name = self.spec.evaluation.calibration_dataset
        if name is None or self._dataset(name) is None:
            fresh = name or "calibration"
            commands = [self.cmd("dataset", "add", self.task, fresh, "<CALIBRATION_FILE>")]
            if name is None:
                commands.append(self.set_cmd(f"evaluation.calibration_dataset={fresh}"))
            return self.item(
                "calibrated",
                title,
                "fail",
                evidence + "; there is no calibration dataset",
                *commands,
            )
        source = self.candidate
        if source is None:
            step, why = self.release_steps()
            return self.item(
                "calibrated", title, "fail", f"{evidence}; {why}", *([step] if step else [])
            )
        return self.item(
            "calibrated",
            title,
            "fail",
            evidence,
            self.cmd(
                "calibrate", self.task, "--release", source.ref, "--target-accuracy", "<TARGET>"
            ),
        )

    # ---- the live release

    def live_current(self) -> Item:
        title = "The live release is the task file as it is now"
        live = self.live
        if live is not None and live.content_hash == self.setup.draft_hash:
            return self.item(
                "live_current", title, "pass", f"{live.ref} ({live.content_hash[:12]})"
            )
        step, why = self.release_steps()
        evidence = why if live is None else f"{live.ref} is live; {why}"
        if live is None:
            evidence = f"no live release; {why}"
        return self.item("live_current", title, "fail", evidence, *([step] if step else []))

    def eval_gate(self) -> Item:
        title = "The live release's eval passes its gate"
        waiting = self._needs_live("eval_gate", title)
        if waiting is not None:
            return waiting
        assert self.live is not None
        result = self.store.gate(self.live)
        if result is None:
            return self.item(
                "eval_gate",
                title,
                "fail",
                f"{self.live.ref} has no evaluation.gate: it went live untested",
                self.set_cmd("evaluation.gate={min_accuracy: 0.8}"),
            )
        if not result.passed:
            summary = result.summary()
            dataset = self.spec.evaluation.gate_dataset or "gate"
            return self.item(
                "eval_gate",
                title,
                "fail",
                f"{self.live.ref}: {summary}",
                self.cmd(
                    "eval", self.task, "--release", str(self.live.number), "--dataset", dataset
                ),
            )
        return self.item("eval_gate", title, "pass", f"{self.live.ref}: {result.summary()}")

    def rollout(self) -> Item:
        title = "The live release went through shadow or canary"
        waiting = self._needs_live("rollout", title)
        if waiting is not None:
            return waiting
        assert self.live is not None
        how = self._rolled_out(self.live)
        if how:
            return self.item(
                "rollout", title, "pass", f"{self.live.ref} ran as {how} before going live"
            )
        # No command undoes that: the next release (a change of the task file) goes through
        # shadow first, as the live_current item's steps lead it.
        return self.item(
            "rollout",
            title,
            "warn",
            f"{self.live.ref} went live without a shadow or canary run; run the next release in "
            "shadow before promoting it",
        )

    def drift_reference(self) -> Item:
        title = "A drift reference for the live release"
        waiting = self._needs_live("drift_reference", title)
        if waiting is not None:
            return waiting
        assert self.live is not None
        if self.store.has_profile(self.task, self.live.number):
            return self.item(
                "drift_reference", title, "pass", f"{self.live.ref} has a reference profile"
            )
        return self.item(
            "drift_reference",
            title,
            "fail",
            f"{self.live.ref} has no reference profile: drift cannot be measured",
            self.cmd("release", "create", self.task),
        )

    # ---- people, alerts, backups, the runbook

    def reviewers(self) -> Item:
        title = "At least two reviewer keys"
        names = sorted(k.name for k in self.store.api_keys() if may_review(k, self.task))
        two_person = bool(self.spec.policy.two_person_when)
        rule = "; two_person_when needs two different reviewers" if two_person else ""
        if len(names) >= 2:
            return self.item(
                "reviewers",
                title,
                "pass",
                f"{len(names)} keys may review: {', '.join(names)}{rule}",
            )
        commands = [
            self.cmd(
                "keys",
                "create",
                "--name",
                f"<REVIEWER_{i}>",
                "--role",
                "reviewer",
                "--task",
                self.task,
            )
            for i in range(len(names) + 1, 3)
        ]
        found = f"{len(names)} key{'s' if len(names) != 1 else ''} may review" + (
            f" ({', '.join(names)})" if names else ""
        )
        return self.item("reviewers", title, "fail", found + rule, *commands)

    def alerts(self) -> Item:
        title = f"Alerts reach a channel tested in the last {CHANNEL_TEST_DAYS} days"
        setup = self.setup
        reached = sorted({c for chans in setup.rule_channels.values() for c in chans if c != "log"})
        if not setup.channels:
            return self.item(
                "alerts",
                title,
                "fail",
                "alerts go to the log only: no channel under alert_channels in lockgate.yaml",
                self.cmd(
                    "set",
                    "--settings",
                    'alert_channels.oncall={type: webhook, url: "<URL>", secret_env: <SECRET_ENV>}',
                ),
            )
        if not reached:
            channel = sorted(setup.channels)[0]
            wanted = ", ".join(
                f"{{condition: {c}, severity: critical, channels: [log, {channel}]}}"
                for c in ("failure_rate", "breaker_open", "stalled_intake")
            )
            return self.item(
                "alerts",
                title,
                "fail",
                f"no alert rule of {self.task} notifies a channel but the log",
                self.set_cmd(f"alerts=[{wanted}]"),
            )
        tests = self.store.channel_tests()
        since = setup.now - timedelta(days=CHANNEL_TEST_DAYS)
        fresh = [c for c in reached if c in tests and tests[c] >= since]
        stale = [c for c in reached if c not in fresh]
        rules = sorted(r for r, chans in setup.rule_channels.items() if set(chans) & set(reached))
        if not stale:
            shown = ", ".join(f"{c} (tested {tests[c]:%Y-%m-%d %H:%M})" for c in fresh)
            return self.item("alerts", title, "pass", f"{len(rules)} rules notify {shown}")
        status: Status = "warn" if fresh else "fail"
        return self.item(
            "alerts",
            title,
            status,
            f"not tested in {CHANNEL_TEST_DAYS} days: {', '.join(stale)}",
            *(self.cmd("alerts", "test", c) for c in stale),
        )

    def backup(self) -> Item:
        title = f"A backup in the last {BACKUP_HOURS} h"
        newest = self.store.newest_backup()
        command = self.cmd("backup", "--out", "<BACKUP_FILE>")
        if newest is None:
            return self.item("backup", title, "fail", "no backup recorded", command)
        age = self.setup.now - newest
        hours = age.total_seconds() / 3600
        if age <= timedelta(hours=BACKUP_HOURS):
            return self.item(
                "backup", title, "pass", f"newest {newest:%Y-%m-%d %H:%M} UTC ({hours:.1f} h ago)"
            )
        return self.item(
            "backup",
            title,
            "fail",
            f"newest {newest:%Y-%m-%d %H:%M} UTC ({hours:.0f} h ago)",
            command,
        )

    def runbook(self) -> Item:
        title = "The runbook generated for the live release"
        waiting = self._needs_live("runbook", title)
        if waiting is not None:
            return waiting
        assert self.live is not None
        written = self.store.runbook(self.task)
        command = self.cmd("runbook", self.task, "--out", f"RUNBOOK-{self.task}.md")
        if written is None:
            return self.item("runbook", title, "fail", "no runbook was generated", command)
        if written.get("hash") != self.live.content_hash:
            return self.item(
                "runbook",
                title,
                "fail",
                f"the runbook was generated for {written.get('release')}, not {self.live.ref}",
                command,
            )
        return self.item(
            "runbook",
            title,
            "pass",
            f"generated for {self.live.ref} at {str(written.get('at'))[:16]}",
        )
