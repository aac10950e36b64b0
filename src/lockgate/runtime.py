"""The runtime of one process: settings, store, provider registry, breakers and pipeline.

Built once at an entry point (a CLI command, the server's app factory) and passed down.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.costs.budgets import BudgetGuard, overall_budget
from lockgate.costs.cache import DecisionCache
from lockgate.costs.metrics import CostMetrics
from lockgate.decide.decision import utcnow
from lockgate.decide.groups import DecisionGroups
from lockgate.decide.pipeline import ChainModel, Pipeline, ReleaseRuntime
from lockgate.decide.records import Record
from lockgate.decide.task import TaskSpec, load_tasks, task_files, task_to_dict
from lockgate.errors import ConfigError, NotFound
from lockgate.intake.api import ApiIntake
from lockgate.monitor.metrics import Metrics
from lockgate.monitor.observer import NullObserver, Observer
from lockgate.providers.base import Provider, ProviderContext
from lockgate.providers.registry import ProviderRegistry
from lockgate.review.service import ReviewService
from lockgate.rollout.release import Release, content_hash
from lockgate.settings import Settings
from lockgate.store import Store
from lockgate.watch.quality import QualityService

log = logging.getLogger("lockgate.runtime")

if TYPE_CHECKING:
    from lockgate.evals.service import EvalService


@dataclass
class Runtime:
    settings: Settings
    store: Store
    registry: ProviderRegistry
    observer: Observer = field(default_factory=NullObserver)
    """Metrics, traces and logs of the pipeline (`monitor.telemetry.build_observer`)."""

    def __post_init__(self) -> None:
        if self.settings.audit_anchor_file is not None:
            from lockgate.store import anchor

            anchor.follow(self.store.engine, self.settings.audit_anchor_file)
        metrics = getattr(self.observer, "metrics", None)
        self.metrics: Metrics | None = metrics if isinstance(metrics, Metrics) else None
        """The observer's Prometheus metrics, when it keeps any."""
        cost_metrics = CostMetrics(self.metrics.registry) if self.metrics is not None else None
        self.budgets = BudgetGuard(
            self.store.async_costs,
            price=self.settings.price,
            overall=overall_budget(self.settings.budget),
            hold_seconds=self.settings.budget_hold_seconds,
            default_max_tokens=self.settings.budget_max_tokens,
            metrics=cost_metrics,
        )
        """Budgets (`costs.budgets`): subscribe to soft limits with `budgets.on_soft_limit`."""
        self.cache = DecisionCache(self.store.async_costs, metrics=cost_metrics)
        self.pipeline = Pipeline(
            self.store.async_decisions,
            concurrency=self.settings.concurrency,
            observer=self.observer,
            spend=self.budgets,
            cache=self.cache,
        )
        self.groups = DecisionGroups(
            self.pipeline,
            max_items=self.settings.group_commit_max_items,
            max_wait_s=self.settings.group_commit_wait_ms / 1000,
        )
        """Concurrent decision requests of the server, decided and committed together."""
        self.api_intake = ApiIntake(
            self.store.async_intake,
            self.pipeline,
            self._task_files_read,
            refresh_s=self.settings.release_refresh_seconds,
            metrics=self.metrics,
        )
        """Tasks with an `api` source: their requests go through intake (`intake.api`)."""
        self.api_groups = DecisionGroups(
            self.api_intake,
            max_items=self.settings.group_commit_max_items,
            max_wait_s=self.settings.group_commit_wait_ms / 1000,
        )
        self._task_files: tuple[tuple[Any, ...], dict[str, TaskSpec]] | None = None
        self._loaded: dict[tuple[str, int], ReleaseRuntime] = {}
        self._loading = threading.Lock()
        """Releases are loaded in worker threads; each is built once."""
        self._serving: dict[str, tuple[float, ReleaseRuntime]] = {}
        """Per task: until when (event-loop time) its serving releases are trusted, and them."""
        self._serving_reads: dict[str, asyncio.Task[ReleaseRuntime]] = {}
        self.reviews = ReviewService(
            self.store.reviews,
            self.store.releases,
            lease_seconds=self.settings.review_lease_seconds,
            metrics=self.metrics,
        )
        self.quality = QualityService(self.store.quality, self.store.decisions, self.store.releases)
        """Spot checks, feedback and live accuracy (`watch.quality`)."""

    @classmethod
    def open(
        cls,
        settings: Settings,
        registry: ProviderRegistry | None = None,
        observer: Observer | None = None,
    ) -> Runtime:
        return cls(
            settings,
            # No wait on the database outlasts a request: a held lock becomes a clean error.
            Store(
                settings.database_url,
                timeout_seconds=settings.request_timeout_seconds,
                project_dir=settings.project_dir,
            ),
            registry or ProviderRegistry.discover(),
            observer or NullObserver(),
        )

    # ---- tasks and releases

    def tasks(self) -> dict[str, TaskSpec]:
        return load_tasks(self.settings.tasks_dir, known_providers=self.registry.names())

    async def _task_files_read(self) -> dict[str, TaskSpec]:
        """The task files, parsed again only when one changed (for the api sources)."""
        return await self.store.executor.read(self._task_files_changed)

    def _task_files_changed(self) -> dict[str, TaskSpec]:
        folder = self.settings.tasks_dir
        files = task_files(folder) if folder.is_dir() else []
        signature = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        if self._task_files is None or self._task_files[0] != signature:
            self._task_files = (signature, self.tasks() if folder.is_dir() else {})
        return self._task_files[1]

    def task(self, name: str) -> TaskSpec:
        tasks = self.tasks()
        if name not in tasks:
            known = ", ".join(sorted(tasks)) or "none"
            raise NotFound(
                f"no task named {name!r} in {self.settings.tasks_dir}", hint=f"tasks: {known}"
            )
        return tasks[name]

    def draft_release(self, spec: TaskSpec) -> Release:
        """The release the task file describes now, with the artifacts it would pin."""
        artifacts: dict[str, str] = {}
        for index, model in enumerate(spec.models):
            context = ProviderContext(task=spec, settings=self.settings)
            for key, digest in self.registry.pinned_artifacts(model, context).items():
                artifacts[f"models.{index}.{key}"] = digest
        body = task_to_dict(spec)
        return Release(
            task=spec.name,
            number=0,
            content_hash=content_hash(body, artifacts),
            spec=body,
            artifacts=artifacts,
            stage="draft",
            created_at=utcnow(),
        )

    def create_release(self, task_name: str, actor: str) -> tuple[Release, bool]:
        """Create (or find, for the same content) the release the task file describes; the
        bytes of every artifact it pins go into the database with it, so that any replica
        can load it without the project's files."""
        spec = self.task(task_name)
        draft = self.draft_release(spec)
        self._check_buildable(draft)
        for index, model in enumerate(spec.models):
            pinned = _pinned(draft, index)
            context = ProviderContext(task=spec, settings=self.settings, artifacts=pinned)
            for key, path in self.registry.artifact_files(model, context).items():
                self.store.artifacts.put(pinned[key], path.read_bytes())  # checks the hash
        return self.store.releases.create(draft, actor)

    def derived_draft(self, source: Release, body: Mapping[str, Any]) -> Release:
        """A draft with a changed spec `body` (e.g. a calibrated policy) that pins the same
        artifacts as `source`; checked to build, not stored."""
        draft = Release(
            task=source.task,
            number=0,
            content_hash=content_hash(body, source.artifacts),
            spec=dict(body),
            artifacts=dict(source.artifacts),
            stage="draft",
            created_at=utcnow(),
        )
        self._check_buildable(draft)
        return draft

    def budget_report(self, task_name: str) -> dict[str, Any]:
        """What `task_name` has spent, holds and has left today and this month, under the
        budget of its live release (or of its task file, before any release is live)."""
        from lockgate.costs.report import budget_report

        live, _ = self.store.rollout.serving(task_name)
        if live is not None:
            spec, release = live.task_spec(), f"{live.task}@{live.number}"
        else:
            tasks = self.tasks() if self.settings.tasks_dir.is_dir() else {}
            if task_name not in tasks:
                raise self._no_live_release(task_name)
            spec, release = tasks[task_name], None
        return budget_report(
            self.store.costs,
            spec,
            release=release,
            overall=self.budgets.overall,
            now=utcnow(),
        )

    def eval_service(self) -> EvalService:
        """Evals and calibration over this runtime's store, task files and providers."""
        from lockgate.evals.service import EvalService  # scipy: only where evals run

        return EvalService(
            releases=self.store.releases,
            datasets=self.store.datasets,
            evals=self.store.evals,
            task_spec=self.task,
            release_runtime=self.release_runtime,
            derived_draft=self.derived_draft,
            concurrency=self.settings.concurrency,
            fold_runtime=self.fold_runtime,
        )

    def fold_runtime(
        self,
        spec: TaskSpec,
        records: Sequence[Record],
        folder: Path,
        progress: Callable[[str], None],
    ) -> ReleaseRuntime:
        """The task's chain trained on `records` in `folder` (rows of the task's sealed
        datasets refused), ready to decide: a fold of a cross-fitted calibration."""
        from lockgate.evals.cross_fit import trained_chain

        return trained_chain(
            spec,
            records,
            folder,
            progress,
            settings=self.settings,
            registry=self.registry,
            sealed=self.store.datasets.sealed_inputs(spec.name),
        )

    def release_runtime(self, task_name: str, number: int | None = None) -> ReleaseRuntime:
        """The given release, or the live one, ready to decide (built once per process)."""
        canary = None
        if number is None:
            live, canary = self.store.rollout.serving(task_name)
            if live is None:
                raise self._no_live_release(task_name)
            release = live
        else:
            release = self.store.releases.get(task_name, number)
        key = (release.task, release.number)
        with self._loading:
            if key not in self._loaded:
                self._loaded[key] = self._build(release)
        if canary is not None and canary.canary_percent:
            # The live release with the canary beside it; the pipeline splits keys between them.
            return replace(
                self._loaded[key],
                canary=self.release_runtime(task_name, canary.number),
                canary_percent=canary.canary_percent,
            )
        return self._loaded[key]

    async def serving_release(self, task_name: str) -> ReleaseRuntime:
        """`release_runtime(task_name)` for async code: read and loaded off the event loop,
        then kept for `settings.release_refresh_seconds` (only the pointers to the live and
        canary releases can move; the releases are immutable). Concurrent callers share one
        read."""
        loop = asyncio.get_running_loop()
        cached = self._serving.get(task_name)
        if cached is not None and loop.time() < cached[0]:
            return cached[1]
        reading = self._serving_reads.get(task_name)
        if reading is None:
            reading = loop.create_task(self._read_serving(task_name))
            self._serving_reads[task_name] = reading
        return await asyncio.shield(reading)

    async def _read_serving(self, task_name: str) -> ReleaseRuntime:
        try:
            started = asyncio.get_running_loop().time()
            loaded = await self.store.executor.read(self.release_runtime, task_name)
            self._serving[task_name] = (started + self.settings.release_refresh_seconds, loaded)
            return loaded
        finally:
            del self._serving_reads[task_name]

    async def warm_serving(self) -> None:
        """Load the serving release of every task with a live release, so the first requests
        after a start do not wait for models to load. A release that fails to load is left
        for the first request, which then gets the error."""
        live = await self.store.executor.read(self.store.rollout.in_stage, "live")
        for release in live:
            try:
                await self.serving_release(release.task)
            except Exception as exc:  # reported to the first request that needs it
                log.warning(
                    "could not load the live release of %s at start: %s",
                    release.task,
                    type(exc).__name__,
                )

    def forget_serving(self, task_name: str | None = None) -> None:
        """Read the serving releases again on next use (after this process moved a pointer)."""
        if task_name is None:
            self._serving.clear()
        else:
            self._serving.pop(task_name, None)

    def _no_live_release(self, task_name: str) -> NotFound:
        """Why there is nothing to decide with: no such task (with the names close to it), or
        a task that has no live release yet."""
        tasks_dir = self.settings.tasks_dir
        known = sorted(p.stem for p in task_files(tasks_dir)) if tasks_dir.is_dir() else []
        if task_name not in known and not self.store.releases.list_for(task_name):
            close = difflib.get_close_matches(task_name, known, n=3, cutoff=0.6)
            return NotFound(
                f"there is no task named {task_name!r}",
                hint=f"did you mean {' or '.join(close)}?"
                if close
                else f"tasks: {', '.join(known) or 'none yet'}",
            )
        return NotFound(
            f"task {task_name!r} has no live release",
            hint=f"run `lockgate release create {task_name}` then "
            f"`lockgate release promote {task_name}@N`",
        )

    def _build(self, release: Release) -> ReleaseRuntime:
        spec = release.task_spec()
        models = tuple(
            ChainModel(model, self._provider(spec, release, index))
            for index, model in enumerate(spec.models)
        )
        return ReleaseRuntime(
            task=spec, release=release.number, models=models, content_hash=release.content_hash
        )

    def _provider(self, spec: TaskSpec, release: Release, index: int) -> Provider:
        context = ProviderContext(
            task=spec,
            settings=self.settings,
            artifacts=_pinned(release, index),
            fetch_artifact=self.store.artifacts.get,
        )
        return self.registry.build(spec.models[index], context)

    def _check_buildable(self, draft: Release) -> None:
        """Build every provider once, so a release that cannot run is never created."""
        try:
            self._build(draft)
        except ConfigError as exc:
            raise ConfigError(
                f"cannot create a release of {draft.task}: {exc.message}", hint=exc.hint
            ) from None

    async def aclose(self) -> None:
        await self.groups.aclose()
        await self.api_groups.aclose()
        self._serving.clear()
        for loaded in self._loaded.values():
            for model in loaded.models:
                await model.provider.aclose()
        self._loaded.clear()

    def close(self) -> None:
        self.store.close()


def _pinned(release: Release, index: int) -> dict[str, str]:
    """The artifact hashes a release pins for its `index`-th model, by the provider's keys."""
    prefix = f"models.{index}."
    return {k.removeprefix(prefix): v for k, v in release.artifacts.items() if k.startswith(prefix)}
