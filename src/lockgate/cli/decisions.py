"""`lockgate decide` and `lockgate run`: one decision, or a resumable batch."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lockgate.cli.common import (
    DatabaseOption,
    ProjectOption,
    ReleaseOption,
    open_runtime,
    print_json,
    release_number,
    run_async,
)
from lockgate.cli.common import stderr as err_console
from lockgate.errors import InputError

if TYPE_CHECKING:
    from lockgate.decide.batch import BatchSummary
    from lockgate.decide.pipeline import Result


def decide(
    task: Annotated[str, typer.Argument(help="Task name, e.g. routing.")],
    input_json: Annotated[str, typer.Option("--input", "-i", help="The input as a JSON object.")],
    key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key", help="The same key returns the stored decision (no model call)."
        ),
    ] = None,
    release: ReleaseOption = None,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Decide one input and print the decision as JSON. Exits with 1 when the decision failed
    (every model failed and the policy does not send failures to review).

    Example: lockgate decide routing --input '{"text": "My card was stolen"}'
    """
    import secrets

    from lockgate.decide.pipeline import DecisionRequest

    try:
        data = json.loads(input_json)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"--input is not valid JSON ({exc.msg} at column {exc.colno})",
            hint='write it like --input \'{"text": "..."}\'',
        ) from None
    request = DecisionRequest(input=data, idempotency_key=key or f"cli:{secrets.token_hex(12)}")
    with open_runtime(project, database) as runtime:

        async def work() -> "Result":
            loaded = runtime.release_runtime(task, release_number(task, release))
            return await runtime.pipeline.decide(loaded, request)

        result = run_async(runtime, work)
    decision = result.decision
    assert decision is not None
    print_json({**decision.public(), "replayed": result.replayed})
    if decision.status == "failed":
        typer.echo(f"error: the decision failed: {decision.reason}", err=True)
        raise typer.Exit(1)


def run(
    task: Annotated[str, typer.Argument(help="Task name.")],
    file: Annotated[Path, typer.Argument(help="Input records: .csv (header row) or .jsonl.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write one JSON line per record, in input order."),
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option("--run-id", help="Name of this run; default: the hash of the file."),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, max=10000, help="Records per commit.")
    ] = None,
    release: ReleaseOption = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed/--no-retry-failed",
            help="Decide again the records whose decision failed in an earlier run.",
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Decide every record of a file. Resumable: after an interruption, run the same command
    again and only records not yet decided are processed (and those whose decision failed,
    unless --no-retry-failed). A file without a column for a required input field is refused
    before anything is decided.

    Example: lockgate run routing tickets.csv --out decisions.jsonl
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from lockgate.decide.batch import check_columns, run_batch, scan
    from lockgate.decide.records import file_sha256
    from lockgate.intake import run_file
    from lockgate.intake.runner import Intake
    from lockgate.rollout.canary import check_canaries

    console = err_console()
    with open_runtime(project, database) as runtime:
        loaded = runtime.release_runtime(task, release_number(task, release))
        # A task file that declares a `run` source maps, de-duplicates and quarantines the
        # file's records through the intake (`intake.run_file`); without one, as always.
        spec = runtime.tasks().get(task) if runtime.settings.tasks_dir.is_dir() else None
        source = run_file.run_source(spec)
        if source is None:
            total = scan(file)
            check_columns(loaded.task, file)
        else:
            if not file.is_file():
                raise InputError(f"{file}: no such file")
            run_id = run_id or file_sha256(file)[:16]
            total = run_file.count(file, run_id)
            run_file.check_columns(loaded.task, source, file, run_id)
        progress = Progress(
            TextColumn("[bold]deciding"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=as_json,
        )
        with progress:
            bar = progress.add_task("decide", total=total)
            size = batch_size or runtime.settings.batch_size
            try:
                if source is None:
                    summary = run_async(
                        runtime,
                        lambda: run_batch(
                            runtime.pipeline,
                            loaded,
                            file,
                            out=out,
                            run_id=run_id,
                            batch_size=size,
                            retry_failed=retry_failed,
                            on_progress=lambda n: progress.advance(bar, n),
                        ),
                    )
                else:
                    assert spec is not None and run_id is not None
                    intake = Intake(
                        runtime.store.async_intake,
                        runtime.pipeline,
                        loaded,
                        spec,
                        source,
                        metrics=runtime.metrics,
                        answers=True,
                    )
                    summary = run_async(
                        runtime,
                        lambda: run_file.run_file(
                            intake,
                            file,
                            run=run_id,
                            out=out,
                            batch_size=size,
                            retry_failed=retry_failed,
                            on_progress=lambda n: progress.advance(bar, n),
                        ),
                    )
            except KeyboardInterrupt:
                done = int(progress.tasks[0].completed)
                typer.echo(
                    f"interrupted after {done} of {total} records; every finished chunk is "
                    "committed: run the same command again to resume",
                    err=True,
                )
                raise typer.Exit(130) from None
        # A canary that took part in this run is judged on it at once: past its limits it is
        # rolled back (audited) before anyone runs the next batch through it.
        for check in check_canaries(runtime.store.rollout, task, actor="lockgate run"):
            if check.rolled_back:
                typer.echo(
                    f"canary {task}@{check.health.release} rolled back: "
                    + "; ".join(check.breaches),
                    err=True,
                )
    if as_json:
        print_json(summary.as_dict())
    else:
        _print_summary(summary, out)


def _print_summary(summary: "BatchSummary", out: Path | None) -> None:
    lines = [
        f"{summary.total} records: {summary.new} decided now"
        + (f" ({summary.retried} had failed earlier: tried again)" if summary.retried else "")
        + f", {summary.already_decided} already decided earlier"
        + (f" ({summary.duplicates} of them by content)" if summary.duplicates else "")
        + (
            f", {summary.quarantined} held in quarantine (lockgate quarantine list)"
            if summary.quarantined
            else ""
        ),
        "by route:  " + _counts(summary.by_route),
        "by status: " + _counts(summary.by_status),
        f"cost: ${summary.cost:.4f}   latency p50 {summary.latency(0.5):.1f} ms, "
        f"p95 {summary.latency(0.95):.1f} ms",
    ]
    if summary.failures:
        lines.append("failures:")
        for reason, count in summary.failures.most_common(10):
            examples = ", ".join(summary.failure_examples[reason])
            lines.append(f"  {count} x {reason} (e.g. records {examples})")
    if out is not None:
        lines.append(f"results: {out}")
    typer.echo("\n".join(lines))


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"
