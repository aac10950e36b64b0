"""`lockgate release …`: create, list, show, diff, promote (gated), rollback, shadow, canary."""

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from lockgate.cli.common import (
    ActorOption,
    DatabaseOption,
    ProjectOption,
    command_group,
    open_runtime,
    print_json,
    run_async,
)
from lockgate.errors import ConfigError, InputError, Unauthorized

if TYPE_CHECKING:
    from lockgate.rollout.release import Release
    from lockgate.runtime import Runtime

ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="LOCKGATE_API_KEY",
        help="Act as this API key (its name and role); default: the local operator, an admin.",
        show_default=False,
    ),
]

app = command_group("Immutable, numbered versions of a task, and which one is live.")


def _summary(release: "Release") -> dict[str, object]:
    return {
        "ref": release.ref,
        "stage": release.stage,
        "content_hash": release.content_hash,
        "artifacts": dict(release.artifacts),
        "created_at": release.created_at.isoformat(),
        "created_by": release.created_by,
        "canary_percent": release.canary_percent,
    }


def _resolve(runtime: "Runtime", ref_text: str) -> "Release":
    from lockgate.rollout.release import ReleaseRef, resolve

    return resolve(runtime.store.releases, ReleaseRef.parse(ref_text))


@app.command()
def create(
    task: Annotated[str, typer.Argument(help="Task name.")],
    actor: ActorOption = "cli",
    api_key: ApiKeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Snapshot the task file and its model artifacts as a new immutable release.

    Example: lockgate release create routing
    """
    from lockgate.cli.quality import profile_release

    profiled = None
    with open_runtime(project, database) as runtime:
        acting = _acting(runtime, api_key, actor, task)
        release, created = runtime.create_release(task, acting.name)
        live = runtime.store.releases.live(task)
        if created or runtime.store.quality.profile(task, release.number) is None:
            profiled = profile_release(runtime, task, release.number)
    if created:
        typer.echo(f"created {release.ref} ({release.content_hash[:12]}), stage draft")
        typer.echo(f"next: lockgate release promote {release.ref}")
    else:
        typer.echo(f"unchanged: {release.ref} already has this content ({release.stage})")
    if profiled:
        typer.echo(profiled, err=True)
    if live is not None and live.number != release.number:
        _warn_policy_differs(task, live, release)


def _warn_policy_differs(task: str, live: "Release", release: "Release") -> None:
    """A release whose policy differs from the live one's says so: a threshold set by
    `lockgate calibrate` and missing from the task file would otherwise be lost silently."""
    from lockgate.rollout.release import policy_diff

    changes = policy_diff(live.spec, release.spec)
    if not changes:
        return
    listed = "; ".join(
        f"{key} {_policy_value(change['from'])} -> {_policy_value(change['to'])}"
        for key, change in changes.items()
    )
    typer.echo(
        f"warning: the policy of {release.ref} differs from the live {live.ref}'s: {listed}; "
        f"promoting {release.ref} changes it. To keep the live value, write it into "
        f"tasks/{task}.yaml and run `lockgate release create {task}` again",
        err=True,
    )


def _policy_value(value: object) -> str:
    if value is None:
        return "(not set)"
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


@app.command("list")
def list_(
    task: Annotated[str, typer.Argument(help="Task name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """List a task's releases, oldest first.

    Example: lockgate release list routing
    """
    with open_runtime(project, database) as runtime:
        releases = runtime.store.releases.list_for(task)
    if as_json:
        print_json([_summary(r) for r in releases])
        return
    if not releases:
        typer.echo(f"{task} has no releases yet; run: lockgate release create {task}")
    for r in releases:
        typer.echo(f"{r.ref:<24} {r.stage:<8} {r.content_hash[:12]}  {r.created_at:%Y-%m-%d %H:%M}")


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="TASK@N or TASK@live.")],
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Show one release: its stage, hash, pinned artifacts and full task snapshot.

    Example: lockgate release show routing@2
    """
    with open_runtime(project, database) as runtime:
        release = _resolve(runtime, ref)
    print_json({**_summary(release), "spec": dict(release.spec)})


@app.command()
def diff(
    a: Annotated[str, typer.Argument(help="The older release, TASK@N.")],
    b: Annotated[str, typer.Argument(help="The newer release, TASK@N.")],
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Show what changed between two releases, as a unified diff.

    Example: lockgate release diff routing@1 routing@2
    """
    from lockgate.rollout.release import diff_releases

    with open_runtime(project, database) as runtime:
        text = diff_releases(_resolve(runtime, a), _resolve(runtime, b))
    typer.echo(text or "no differences")


@dataclass(frozen=True)
class Acting:
    """Who runs a state-changing release command (the audit actor) and whether they are an
    admin (who alone may override a failing gate)."""

    name: str
    admin: bool


def _acting(runtime: "Runtime", api_key: str | None, actor: str, task: str) -> Acting:
    """The one check for every state-changing release command: without an API key the local
    operator acts as `--actor`, an admin; with one, the key's name and role count, and the
    role needs manage_releases for the task."""
    from lockgate.security import Principal

    if api_key is None:
        return Acting(actor, admin=True)
    key = runtime.store.keys.authenticate(api_key)
    if key is None:
        raise Unauthorized("the API key is unknown or revoked", hint="ask an admin for a key")
    principal = Principal.of(key)
    principal.require("manage_releases", task)
    return Acting(principal.name, admin=principal.role == "admin")


@app.command()
def promote(
    ref: Annotated[str, typer.Argument(help="TASK@N to make live.")],
    actor: ActorOption = "cli",
    reason: Annotated[str | None, typer.Option("--reason", help="Why (audited).")] = None,
    override_reason: Annotated[
        str | None,
        typer.Option(
            "--override-reason",
            help="Promote although the gate fails (admins only; audited with the figures).",
        ),
    ] = None,
    api_key: ApiKeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Make a release live; the release live before it is retired (and can be rolled back to).
    With `evaluation.gate` in the task, the release needs a passing eval on the gate dataset.

    Example: lockgate release promote routing@2
    """
    from lockgate.rollout import gates
    from lockgate.rollout.release import ReleaseRef

    parsed = ReleaseRef.parse(ref)
    if not isinstance(parsed.selector, int):
        raise ConfigError(f"{ref!r}: name the release to promote, e.g. {parsed.task}@2")
    with open_runtime(project, database) as runtime:
        acting = _acting(runtime, api_key, actor, parsed.task)
        target = runtime.store.releases.get(parsed.task, parsed.selector)
        release, result = gates.promote(
            runtime.store.rollout,
            target,
            acting.name,
            reason=reason,
            override_reason=override_reason,
            may_override=acting.admin,
        )
    if result is not None:
        for check in result.checks:
            typer.echo(f"gate: {check.describe()}")
        if not result.passed:
            typer.echo("gate overridden (recorded in the audit log)", err=True)
    typer.echo(f"{release.ref} is live")


@app.command()
def rollback(
    task: Annotated[str, typer.Argument(help="Task name.")],
    actor: ActorOption = "cli",
    reason: Annotated[str | None, typer.Option("--reason", help="Why (audited).")] = None,
    api_key: ApiKeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Make the previous live release live again, at once.

    Example: lockgate release rollback routing --reason "accuracy dropped"
    """
    with open_runtime(project, database) as runtime:
        acting = _acting(runtime, api_key, actor, task)
        release = runtime.store.releases.rollback(task, acting.name, reason)
    typer.echo(f"rolled back: {release.ref} is live again")


def _number(ref: str) -> tuple[str, int]:
    from lockgate.rollout.release import ReleaseRef

    parsed = ReleaseRef.parse(ref)
    if not isinstance(parsed.selector, int):
        raise ConfigError(f"{ref!r}: name the release, e.g. {parsed.task}@2")
    return parsed.task, parsed.selector


@app.command()
def shadow(
    ref: Annotated[str, typer.Argument(help="TASK@N to run in shadow, or TASK with --stop.")],
    stop: Annotated[bool, typer.Option("--stop", help="Stop every shadow of TASK.")] = False,
    actor: ActorOption = "cli",
    api_key: ApiKeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Run a release on live traffic in the background, never acting (stage `shadow`).

    Each live decision stored from now on queues a shadow run, decided later by `lockgate
    serve` (or `lockgate release shadow-run`). `--stop` puts the task's shadows back to draft.

    Example: lockgate release shadow routing@3
    """
    from lockgate.rollout.release import ReleaseRef

    with open_runtime(project, database) as runtime:
        task = ReleaseRef.parse(ref).task
        acting = _acting(runtime, api_key, actor, task)
        if stop:
            for release in runtime.store.rollout.stop_shadow(task, acting.name):
                typer.echo(f"{release.ref} is no longer in shadow (stage {release.stage})")
            return
        task, number = _number(ref)
        release = runtime.store.rollout.start_shadow(task, number, acting.name)
    typer.echo(f"{release.ref} is in shadow: live decisions of {task} are queued for it")
    typer.echo(f"next: lockgate release shadow-report {task}")


@app.command("shadow-run")
def shadow_run(
    task: Annotated[str, typer.Argument(help="Task name.")],
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Stop after this many runs.")
    ] = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Decide the task's queued shadow runs now (`lockgate serve` does it in the background).

    Example: lockgate release shadow-run routing
    """
    from lockgate.rollout.shadow import ShadowWorker

    with open_runtime(project, database) as runtime:
        worker = ShadowWorker(runtime.store.rollout, runtime.release_runtime, spend=runtime.budgets)
        done = run_async(runtime, lambda: worker.run_once(task, limit=limit))
    typer.echo(f"{done} shadow runs decided")


@app.command("shadow-report")
def shadow_report(
    task: Annotated[str, typer.Argument(help="Task name.")],
    release: Annotated[
        str | None,
        typer.Option("--release", help="Shadow release, TASK@N or N; default: the current one."),
    ] = None,
    sample: Annotated[
        int,
        typer.Option(
            "--sample-disagreements",
            min=0,
            help="Put N live decisions the shadow disagreed with into the review queue.",
        ),
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    actor: ActorOption = "cli",
    api_key: ApiKeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Compare a shadow release with live: agreement overall and per label, confusion matrix,
    accuracy of both on human labels, cost and latency side by side.

    Example: lockgate release shadow-report routing --sample-disagreements 20
    """
    from lockgate.rollout.release import ReleaseRef
    from lockgate.rollout.shadow import build_shadow_report, sample_disagreements

    with open_runtime(project, database) as runtime:
        number = None if release is None else ReleaseRef.number_of(task, release)
        report = build_shadow_report(runtime.store.rollout, runtime.store.releases, task, number)
        moved: list[str] = []
        if sample:
            acting = _acting(runtime, api_key, actor, task)
            moved = sample_disagreements(runtime.store.rollout, report, sample, acting.name)
    if as_json:
        print_json({**report.as_dict(), "sampled_for_review": moved})
        return
    _print_shadow(report.as_dict())
    if sample:
        typer.echo(f"sampled for review: {len(moved)} of {sample} asked ({', '.join(moved)})")


def _rate(value: object) -> str:
    return f"{value:.1%}" if isinstance(value, float) else "n/a"


def _ms(value: object) -> str:
    return f"{value:g} ms" if isinstance(value, (int, float)) else "n/a"


def _print_shadow(report: dict[str, object]) -> None:
    runs = report["runs"]
    assert isinstance(runs, dict)
    task = str(report["release"]).partition("@")[0]
    head = f"shadow {report['release']} on field {report['field']!r}"
    if not any(runs.values()):
        typer.echo(f"{head}: no shadow runs yet")
        typer.echo(
            f"hint: each live decision of {task} stored while the release is in shadow queues "
            f"a run (lockgate decide, lockgate run); lockgate serve or `lockgate release "
            f"shadow-run {task}` decides them",
            err=True,
        )
        return
    counts = ", ".join(f"{n} {status}" for status, n in sorted(runs.items()) if n)
    typer.echo(f"{head}; runs: {counts}")
    typer.echo(f"agreement with live: {_rate(report['agreement'])} of {report['compared']}")
    per_label = report["per_label"]
    assert isinstance(per_label, dict)
    for label, entry in per_label.items():
        typer.echo(f"  {label:<24} {_rate(entry['agreement'])} of {entry['n']}")
    typer.echo(
        f"human labels: {report['labeled']}; accuracy live {_rate(report['live_accuracy'])}, "
        f"shadow {_rate(report['shadow_accuracy'])}"
    )
    for side in ("live", "shadow"):
        figures = report[side]
        assert isinstance(figures, dict)
        typer.echo(
            f"{side:<6} cost ${figures['cost']:.4f}  p50 {_ms(figures['latency_p50_ms'])}  "
            f"p95 {_ms(figures['latency_p95_ms'])}"
        )
    live_side = report["live"]
    batched = live_side.get("latency_left_out_batch", 0) if isinstance(live_side, dict) else 0
    if batched:
        typer.echo(
            f"  (live latency leaves out {batched} decisions made by batch jobs: a batch decides "
            "a chunk at once, so their latency is the chunk's, not one decision's)"
        )
    typer.echo("confusion (live -> shadow):")
    confusion = report["confusion"]
    assert isinstance(confusion, dict)
    for live_label, row in confusion.items():
        cells = ", ".join(f"{k} {v}" for k, v in row.items())
        typer.echo(f"  {live_label}: {cells}")


@app.command()
def canary(
    ref: Annotated[str, typer.Argument(help="TASK@N to run as canary, or TASK with --stop.")],
    percent: Annotated[
        float | None,
        typer.Option("--percent", help="Share of keys (0 < P <= 50) the canary decides."),
    ] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the task's canary.")] = False,
    actor: ActorOption = "cli",
    api_key: ApiKeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Let a release decide a sticky share of live traffic (by idempotency key).

    It rolls back by itself past the task's `rollout` limits (see `release canary-check`).

    Example: lockgate release canary routing@3 --percent 10
    """
    from lockgate.rollout.canary import MAX_PERCENT
    from lockgate.rollout.release import ReleaseRef

    with open_runtime(project, database) as runtime:
        task = ReleaseRef.parse(ref).task
        acting = _acting(runtime, api_key, actor, task)
        if stop:
            stopped = runtime.store.rollout.stop_canary(task, acting.name)
            typer.echo(f"{stopped.ref} is no longer a canary (stage {stopped.stage})")
            return
        if percent is None or not 0 < percent <= MAX_PERCENT:
            raise InputError(
                "--percent must be above 0 and at most 50",
                hint="e.g. --percent 10 sends one key in ten to the canary",
            )
        task, number = _number(ref)
        release = runtime.store.rollout.start_canary(task, number, percent, acting.name)
    typer.echo(f"{release.ref} decides {percent:g}% of {task}'s keys")


@app.command("canary-check")
def canary_check(
    task: Annotated[str, typer.Argument(help="Task name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    actor: ActorOption = "cli",
    api_key: ApiKeyOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Judge the task's canary against its limits; roll it back (audited) past them.

    Example: lockgate release canary-check routing
    """
    from lockgate.rollout.canary import check_canaries

    with open_runtime(project, database) as runtime:
        acting = _acting(runtime, api_key, actor, task)
        checks = check_canaries(runtime.store.rollout, task, actor=acting.name)
    if as_json:
        print_json([c.as_dict() for c in checks])
        return
    if not checks:
        typer.echo(f"{task} has no canary")
    for check in checks:
        h = check.health
        typer.echo(
            f"{h.task}@{h.release}: {h.decisions} decisions, failure rate "
            f"{_rate(h.failure_rate)}, override rate {_rate(h.override_rate)} "
            f"({h.reviewed} reviewed)"
        )
        for breach in check.breaches:
            typer.echo(f"  past the limit: {breach}")
        if check.rolled_back:
            typer.echo(f"  rolled back: {h.task}@{h.release} is retired")
