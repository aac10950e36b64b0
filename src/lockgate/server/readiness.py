"""The readiness report and the runbook, assembled from a runtime: shared by `lockgate
readiness`, `lockgate runbook` and their pages under `/ui/`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from lockgate.decide.decision import utcnow
from lockgate.decide.task import TaskSpec, task_files
from lockgate.errors import LockgateError
from lockgate.evals.types import Dataset
from lockgate.rollout import gates
from lockgate.rollout.gates import GateResult
from lockgate.rollout.release import Release
from lockgate.runtime import Runtime
from lockgate.security import PERMISSIONS, ApiKey
from lockgate.store.readiness import ReadinessRepository
from lockgate.watch import readiness, runbook
from lockgate.watch.channels import build_channels

TRAINED_PROVIDERS = frozenset({"local-classifier", "embedding-classifier", "combined"})
"""The providers whose model `lockgate train` makes."""


class StoreFacts:
    """`watch.readiness.ReadinessStore` over a runtime's store."""

    def __init__(self, runtime: Runtime) -> None:
        self.store = runtime.store
        self.facts = ReadinessRepository(runtime.store.engine)

    def releases(self, task: str) -> Sequence[Release]:
        return self.store.releases.list_for(task)

    def datasets(self, task: str) -> Sequence[Dataset]:
        return self.store.datasets.list_for(task)

    def gate(self, release: Release) -> GateResult | None:
        return gates.gate_result(self.store.rollout, release)

    def api_keys(self) -> Sequence[ApiKey]:
        return self.store.keys.list_all()

    def dead_letters(self, task: str) -> int:
        return self.facts.dead_letters(task)

    def audited(
        self, task: str, actions: tuple[str, ...]
    ) -> Sequence[tuple[str, str | None, dict[str, Any]]]:
        return self.facts.audited(task, actions)

    def has_profile(self, task: str, number: int) -> bool:
        return self.store.quality.profile(task, number) is not None

    def newest_backup(self) -> datetime | None:
        return self.facts.newest_backup()

    def channel_tests(self) -> Mapping[str, datetime]:
        return self.facts.channel_tests()

    def runbook(self, task: str) -> Mapping[str, Any] | None:
        return self.facts.runbook(task)


def task_file(runtime: Runtime, task: str) -> str:
    tasks_dir = runtime.settings.tasks_dir
    path = next((p for p in task_files(tasks_dir) if p.stem == task), None)
    return f"{tasks_dir.name}/{path.name}" if path is not None else f"tasks/{task}.yaml"


def _draft(runtime: Runtime, spec: TaskSpec) -> tuple[str | None, str | None]:
    try:
        return runtime.draft_release(spec).content_hash, None
    except LockgateError as exc:
        return None, exc.message


def _rules(runtime: Runtime, spec: TaskSpec) -> list[Any]:
    from lockgate.server.history import alert_rules

    return [r for r in alert_rules(runtime, {spec.name: spec}) if r.task == spec.name]


def report(runtime: Runtime, task: str, project_option: tuple[str, ...] = ()) -> readiness.Report:
    """The readiness report of `task` from the live state."""
    spec = runtime.task(task)
    draft_hash, problem = _draft(runtime, spec)
    settings = runtime.settings
    declared = build_channels(settings.alert_channels, os.environ)
    setup = readiness.Setup(
        spec=spec,
        task_file=task_file(runtime, task),
        draft_hash=draft_hash,
        draft_problem=problem,
        trained_providers=frozenset(m.provider for m in spec.models) & TRAINED_PROVIDERS,
        channels=frozenset(name for name in declared if name != "log"),
        rule_channels={r.name: tuple(r.channels) for r in _rules(runtime, spec)},
        overall_budget=settings.budget is not None,
        backend=runtime.store.backend,
        now=utcnow(),
        project_option=project_option,
    )
    return readiness.readiness(StoreFacts(runtime), setup)


def runbook_markdown(runtime: Runtime, task: str) -> tuple[str, Release | None]:
    """The runbook of `task` as Markdown, from the task file and the live release."""
    spec = runtime.task(task)
    live = runtime.store.releases.live(task)
    settings = runtime.settings
    declared = build_channels(settings.alert_channels, os.environ)
    keys = runtime.store.keys.list_all()
    context = runbook.Context(
        spec=spec,
        task_file=task_file(runtime, task),
        live=live,
        previous=_previous(runtime, task, live),
        rules=_rules(runtime, spec),
        channels=tuple(sorted(name for name in declared if name != "log")),
        backend=runtime.store.backend,
        review_sla_minutes=spec.policy.review_sla_minutes,
        reviewers=tuple(sorted(k.name for k in keys if readiness.may_review(k, task))),
        callers=tuple(sorted(k.name for k in keys if _may_decide(k, task))),
        generated_at=utcnow(),
    )
    return runbook.render(context), live


def _may_decide(key: ApiKey, task: str) -> bool:
    return (
        key.revoked_at is None
        and "decide" in PERMISSIONS[key.role]
        and (not key.tasks or task in key.tasks)
    )


def _previous(runtime: Runtime, task: str, live: Release | None) -> Release | None:
    if live is None:
        return None
    older = [r for r in runtime.store.releases.list_for(task) if r.stage == "retired"]
    return max(older, key=lambda r: r.number, default=None)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Readiness: {{ r.task }}</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #1b1b1b; }
table { border-collapse: collapse; width: 100%; }
td, th { border-bottom: 1px solid #ddd; padding: .4rem; text-align: left; vertical-align: top; }
.pass { color: #17612a; } .warn { color: #8a5a00; } .fail { color: #a0141e; }
code { background: #f3f3f3; padding: 0 .2rem; }
</style></head><body>
{{ body }}
</body></html>
"""

_BODY = """<h1>Readiness: {{ r.task }}</h1>
<p><strong>{{ r.score }}%</strong> ready ({{ counts.pass }} pass, {{ counts.warn }} warn,
{{ counts.fail }} fail); {{ "live: " ~ r.live if r.live else "no live release" }};
checked {{ r.checked_at.strftime("%Y-%m-%d %H:%M") }} UTC.</p>
{% if steps %}<h2>What to do next</h2>
<ol>{% for step in steps %}<li><code>{{ step }}</code></li>{% endfor %}</ol>{% endif %}
<table>
<thead><tr><th>status</th><th>item</th><th>evidence</th><th>fix</th></tr></thead>
<tbody>{% for item in r.items %}
<tr class="{{ item.status }}"><td class="{{ item.status }}">{{ item.status }}</td>
<td>{{ item.title }}</td><td>{{ item.evidence }}</td>
<td>{% for command in item.commands %}<code>{{ command }}</code><br>{% endfor %}</td></tr>
{% endfor %}</tbody></table>
{% if placeholders %}<h2>Placeholders</h2><dl>{% for name, meaning in placeholders.items() %}
<dt><code>&lt;{{ name }}&gt;</code></dt><dd>{{ meaning }}</dd>{% endfor %}</dl>{% endif %}
"""


def report_body(report: readiness.Report) -> str:
    """The report as an HTML fragment (escaped): the CLI's page and the /ui/ page share it."""
    from jinja2 import Environment

    placeholders: dict[str, str] = {}
    for item in report.items:
        placeholders.update(item.placeholders)
    template = Environment(autoescape=True).from_string(_BODY)
    return template.render(
        r=report, counts=report.counts(), steps=report.next_steps(), placeholders=placeholders
    )


def report_html(report: readiness.Report) -> str:
    """The report as a page of its own (`lockgate readiness --html FILE`)."""
    from jinja2 import Environment
    from markupsafe import Markup

    template = Environment(autoescape=True).from_string(_PAGE)
    return template.render(r=report, body=Markup(report_body(report)))
