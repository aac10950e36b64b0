"""`lockgate retrain`: the training data plus every human label, then train, release, eval on
the gate dataset and, if the gate passes, shadow."""

from pathlib import Path
from typing import Annotated, Any

import typer

from lockgate.cli.common import (
    ActorOption,
    DatabaseOption,
    ProjectOption,
    open_runtime,
    print_json,
    run_async,
)


def retrain(
    task: Annotated[str, typer.Argument(help="Task name.")],
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            help="The training data (.csv or .jsonl; repeat for several files, or name a "
            "folder). The human labels are added to it.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the held-out split.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    actor: ActorOption = "cli",
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Retrain on the training data plus every human label (review verdicts, spot checks,
    feedback; de-duplicated, sealed rows left out), create a release, evaluate it on the gate
    dataset and, if the gate passes, start it in shadow. Each step prints its figures; audited.

    Example: lockgate retrain routing --data data/routing-train.csv
    """
    from lockgate.cli.project import _data_files, _echo_model_report
    from lockgate.cli.quality import profile_release
    from lockgate.decide.decision import utcnow
    from lockgate.providers.chain_training import train_chain
    from lockgate.rollout import gates
    from lockgate.watch.retrain import human_labels, retrain_set

    say = (lambda _msg: None) if as_json else typer.echo
    figures: dict[str, Any] = {"task": task}
    with open_runtime(project, database) as runtime:
        spec = runtime.task(task)
        sealed = runtime.store.datasets.sealed_inputs(task)
        labels = human_labels(spec, runtime.store.reviews, runtime.store.quality)
        chosen = retrain_set(spec, _data_files(data) if data else [], labels, sealed)
        say(f"1/5 data: {chosen.summary()}")
        figures["data"] = {
            "rows": len(chosen.records),
            "training_rows": chosen.data_rows,
            "labels": dict(chosen.labels),
            "duplicates": chosen.duplicates,
            "sealed_left_out": chosen.sealed_left_out,
        }

        trained = train_chain(
            spec,
            chosen.records,
            runtime.settings,
            seed=seed,
            sealed=sealed,
            progress=lambda msg: typer.echo(msg, err=True),
        )
        report = trained.local
        holdout = {name: round(m.accuracy, 4) for name, m in report.holdout.items()}
        say(
            f"2/5 trained on {report.n_rows} rows: held-out accuracy "
            + ", ".join(f"{name} {value:.3f}" for name, value in holdout.items())
            + f" ({report.n_holdout} rows), artifact {report.sha256[:12]}"
        )
        if not as_json:
            for index, model_report in trained.models:
                _echo_model_report(index, model_report)
        figures["train"] = {"rows": report.n_rows, "holdout_accuracy": holdout}

        release, created = runtime.create_release(task, actor)
        profiled = profile_release(runtime, task, release.number)
        say(
            f"3/5 {'created' if created else 'unchanged:'} {release.ref} "
            f"({release.content_hash[:12]}); {profiled}"
        )
        figures["release"] = {"ref": release.ref, "created": created}

        done = run_async(
            runtime, lambda: runtime.eval_service().evaluate(task, release=release.ref, actor=actor)
        )
        metrics = done.run.metrics
        result = gates.gate_result(runtime.store.rollout, release)
        passed = result is None or result.passed
        verdict = "no gate in the task" if result is None else result.summary()
        say(
            f"4/5 eval on {done.dataset.name}: accuracy {_pct(metrics.get('accuracy'))}, "
            f"automated {_pct(metrics.get('coverage'))} at "
            f"{_pct(metrics.get('auto_accuracy'))}; gate: {verdict}"
        )
        figures["eval"] = {
            "run_id": done.run.id,
            "dataset": done.dataset.name,
            "accuracy": metrics.get("accuracy"),
            "coverage": metrics.get("coverage"),
            "auto_accuracy": metrics.get("auto_accuracy"),
            "gate": result.as_dict() if result is not None else None,
            "passed": passed,
        }

        shadow = None
        if passed and release.stage in ("draft", "shadow"):
            shadow = runtime.store.rollout.start_shadow(task, release.number, actor).stage
            say(f"5/5 {release.ref} is in shadow: live decisions of {task} are queued for it")
            say(f"next: lockgate release shadow-report {task}")
        elif passed:
            say(f"5/5 {release.ref} is {release.stage}: not put in shadow")
        else:
            say(f"5/5 {release.ref} fails its gate: not put in shadow")
        figures["shadow"] = shadow == "shadow"
        runtime.store.quality.record(
            actor,
            "release.retrain",
            task,
            release.ref,
            {key: figures[key] for key in ("data", "train", "release", "shadow")}
            | {"eval": {k: v for k, v in figures["eval"].items() if k != "gate"}},
            utcnow(),
        )
    if as_json:
        print_json(figures)


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1%}"
