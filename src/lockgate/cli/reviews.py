"""`lockgate review …` and `lockgate labels export`: the review queue from the command line.

Review commands act as a real identity: the reviewer's API key, from `--api-key` or the
`LOCKGATE_API_KEY` environment variable, is checked against the store, so the same separation
of duties holds as over HTTP (no self-review, two different reviewers where the policy says).
"""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lockgate.cli.common import (
    DatabaseOption,
    ProjectOption,
    command_group,
    open_runtime,
    print_json,
)
from lockgate.decide.reasons import reason_text
from lockgate.errors import InputError, Unauthorized

if TYPE_CHECKING:
    from lockgate.decide.task import TaskSpec
    from lockgate.review.service import ReviewItem
    from lockgate.runtime import Runtime
    from lockgate.security import Principal

app = command_group("The review queue: list, claim, approve, correct or reject as your API key.")
labels = command_group("Human verdicts as training labels.")

KEY_ENV = "LOCKGATE_API_KEY"
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar=KEY_ENV,
        help=f"Your API key (a reviewer or admin key); default: ${KEY_ENV}. Prefer the "
        "environment variable: a flag is visible in the process list.",
        show_default=False,
        show_envvar=False,
    ),
]
IdArgument = Annotated[str, typer.Argument(help="The decision id.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (stored and audited).")]


def authenticate(runtime: "Runtime", key: str | None) -> "Principal":
    """The principal of the given API key; refuses a missing, unknown or revoked key."""
    from lockgate.security import Principal

    if not key:
        raise Unauthorized(
            "review commands act as an API key",
            hint=f"set {KEY_ENV}=KEY (or pass --api-key KEY); `lockgate keys create --name alice "
            "--role reviewer` makes one",
        )
    found = runtime.store.keys.authenticate(key)
    if found is None:
        raise Unauthorized("the API key is unknown or revoked", hint="ask an admin for a key")
    return Principal.of(found)


PREVIEW_CHARACTERS = 60


def _header(id_width: int) -> str:
    """The column names over `_line` and `_preview`."""
    return (
        f"{'ID':<{id_width}}  {'TASK':<16} {'PRIO':<5} {'STATUS':<15} OUTPUT (CONFIDENCE) "
        "[APPROVALS, CLAIM]  INPUT (PERSONAL DATA MASKED)"
    )


def _preview(item: "ReviewItem") -> str:
    """The start of the input, personal data masked (the redacted copy), on one line."""
    text = " | ".join(str(v) for v in item.decision.redacted_input.values() if v not in (None, ""))
    text = " ".join(text.split())
    if len(text) <= PREVIEW_CHARACTERS:
        return json.dumps(text, ensure_ascii=False)
    return json.dumps(text[: PREVIEW_CHARACTERS - 1] + "…", ensure_ascii=False)


def _line(item: "ReviewItem") -> str:
    d = item.decision
    output = json.dumps(dict(d.output), ensure_ascii=False) if d.output is not None else "-"
    confidence = f"{d.confidence:.2f}" if d.confidence is not None else "-"
    flags = " escalated" if item.escalated else ""
    claim = f" claimed by {item.claimed_by}" if item.claimed_by else ""
    approvals = (
        f" approvals {len(item.approvals)}/{item.approvals_needed}"
        if item.approvals_needed > 1 and d.status == "pending_review"
        else ""
    )
    return (
        f"{d.id}  {d.task:<16} p{item.priority:<4} {d.status:<15} {output} ({confidence})"
        f"{approvals}{claim}{flags}"
    )


def _show(item: "ReviewItem", as_json: bool) -> None:
    if as_json:
        print_json({**item.public(), "input": dict(item.decision.redacted_input)})
        return
    d = item.decision
    typer.echo(_line(item))
    sentence = reason_text(d.reason)
    typer.echo(f"reason: {sentence}" + (f" [{d.reason}]" if sentence != d.reason else ""))
    for name, value in d.redacted_input.items():
        typer.echo(f"input.{name}: {value}")
    if item.proposed_output is not None:
        typer.echo(f"proposed output: {json.dumps(dict(item.proposed_output))}")
    for v in item.verdicts:
        typer.echo(f"{v.at:%Y-%m-%d %H:%M} {v.reviewer} {v.verdict}: {v.reason or ''}")


@app.command("list")
def list_(
    task: Annotated[str | None, typer.Option("--task", help="Only this task.")] = None,
    status: Annotated[
        str, typer.Option("--status", help="pending_review, approved, corrected or rejected.")
    ] = "pending_review",
    limit: Annotated[int, typer.Option("--limit", help="At most this many (1-500).")] = 50,
    as_json: JsonOption = False,
    key: KeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """List the queue: highest priority first, then oldest first, under a header line, each
    item with the start of its input (personal data masked).

    Example: lockgate review list --task routing
    """
    with open_runtime(project, database) as runtime:
        principal = authenticate(runtime, key)
        items = runtime.reviews.queue(principal, task=task, status=status, limit=limit)
    if as_json:
        print_json([i.public() for i in items])
        return
    if not items:
        typer.echo(f"nothing {status.replace('_', ' ')}")
        return
    typer.echo(_header(len(items[0].decision.id)))
    for item in items:
        typer.echo(f"{_line(item)}  {_preview(item)}")


@app.command()
def show(
    decision_id: IdArgument,
    as_json: JsonOption = False,
    key: KeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Show one item: output, confidence, redacted input, verdicts and claim.

    Example: lockgate review show 0193c2a7f1e04b5d9a8c7e6f5d
    """
    with open_runtime(project, database) as runtime:
        item = runtime.reviews.item(authenticate(runtime, key), decision_id)
    _show(item, as_json)


@app.command()
def claim(
    decision_id: IdArgument,
    key: KeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Claim an item (a lease of review_lease_seconds) before giving a verdict.

    Example: lockgate review claim 0193c2a7f1e04b5d9a8c7e6f5d
    """
    with open_runtime(project, database) as runtime:
        item = runtime.reviews.claim(authenticate(runtime, key), decision_id)
    until = item.claim_expires_at.isoformat() if item.claim_expires_at else "?"
    typer.echo(f"claimed {decision_id} until {until}")


def _verdict_line(item: "ReviewItem") -> str:
    d = item.decision
    if d.status == "pending_review":
        return (
            f"{d.id}: recorded ({len(item.approvals)} of {item.approvals_needed} approvals); "
            "it waits for another reviewer"
        )
    output = json.dumps(dict(d.output), ensure_ascii=False) if d.output is not None else "-"
    return f"{d.id}: {d.status} {output}"


@app.command()
def approve(
    decision_id: IdArgument,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (optional).")] = None,
    key: KeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Approve the model's output of an item you have claimed.

    Example: lockgate review approve 0193c2a7f1e04b5d9a8c7e6f5d
    """
    with open_runtime(project, database) as runtime:
        item = runtime.reviews.approve(authenticate(runtime, key), decision_id, reason)
    typer.echo(_verdict_line(item))


@app.command()
def correct(
    decision_id: IdArgument,
    reason: ReasonOption,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="field=value for one output field (repeat for more)."),
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", help="The whole output as a JSON object.")
    ] = None,
    key: KeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Correct the output of an item you have claimed; it must fit the output schema.

    Example: lockgate review correct 0193c2a7f1e0 --set queue=payments --reason "a refund"
    """
    if (set_ is None) == (output is None):
        raise InputError("give the new output with --set field=value or with --output JSON")
    with open_runtime(project, database) as runtime:
        principal = authenticate(runtime, key)
        item = runtime.reviews.item(principal, decision_id)
        if output is not None:
            new = _json_object(output)
        else:
            spec = runtime.store.releases.get(item.decision.task, item.decision.release).task_spec()
            start = item.proposed_output or item.decision.output or {}
            new = {**start, **_assignments(spec, set_ or [])}
        item = runtime.reviews.correct(principal, decision_id, new, reason)
    typer.echo(_verdict_line(item))


@app.command()
def reject(
    decision_id: IdArgument,
    reason: ReasonOption,
    key: KeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Reject an item you have claimed; a rejected decision is never delivered.

    Example: lockgate review reject 0193c2a7f1e04b5d9a8c7e6f5d --reason "not a support ticket"
    """
    with open_runtime(project, database) as runtime:
        item = runtime.reviews.reject(authenticate(runtime, key), decision_id, reason)
    typer.echo(_verdict_line(item))


@app.command()
def escalate(project: ProjectOption = None, database: DatabaseOption = None) -> None:
    """Escalate every item pending longer than its task's review_sla_minutes, once (lockgate
    serve does this every review_escalation_interval_seconds; use this from cron otherwise).

    Example: lockgate review escalate
    """
    with open_runtime(project, database) as runtime:
        escalated = runtime.reviews.escalate_overdue()
    for item in escalated:
        typer.echo(f"escalated {item.task} {item.decision_id}: priority now {item.priority}")
    typer.echo(f"{len(escalated)} item{'s' if len(escalated) != 1 else ''} escalated")


@app.command()
def report(
    task: Annotated[str, typer.Argument(help="Task name.")],
    target: Annotated[
        float, typer.Option("--target", help="Agreement a label needs (its lower bound).")
    ] = 0.95,
    as_json: JsonOption = False,
    key: KeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Suggest mode: how often people agreed with the model, overall and per label, and which
    labels are ready for automation.

    Example: lockgate review report routing
    """
    with open_runtime(project, database) as runtime:
        result = runtime.reviews.suggest_report(authenticate(runtime, key), task, target)
    if as_json:
        print_json(result.as_dict())
        return
    body = result.as_dict()
    overall = body["overall"]
    typer.echo(
        f"{task}: {overall['reviewed']} reviewed, agreement {_share(overall['agreement'])} "
        f"(lower bound {_share(overall['agreement_lower_bound'])}); at threshold "
        f"{result.threshold if result.threshold is not None else '-'} "
        f"{_share(overall['would_automate_share'])} would have been automated, "
        f"{_share(overall['would_automate_accuracy'])} of them right"
    )
    for label, figures in body["labels"].items():
        typer.echo(
            f"  {label:<20} {figures['reviewed']:>5} reviewed  agreement "
            f"{_share(figures['agreement'])}  {figures['verdict']}: {figures['why']}"
        )
    typer.echo(f"rule: {body['rule']} ({result.target:.2f})")


@labels.command("export")
def export(
    task: Annotated[str, typer.Argument(help="Task name.")],
    out: Annotated[Path, typer.Option("--out", help="The file to write (.csv or .jsonl).")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or jsonl; default: from --out.")
    ] = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Write every approved or corrected decision as a label, in the format lockgate train
    reads (input fields, then output fields); rejected decisions are left out.

    Example: lockgate labels export routing --out data/routing-labels.csv
    """
    from lockgate.review.labels import export_labels

    if fmt not in (None, "csv", "jsonl"):
        raise InputError("--format must be csv or jsonl")
    with open_runtime(project, database) as runtime:
        spec = runtime.task(task)
        result = export_labels(runtime.store.reviews, spec, out, fmt)  # type: ignore[arg-type]
    typer.echo(result.summary())


def _share(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) else "-"


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--output is not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise InputError('--output must be a JSON object, e.g. {"queue": "payments"}')
    return value


def _assignments(spec: "TaskSpec", pairs: list[str]) -> dict[str, Any]:
    """`field=value` pairs as output values typed by the output schema."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in spec.output:
            raise InputError(
                "--set takes field=value with an output field",
                hint=f"output fields: {', '.join(spec.output)}",
            )
        kind = spec.output[name].type
        if kind in ("string", "enum"):
            values[name] = text
        elif kind == "boolean" and text.lower() in ("true", "false"):
            values[name] = text.lower() == "true"
        else:
            try:
                values[name] = float(text)
            except ValueError:
                raise InputError(f"--set {name}: must be a {kind}") from None
    return values
