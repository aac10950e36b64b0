"""The runbook: how to run one task, written from its live configuration so it is never stale.

`render(context)` is pure: it takes the task file, the live release, the alert rules and a
few facts of the project, and returns Markdown. Every command in it is a `lockgate` command
that parses as written (a test runs each through the command line's parser); a value the
reader has to supply is written `<LIKE_THIS>`. Secrets never appear: sinks and channels are
named, keys by their names and roles, and a secret only by the environment variable that
holds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from lockgate.decide.task import ModelSpec, TaskSpec
from lockgate.rollout.release import Release

# What to do first when a built-in alert fires: three steps each ({task} is the task).
FIRST_STEPS: dict[str, tuple[str, str, str]] = {
    "failure_rate": (
        "See which model fails and why: `lockgate history {task} --from 1h --step 5m`.",
        "If a new release caused it, roll back: `lockgate release rollback {task} "
        '--reason "<WHY>"`.',
        "If a provider is down, the chain falls back by itself; tell the provider's owner.",
    ),
    "latency_p95_ms": (
        "Check the latency per release: `lockgate history {task} --from 1h --step 5m`.",
        "Check the model server or the provider's status page; lower `timeout_s` if calls hang.",
        "If a new release caused it, roll back: `lockgate release rollback {task} "
        '--reason "<WHY>"`.',
    ),
    "review_backlog": (
        "See the queue: `lockgate review list --task {task}`.",
        "Ask more reviewers to work the queue (the review pages under /ui/).",
        "If the model became less sure, check drift: `lockgate drift {task}`.",
    ),
    "review_oldest_sla": (
        "See the oldest items: `lockgate review list --task {task}`.",
        "Escalate overdue items: `lockgate review escalate`.",
        "Ask a reviewer to take them now (the review pages under /ui/).",
    ),
    "breaker_open": (
        "The fallback model answers meanwhile; see the failures: `lockgate history {task} "
        "--from 1h --step 5m`.",
        "Check the provider (its status page, its key, its quota).",
        "The breaker probes again after its cooldown by itself; nothing to reset.",
    ),
    "dead_letters": (
        "See what could not be delivered and why: `lockgate deliveries list --status dead`.",
        "Fix the receiver (its address, its secret, its availability).",
        "Send them again: `lockgate deliveries retry <ID>`.",
    ),
    "canary_rolled_back": (
        "See why: `lockgate release canary-check {task}`.",
        "Compare the releases: `lockgate release diff {task}@<N> {task}@<M>`.",
        "Fix the release and run it in shadow first: `lockgate release shadow {task}@<N>`.",
    ),
    "stalled_intake": (
        "Check that `lockgate serve` (and workers) run: `lockgate sources show {task}`.",
        "Check the senders of decisions (their logs, their keys).",
        "Look at quarantined records: `lockgate quarantine list --task {task}`.",
    ),
    "live_accuracy": (
        "See live accuracy per release and label: `lockgate accuracy {task}`.",
        "Check whether the inputs moved: `lockgate drift {task}`.",
        "Retrain with the human labels: `lockgate retrain {task} --data <TRAINING_FILE>`; if a "
        'new release caused it, roll back: `lockgate release rollback {task} --reason "<WHY>"`.',
    ),
    "drift": (
        "See which signals moved: `lockgate drift {task}`.",
        "Check that live accuracy holds: `lockgate accuracy {task}`.",
        "If the inputs changed for good, retrain: `lockgate retrain {task} --data "
        "<TRAINING_FILE>`.",
    ),
    "budget_used": (
        "See what is spent, held and left, and when the period resets: "
        "`lockgate budget show {task}`.",
        "If the spend is expected, raise the limit in the task file's `budget:` and ship it: "
        "`lockgate release create {task}`, then `lockgate release promote {task}@<N>`.",
        "If it is not, find what drives it: `lockgate history {task} --from 24h --step 1h`.",
    ),
    "source_failing": (
        "See the source's last error: `lockgate sources show --task {task}`.",
        "Fix what it reads (the mounted folder, the mailbox's or database's address and secret).",
        "Read it again now (its cursor did not move): `lockgate intake run --once --task {task}`.",
    ),
    "schema_drift": (
        "See the schema events and the source's status: `lockgate sources show --task {task}`.",
        "Fix the mapping in the task file (`map:` aliases), then resume the source: "
        "`lockgate sources resume <SOURCE> --task {task}`.",
        "Decide its held records: `lockgate quarantine replay --source <SOURCE> --task {task}`.",
    ),
}
_GENERIC_STEPS = (
    "See the task's recent history: `lockgate history {task} --from 1h --step 5m`.",
    "See every rule and its state: `lockgate alerts list`.",
    'If a change caused it, roll back: `lockgate release rollback {task} --reason "<WHY>"`.',
)


@dataclass(frozen=True)
class Context:
    spec: TaskSpec
    task_file: str
    live: Release | None
    previous: Release | None
    """The release a rollback returns to."""
    rules: Sequence[Any]
    """The task's alert rules (`watch.alerts.Rule`)."""
    channels: tuple[str, ...]
    """Alert channels declared in lockgate.yaml (besides `log`)."""
    backend: str
    review_sla_minutes: float | None
    reviewers: tuple[str, ...]
    """Names of the keys that may review the task."""
    generated_at: datetime
    callers: tuple[str, ...] = ()
    """Names of the keys that may ask for the task's decisions (submitters and operators)."""


def render(context: Context) -> str:
    spec = context.spec
    task = spec.name
    out: list[str] = []
    add = out.append
    live = context.live
    add(f"# Runbook: {task}")
    add("")
    source = (
        f" and the live release {live.ref} (content {live.content_hash[:12]})"
        if live
        else " (no release is live yet)"
    )
    add(
        f"Generated from {context.task_file}{source} at "
        f"{context.generated_at:%Y-%m-%d %H:%M} UTC. Generate it again after every change:"
    )
    add("")
    _code(out, f"lockgate runbook {task} --out RUNBOOK-{task}.md")

    add("## Owner and purpose")
    add("")
    add(f"- **Owner:** {spec.owner or 'not set (add `owner:` to the task file)'}")
    add(f"- **Decides:** {spec.description or spec.instructions.strip() or task}")
    outputs = "; ".join(_output(name, f) for name, f in spec.output.items())
    add(f"- **Output:** {outputs}")
    inputs = ", ".join(
        f"{name} ({f.type}{', personal data' if f.pii else ''})" for name, f in spec.input.items()
    )
    add(f"- **Input:** {inputs}")
    add(f"- **Outcomes go to:** {_sinks(spec)}")
    callers = ", ".join(context.callers) or "no key that may submit yet"
    add(f"- **Asked by (keys):** {callers}")
    reviewers = ", ".join(context.reviewers) or "no reviewer key yet"
    add(f"- **Reviewers (keys):** {reviewers}")
    add("")

    add("## Model chain")
    add("")
    add(
        "Tried in order: a model that fails, times out or gives an invalid answer (after one "
        "repair) passes the decision to the next."
    )
    add("")
    add("| # | model | role | timeout | tries | backoff | circuit breaker |")
    add("|---|---|---|---|---|---|---|")
    for i, model in enumerate(spec.models):
        add(_model_row(i, model, len(spec.models)))
    add("")
    policy = spec.policy
    add(
        f"Policy: confidence at or above {policy.auto_min_confidence:g} is automated, "
        "below goes to review"
        + (f"; {len(policy.review_when)} review_when rule(s)" if policy.review_when else "")
        + (f"; {len(policy.reject_when)} reject_when rule(s)" if policy.reject_when else "")
        + (
            f"; two reviewers where {len(policy.two_person_when)} two_person_when rule(s) hold"
            if policy.two_person_when
            else ""
        )
        + (
            f"; {policy.spot_check_rate:.1%} of automated decisions spot-checked"
            if policy.spot_check_rate
            else ""
        )
        + (f"; review SLA {policy.review_sla_minutes:g} min" if policy.review_sla_minutes else "")
        + "."
    )
    add("")

    add("## Failure modes")
    add("")
    for title, what, steps in _failure_modes(context):
        add(f"### {title}")
        add("")
        add(what)
        add("")
        _code(out, *steps)
    add("## Alerts")
    add("")
    if not context.rules:
        add("No alert rule applies to this task.")
        add("")
    for rule in context.rules:
        condition = rule.condition
        channels = ", ".join(rule.channels)
        add(f"### {rule.name} ({rule.severity})")
        add("")
        add(
            f"Fires when {condition.description} is {condition.comparison} {rule.threshold:g} "
            f"over {_window(rule.window)}; notifies {channels}; repeats every "
            f"{_window(rule.repeat)} while it holds."
        )
        add("")
        for n, step in enumerate(FIRST_STEPS.get(condition.name, _GENERIC_STEPS), 1):
            add(f"{n}. {step.format(task=task)}")
        add("")
    if not context.channels:
        add(
            "Alerts go to the log only: declare a channel under `alert_channels` in lockgate.yaml "
            "and test it:"
        )
        add("")
        _code(out, "lockgate alerts test <CHANNEL>")

    add("## Commands")
    add("")
    for title, lines in _commands(context):
        add(f"### {title}")
        add("")
        _code(out, *lines)
    return "\n".join(out).rstrip() + "\n"


def _code(out: list[str], *lines: str) -> None:
    out.append("```")
    out.extend(lines)
    out.append("```")
    out.append("")


def _output(name: str, field: Any) -> str:
    if field.type == "enum":
        return f"{name}, one of {', '.join(field.values or ())}"
    return f"{name} ({field.type})"


def _sinks(spec: TaskSpec) -> str:
    if not spec.deliver:
        return "nowhere: callers read them from the API (no `deliver:` sink)"
    shown = []
    for sink in spec.deliver:
        if sink.sink == "webhook":
            host = urlsplit(sink.url).hostname or "?"
            shown.append(f"webhook to {host} (signed with ${sink.secret_env})")
        elif sink.sink == "file":
            shown.append(f"file {sink.path}")
        else:
            shown.append(f"python {sink.callable}")
    return "; ".join(shown)


def _model_row(index: int, model: ModelSpec, count: int) -> str:
    role = "primary" if index == 0 else "last fallback" if index == count - 1 else "fallback"
    tries = model.retries + 1
    return (
        f"| {index} | {model.label} | {role} | {model.timeout_s:g} s | {tries} "
        f"({model.retries} retr{'y' if model.retries == 1 else 'ies'}) | "
        f"{model.backoff_s:g} s, doubling | opens after {model.breaker_failures} failures in a "
        f"row, probes after {model.breaker_cooldown_s:g} s |"
    )


def _window(value: Any) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _failure_modes(context: Context) -> list[tuple[str, str, list[str]]]:
    spec = context.spec
    task = spec.name
    policy = spec.policy
    models = spec.models
    last = models[-1].label
    when_all_fail = (
        "the decision goes to the review queue"
        if policy.on_failure == "review"
        else "the decision is stored as `failed` with the reason, and the caller is told"
    )
    budget = spec.budget
    if budget is None:
        budget_text = "The task has no budget: nothing stops spending (add `budget:`)."
    else:
        outcome = {
            "fallback": "paid models are skipped and the next free model in the chain answers",
            "review": "decisions go to the review queue without a model call",
            "refuse": "requests are refused with 429 and the time the period resets",
        }[budget.on_hard_limit]
        budget_text = (
            f"At {budget.soft_at:.0%} of a limit a soft alert is raised; at the limit {outcome}."
        )
    sinks = spec.deliver
    tries = ", ".join(f"{s.sink} {s.max_tries} tries" for s in sinks if s.max_tries is not None)
    database = (
        "SQLite: restore the newest backup (stop `lockgate serve` and workers first)."
        if context.backend == "sqlite"
        else "PostgreSQL: bring the server back, or restore the newest pg_dump with pg_restore "
        "(docs/operations.md)."
    )
    oos = policy.out_of_scope or "review"
    return [
        (
            "A model is down",
            f"Each call is retried (with backoff) on retryable errors; after "
            f"{models[0].breaker_failures} failures in a row the breaker opens and the chain "
            f"goes straight to the next model. When every model fails ({last} is the last), "
            f"{when_all_fail}.",
            [f"lockgate history {task} --from 1h --step 5m"],
        ),
        (
            "A model gives an invalid answer",
            "Every output is checked against the output schema; an invalid one is repaired "
            f"once, then the next model is asked; when none gives a valid answer, "
            f"{when_all_fail}.",
            [f"lockgate history {task} --from 1h --step 5m"],
        ),
        (
            "Low confidence",
            f"Below {policy.auto_min_confidence:g} the decision waits for a person in the review "
            "queue; it is delivered after the verdict.",
            [f"lockgate review list --task {task}"],
        ),
        (
            "Out-of-scope input",
            f"An input the model judges out of scope is never automated: it goes to {oos}.",
            [f"lockgate review list --task {task}"],
        ),
        ("The budget is reached", budget_text, [f"lockgate budget show {task}"]),
        (
            "The database is down",
            "No decision is acknowledged before it is stored: requests get 503 with Retry-After "
            f"and callers retry with the same Idempotency-Key. {database}",
            ["lockgate restore <BACKUP_FILE> --force", "lockgate audit verify"]
            if context.backend == "sqlite"
            else ["lockgate audit verify"],
        ),
        (
            "A receiver is down",
            "Outcomes wait in the outbox and are retried with backoff"
            + (f" ({tries})" if tries else "")
            + "; past the last try a delivery is dead-lettered (the dead_letters alert).",
            ["lockgate deliveries list --status dead", "lockgate deliveries retry <ID>"],
        ),
    ]


def _commands(context: Context) -> list[tuple[str, list[str]]]:
    spec = context.spec
    task = spec.name
    back = context.previous.ref if context.previous else f"{task}@<N>"
    subject = next(iter(spec.pii_fields), next(iter(spec.input)))
    gate = spec.evaluation.gate_dataset or "<GATE_DATASET>"
    rollback = [f'lockgate release rollback {task} --reason "<WHY>"']
    if context.previous is None:
        rollback += [
            "# or make a known-good release live again:",
            f"lockgate release promote {back}",
        ]
    restore = (
        [
            "lockgate backup --out <BACKUP_FILE>",
            "lockgate restore <BACKUP_FILE> --force",
            "lockgate audit verify",
        ]
        if context.backend == "sqlite"
        else ["lockgate backup --out <BACKUP_FILE>", "lockgate audit verify"]
    )
    return [
        (f"Roll back (to {back})", rollback),
        (
            "Replay dead letters",
            [
                "lockgate deliveries list --status dead",
                "lockgate deliveries retry <ID>",
                f"lockgate deliveries replay --since <TIME> --task {task}",
            ],
        ),
        (
            "Retrain",
            [
                f"lockgate retrain {task} --data <TRAINING_FILE>",
                "# or step by step:",
                f"lockgate labels export {task} --out <LABELS_FILE>",
                f"lockgate train {task} --data <TRAINING_FILE> --data <LABELS_FILE>",
                f"lockgate release create {task}",
                f"lockgate eval {task} --release <N> --dataset {gate}",
                f"lockgate release shadow {task}@<N>",
                f"lockgate release promote {task}@<N>",
            ],
        ),
        (
            "Rotate keys",
            [
                f"lockgate keys create --name <NEW_NAME> --role <ROLE> --task {task}",
                "lockgate keys revoke <OLD_NAME>",
                "lockgate keys list",
            ],
        ),
        ("Restore a backup", restore),
        (
            "Erase a data subject",
            [
                f"lockgate erase --task {task} --where {subject}=<VALUE> --dry-run",
                f"lockgate erase --task {task} --where {subject}=<VALUE>",
            ],
        ),
    ]
