"""`lockgate budget show TASK`: what a task has spent, holds and has left; what its cache saved."""

from typing import Annotated, Any

import typer

from lockgate.cli.common import DatabaseOption, ProjectOption, command_group, print_json

app = command_group("Budgets: spend, holds and limits per task; the cache's saving.")


@app.command("show")
def show(
    task: Annotated[str, typer.Argument(help="Task name, e.g. routing.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Spent, reserved and left today and this month (the task's limits, from its live
    release, and the overall ones of lockgate.yaml), and the cost the cache saved.

    Example: lockgate budget show routing --json
    """
    from lockgate.cli.common import open_runtime

    with open_runtime(project, database) as runtime:
        report = runtime.budget_report(task)
    if as_json:
        print_json(report)
        return
    for line in render(report):
        typer.echo(line)


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"


def _limits(entry: dict[str, Any]) -> str:
    parts = []
    if entry["limit_usd"] is not None:
        parts.append(f"{_money(entry['limit_usd'])} ({_money(entry['left_usd'])} left)")
    if entry["limit_calls"] is not None:
        parts.append(f"{entry['limit_calls']} calls ({entry['left_calls']} left)")
    return ", ".join(parts) or "no limit"


def _period_line(entry: dict[str, Any]) -> str:
    lapsed = f", {entry['lapsed_calls']} lapsed" if entry["lapsed_calls"] else ""
    return (
        f"  {entry['period']:<5} {entry['name']:<10}  spent {_money(entry['spent_usd'])} in "
        f"{entry['spent_calls']} calls{lapsed}; reserved {_money(entry['reserved_usd'])} in "
        f"{entry['reserved_calls']} calls; limit {_limits(entry)}; resets {entry['resets_at']}"
    )


def render(report: dict[str, Any]) -> list[str]:
    release = report["release"] or "no live release; the task file's budget"
    on_hard = report["on_hard_limit"]
    lines = [
        f"{report['task']} ({release})"
        + (f", on a hard limit: {on_hard}" if on_hard else ", no budget of its own")
    ]
    lines += [_period_line(p) for p in report["periods"]]
    overall = report["overall"]
    if overall["budget"] is not None:
        lines.append("all tasks (lockgate.yaml)")
        lines += [_period_line(p) for p in overall["periods"]]
    holds = report["holds"]
    if holds["count"]:
        lines.append(
            f"calls in flight: {holds['count']} held; the first lapses at "
            f"{holds['first_lapses_at']}"
        )
    cache = report["cache"]
    if cache["ttl"] is None:
        lines.append("cache: off (add `cache: {ttl: 24h}` to the task file)")
    else:
        saved = "; ".join(
            f"{c['period']}: {c['hits']} answers reused, {_money(c['saved_usd'])} saved"
            for c in cache["periods"]
        )
        lines.append(f"cache (ttl {cache['ttl']}): {saved}")
    return lines
