"""`lockgate dataset …`, `lockgate eval` and `lockgate calibrate`."""

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
from lockgate.cli.common import stderr as err_console

if TYPE_CHECKING:
    # The eval service pulls scipy (the calibration's confidence bounds) and the store.
    from collections.abc import Sequence

    from lockgate.evals.calibration import ConfidentError
    from lockgate.evals.service import Calibration, Evaluation
    from lockgate.rollout.release import Release
    from lockgate.runtime import Runtime

dataset_app = command_group("Labeled datasets to measure releases on.")

ReleaseOption = Annotated[
    str | None,
    typer.Option(
        "--release", help="TASK@N, N or live; default: the live release, else the newest."
    ),
]
DatasetOption = Annotated[str | None, typer.Option("--dataset", help="Dataset name.")]
AllowOverlapOption = Annotated[
    bool,
    typer.Option(
        "--allow-overlap",
        help="Go on when the dataset has inputs the release was trained on; the result is "
        "marked not gate-worthy and no promotion gate accepts it.",
    ),
]
EvalActorOption = Annotated[
    str,
    typer.Option(
        "--actor",
        help="Who runs the eval (stored with the run as created_by; an eval writes no audit "
        "entry).",
    ),
]


@dataset_app.command("add")
def dataset_add(
    task: Annotated[str, typer.Argument(help="Task name.")],
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. gate.")],
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Labeled rows: .csv (header row) or .jsonl. Several files are read as one: a "
            "row of a later file whose input was read before relabels it in place (a reviewed "
            "--errors file); a new input is added at the end.",
            show_default=False,
        ),
    ],
    sealed: Annotated[
        bool,
        typer.Option("--sealed", help="Pin the content by its hash: immutable, never trained on."),
    ] = False,
    actor: ActorOption = "cli",
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Import labeled examples (columns named by the task's input and output fields).

    Example: lockgate dataset add routing gate data/gate.csv --sealed

    Example: lockgate dataset add routing calib data/calib.csv calib-errors.csv
    """
    from lockgate.evals.datasets import check_name, read_datasets

    check_name(name)
    with open_runtime(project, database) as runtime:
        rows, later = read_datasets(runtime.task(task), files)
        dataset, changed = runtime.store.datasets.add(
            task, name, rows, sealed=sealed, source=" + ".join(map(str, files)), actor=actor
        )
    for f in later:
        typer.echo(
            f"{f.source}: relabelled {f.repeated} row(s) read before ({f.changed} label(s) "
            f"changed), added {f.added} new row(s)"
        )
    kind = "sealed dataset" if dataset.sealed else "dataset"
    if changed:
        typer.echo(
            f"added {kind} {task}/{name}: {dataset.rows} rows, content {dataset.content_hash[:12]}"
        )
    else:
        typer.echo(f"unchanged: {kind} {task}/{name} already holds exactly these rows")


@dataset_app.command("list")
def dataset_list(
    task: Annotated[str | None, typer.Argument(help="Task name; default: every task.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """List datasets: name, rows, sealed or not, content hash.

    Example: lockgate dataset list routing
    """
    with open_runtime(project, database) as runtime:
        found = runtime.store.datasets.list_for(task)
    if as_json:
        print_json([d.summary() for d in found])
        return
    if not found:
        typer.echo("no datasets yet; add one with: lockgate dataset add TASK NAME FILE")
    for d in found:
        seal = "sealed" if d.sealed else "open"
        typer.echo(
            f"{d.task + '/' + d.name:<32} {d.rows:>7} rows  {seal:<6} {d.content_hash[:12]}  "
            f"{d.created_at:%Y-%m-%d %H:%M} by {d.created_by}"
        )


@dataset_app.command("show")
def dataset_show(
    task: Annotated[str, typer.Argument(help="Task name.")],
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Show one dataset as JSON: its hash, source and the count of each label (never inputs).

    Example: lockgate dataset show routing gate
    """
    with open_runtime(project, database) as runtime:
        dataset = runtime.store.datasets.get(task, name)
        rows = runtime.store.datasets.rows(dataset)
    labels: dict[str, Counter[str]] = {}
    for row in rows:
        for key, value in row.expected.items():
            labels.setdefault(key, Counter())[str(value)] += 1
    print_json(
        {
            **dataset.summary(),
            "labels": {k: dict(v.most_common(50)) for k, v in labels.items()},
        }
    )


@contextmanager
def _progress(label: str) -> Iterator[tuple[Any, Any]]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = err_console()
    progress = Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # a bar in a log file is noise
    )
    with progress:
        bar = progress.add_task(label, total=None)
        yield (
            lambda total: progress.update(bar, total=total),
            lambda n: progress.advance(bar, n),
        )


def eval_(
    task: Annotated[str, typer.Argument(help="Task name.")],
    release: ReleaseOption = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="Dataset name; default: evaluation.gate_dataset."),
    ] = None,
    repeat: Annotated[
        int, typer.Option("--repeat", min=1, max=100, help="Runs (for non-deterministic models).")
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report.")
    ] = None,
    errors_out: Annotated[
        Path | None,
        typer.Option(
            "--errors",
            help="Write the rows the release automates with another answer than their label "
            "to this file (.csv or .jsonl; surest first).",
        ),
    ] = None,
    allow_overlap: AllowOverlapOption = False,
    actor: EvalActorOption = "cli",
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Score a release on a dataset and store the run (nothing is decided for real). A dataset
    with inputs the release was trained on is refused, unless --allow-overlap.

    Example: lockgate eval routing --release routing@2 --dataset gate --repeat 3
    """
    from lockgate.evals import report_html

    _check_errors_file(errors_out)
    with open_runtime(project, database) as runtime, _progress("evaluating") as (start, step):
        done = run_async(
            runtime,
            lambda: runtime.eval_service().evaluate(
                task,
                release=release,
                dataset=dataset,
                repeat=repeat,
                actor=actor,
                allow_overlap=allow_overlap,
                on_progress=step,
                on_start=start,
            ),
        )
    run = done.run
    if html is not None:
        html.write_text(
            report_html.render(
                title=f"{done.release.ref} on {done.dataset.name}",
                metrics=run.metrics,
                report=run.report,
                threshold=done.release.task_spec().policy.auto_min_confidence,
            ),
            encoding="utf-8",
        )
    if done.training_overlap:
        warning = _overlap_warning(done.training_overlap, done.release.ref)
        typer.echo(f"warning: {warning}", err=True)
    n = len(done.errors)
    wrong = f"{n} automated row{'s disagree' if n != 1 else ' disagrees'} with their label"
    errors_line = ""
    if errors_out is not None and _write_errors(done.errors, done.release, errors_out):
        errors_line = f"{wrong}: written to {errors_out} (surest first)"
    elif errors_out is None and done.errors and not as_json:
        errors_line = f"{wrong}: list them with --errors FILE"
    if as_json:
        if errors_line:
            typer.echo(errors_line, err=True)
        print_json(
            {
                **run.metrics,
                "run_id": run.id,
                "release": done.release.ref,
                "dataset": run.dataset,
                "gate_worthy": not done.training_overlap,
            }
        )
        return
    typer.echo(_readable(done))
    if errors_line:
        typer.echo(errors_line)
    if html is not None:
        typer.echo(f"HTML report: {html}")


def _overlap_warning(overlap: int, ref: str) -> str:
    rows = f"{overlap} rows of this dataset were" if overlap != 1 else "1 row of this dataset was"
    return (
        f"{rows} in {ref}'s training data: these figures are not gate-worthy, and no "
        "promotion gate accepts them"
    )


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _num(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _readable(done: "Evaluation") -> str:
    m, run = done.run.metrics, done.run
    seal = "sealed" if done.dataset.sealed else "open"
    lines = [
        f"{done.release.ref} on {run.dataset} ({seal}, {m['n']} rows, "
        f"{run.dataset_hash[:12]}), field {run.report.get('field')}, "
        f"{run.repeat} run{'s' if run.repeat > 1 else ''}",
        f"accuracy {_num(m.get('accuracy'))}   macro-F1 {_num(m.get('macro_f1'))}",
        f"automated {_pct(m.get('coverage'))} (accuracy {_pct(m.get('auto_accuracy'))})   "
        f"review {_pct(m.get('review_share'))}   failed {m.get('failed')}",
        f"cost ${m.get('cost', 0):.4f} (${m.get('cost_per_decision') or 0:.6f} per decision)   "
        f"latency p50 {_num(m.get('latency_p50_ms'), 1)} ms, "
        f"p95 {_num(m.get('latency_p95_ms'), 1)} ms",
        f"schema validity {_pct(m.get('schema_validity'))}",
    ]
    if done.training_overlap:
        lines.append(f"not gate-worthy: {done.training_overlap} rows were in the training data")
    per_label = m.get("per_label") or {}
    if per_label:
        weakest = sorted(per_label.items(), key=lambda kv: kv[1]["f1"])[:5]
        lines.append("weakest labels (F1): " + ", ".join(f"{k} {v['f1']:.2f}" for k, v in weakest))
    if run.repeat > 1:
        spread = run.report.get("spread", {}).get("accuracy")
        if spread:
            lines.append(
                f"accuracy across runs: {spread['min']:.3f} to {spread['max']:.3f} "
                "(the worst run's figures are kept)"
            )
    lines.append(f"stored as eval run {run.id}")
    return "\n".join(lines)


def calibrate(
    task: Annotated[str, typer.Argument(help="Task name.")],
    release: Annotated[str, typer.Option("--release", help="TASK@N, N or live.")],
    target: Annotated[
        float, typer.Option("--target-accuracy", help="Accuracy wanted on automated decisions.")
    ],
    confidence: Annotated[
        float, typer.Option("--confidence", help="Confidence level of the lower bound.")
    ] = 0.95,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="Dataset name; default: evaluation.calibration_dataset."),
    ] = None,
    allow_overlap: AllowOverlapOption = False,
    cross_fit: Annotated[
        int | None,
        typer.Option(
            "--cross-fit",
            help="Calibrate on the training data itself: split the dataset into this many "
            "folds and decide each fold with the release's chain trained on the others (K "
            "trainings; no row is given up to calibration).",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="With --cross-fit: the seed that deals the rows into folds (default 0). "
            "Another seed shows how far the threshold moves with the draw.",
        ),
    ] = None,
    errors_out: Annotated[
        Path | None,
        typer.Option(
            "--errors",
            help="Write the rows the threshold automates with another answer than their label "
            "to this file (.csv or .jsonl; surest first), to check their labels.",
        ),
    ] = None,
    actor: ActorOption = "cli",
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Pick the lowest auto-approve threshold that meets a target accuracy (with a
    Clopper-Pearson lower bound) and create a release with it.

    Example: lockgate calibrate routing --release routing@2 --target-accuracy 0.98
    """
    _check_errors_file(errors_out)
    next_steps: list[str] = []
    with open_runtime(project, database) as runtime, _progress("calibrating") as (start, step):
        outcome = run_async(
            runtime,
            lambda: runtime.eval_service().calibrate(
                task,
                release=release,
                target=target,
                confidence=confidence,
                dataset=dataset,
                actor=actor,
                allow_overlap=allow_overlap,
                cross_fit=cross_fit,
                seed=seed,
                on_progress=step,
                on_start=start,
                on_message=lambda message: typer.echo(message, err=True),
            ),
        )
        if outcome.release is not None:
            next_steps = _next_eval(runtime, task, outcome.release.ref, outcome.dataset.name)
        if outcome.chosen is not None:
            next_steps.insert(0, _keep_in_task_file(runtime, task, outcome.chosen.threshold))
    errors_line = _errors_line(outcome, errors_out)
    scope_line = _scope_line(outcome)
    chosen = outcome.chosen
    if outcome.training_overlap:
        typer.echo(
            f"warning: {_overlap_warning(outcome.training_overlap, outcome.source.ref)}", err=True
        )
    if chosen is None:
        best = outcome.best
        closest = (
            f"; the best threshold ({best.threshold:.3f}) reaches a lower bound of "
            f"{best.lower_bound:.1%} on {best.automated} decisions"
            if best is not None
            else "; no decision could be automated at all (rules or suggest mode)"
        )
        typer.echo(
            f"error: no threshold reaches {target:.1%} accuracy at {confidence:.0%} confidence "
            f"on {outcome.dataset.name} ({outcome.dataset.rows} rows){closest}; no release created",
            err=True,
        )
        typer.echo(
            "hint: lower the target, label more calibration data, or improve the model", err=True
        )
        for line in (errors_line, scope_line):
            if line:
                typer.echo(line, err=True)
        raise typer.Exit(1)
    typer.echo(
        f"at >={target:.1%} accuracy ({confidence:.0%} lower bound {chosen.lower_bound:.1%}, "
        f"observed {chosen.accuracy:.1%}), {chosen.coverage:.1%} of inputs are automated at "
        f"threshold {chosen.threshold:.3f} ({chosen.automated} of {chosen.total} on "
        f"{outcome.dataset.name}"
        + (
            f", cross-fitted: each row decided by the chain trained without its fold, "
            f"{cross_fit} folds" + (f", seed {seed})" if seed else ")")
            if cross_fit
            else ")"
        )
    )
    for line in (errors_line, scope_line):
        if line:
            typer.echo(line)
    assert outcome.release is not None
    if outcome.created:
        typer.echo(f"created {outcome.release.ref} with auto_min_confidence {chosen.threshold:.4f}")
    else:
        typer.echo(f"unchanged: {outcome.release.ref} already has this threshold")
    for line in next_steps:
        typer.echo(line)


def _scope_line(outcome: "Calibration") -> str:
    """What the out-of-scope judgement costs: rows labelled in scope that no threshold can
    automate, because the models judged them out of scope."""
    n = outcome.judged_out_of_scope
    if not n:
        return ""
    from lockgate.providers.embedding_classifier import DEFAULT_IN_SCOPE_PASS

    rows = outcome.dataset.rows
    return (
        f"{n} of the {rows} rows ({n / rows:.1%}) have an answer but were judged out of scope, "
        "so no threshold automates them: an embedding-classifier's in_scope_pass (default "
        f"{DEFAULT_IN_SCOPE_PASS:g}) is the share of in-scope inputs it lets through; a higher "
        "one automates more and catches fewer unknown inputs (measure oos_caught on rows "
        "labelled __out_of_scope__ before raising it)"
    )


def _errors_line(outcome: "Calibration", out: Path | None) -> str:
    """What the automated rows that disagree with their label come to (written to `out` when
    given): every one of them costs the threshold coverage, and a wrong label among them costs
    it for nothing."""
    at = outcome.chosen or outcome.best
    if at is None:
        return ""
    n = len(outcome.errors)
    where = f"{n} of the {at.automated} rows automated at {at.threshold:.3f}"
    if out is not None:
        if not _write_errors(outcome.errors, outcome.source, out):
            return ""
        data = outcome.dataset
        # cross-fitted, the dataset is the training data: the corrected rows are trained on
        train = f", train with --data FILE --data {out}" if outcome.cross_fit else ""
        return (
            f"wrote {where} that disagree with their label to {out} (surest first): correct "
            "the labels that are wrong there, add the dataset again with that file after its "
            f"own (lockgate dataset add {data.task} {data.name} FILE {out}){train} and "
            "calibrate again; each fixed label lets the same target automate more"
        )
    if not n:
        return ""
    return (
        f"{where} {'disagrees' if n == 1 else 'disagree'} with their label; a wrong label among "
        "them lowers what the target automates: check them with --errors FILE"
    )


def _check_errors_file(out: Path | None) -> None:
    """An --errors file of an unknown type is refused before any work."""
    if out is not None:
        from lockgate.decide.records import record_format

        record_format(out)


def _write_errors(errors: "Sequence[ConfidentError]", release: "Release", out: Path) -> bool:
    """Write the rows to `out` (the rows of the dataset, with the release's answers); a file
    that cannot be written is a warning, and False."""
    from lockgate.decide.records import record_format, write_records
    from lockgate.evals.calibration import error_table
    from lockgate.evals.runner import scoring_context

    spec = release.task_spec()
    columns, rows = error_table(errors, scoring_context(spec).field, spec)
    try:
        write_records(out, rows, columns, record_format(out))
    except OSError as exc:
        typer.echo(f"warning: could not write {out} ({exc.strerror}); the rest stands", err=True)
        return False
    return True


def _keep_in_task_file(runtime: "Runtime", task: str, threshold: float) -> str:
    """Write the calibrated threshold into the task file (only the value changes: comments and
    layout stay), so the next `release create` keeps it; say what was done."""
    from lockgate.decide.task import task_files
    from lockgate.decide.task_edit import write_value

    tasks_dir = runtime.settings.tasks_dir
    path = next(p for p in task_files(tasks_dir) if p.stem == task)
    before = runtime.task(task).policy.auto_min_confidence
    write_value(path, ("policy", "auto_min_confidence"), repr(threshold))
    shown = f"{tasks_dir.name}/{path.name}"
    if before == threshold:
        return f"{shown} already has auto_min_confidence {threshold:.4f}"
    return (
        f"wrote auto_min_confidence {threshold:.4f} into {shown} (was {before:g}), so the next "
        "`lockgate release create` keeps it"
    )


def _next_eval(runtime: "Runtime", task: str, ref: str, calibrated_on: str) -> list[str]:
    """The eval to run next, runnable as printed: on the task's gate dataset when it names one,
    else with --dataset, on another dataset than the one the threshold was tuned on (sealed
    ones first)."""
    command = f"lockgate eval {task} --release {ref}"
    if runtime.task(task).evaluation.gate_dataset is not None:
        return [f"next: {command}"]
    held_out = sorted(
        (d for d in runtime.store.datasets.list_for(task) if d.name != calibrated_on),
        key=lambda d: (not d.sealed, d.name),
    )
    if held_out:
        return [f"next: {command} --dataset {held_out[0].name}"]
    return [
        f"next: measure {ref} on data it was not calibrated on ({calibrated_on!r} tuned it):",
        f"  lockgate dataset add {task} holdout FILE --sealed",
        f"  {command} --dataset holdout",
    ]
