"""The dashboard pages: `/ui/tasks` (the first task the key may see) and `/ui/tasks/{task}`,
one task's overview over 1 h, 24 h, 7 d or 30 d (`?range=`), for every role that may read
tasks; and `POST /ui/tasks/{task}/retrain`, the retrain button of operators and admins (who may
manage releases), which starts `lockgate retrain TASK` in a child process (audited: who asked,
then its outcome) and shows the outcome on the page."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lockgate.decide.task import NAME_PATTERN, TaskSpec
from lockgate.errors import LockgateError, NotFound
from lockgate.runtime import Runtime
from lockgate.security import Principal
from lockgate.server.ui import dashboard
from lockgate.server.ui.access import Access, Visit, run
from lockgate.server.ui.pages import Shown, Templates, redirect

if TYPE_CHECKING:
    from lockgate.server.ui.routes import ReviewPages

log = logging.getLogger("lockgate.ui")

_TASK = re.compile(NAME_PATTERN)
RETRAIN_TIMEOUT_SECONDS = 3600


class OverviewPages:
    def __init__(self, pages: ReviewPages, templates: Templates, access: Access) -> None:
        self.pages = pages
        self.templates = templates
        self.access = access
        self.slow = dashboard.Kept(dashboard.SLOW_SECONDS, refresh_behind=True)
        """Drift reports, kept for 5 minutes, then computed again behind the page."""
        self.overviews: dashboard.Kept | None = None
        """Overviews per task and range, kept for the roll-up's interval: the history they
        show changes only when the roll-up runs."""
        self.retraining: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def add_to(self, router: APIRouter) -> None:
        router.add_api_route("/tasks", self.first_task, methods=["GET"])
        router.add_api_route("/tasks/{task}", self.overview, methods=["GET"])
        router.add_api_route("/tasks/{task}/retrain", self.retrain, methods=["POST"])

    async def first_task(self, request: Request) -> Response:
        visit = await self.access.visit(request)
        if visit.principal is None:
            return self.access.send(visit, redirect("/sign-in"))
        tasks = list(await self.pages.tasks(visit))
        if not tasks:
            chrome = await self.pages.chrome(visit)
            page = self.templates.message(
                "No tasks", "This key may see no task of the project.", code=404, **chrome
            )
            return self.access.send(visit, page)
        return self.access.send(visit, redirect(f"/tasks/{tasks[0]}"))

    async def overview(self, request: Request, task: str) -> Response:
        visit = await self.access.visit(request)
        if visit.principal is None:
            return self.access.send(visit, redirect("/sign-in"))
        tasks = await self.pages.tasks(visit)
        chrome = await self.pages.chrome(visit, tasks)
        chosen = request.query_params.get("range", dashboard.DEFAULT_RANGE)
        if chosen not in dashboard.RANGES:
            chosen = dashboard.DEFAULT_RANGE
        try:
            if not _TASK.match(task):
                raise NotFound("there is no task with that name")
            visit.principal.require("read_tasks", task)
            found = await run(self._overview, visit.runtime, visit.principal, task, chosen, tasks)
        except LockgateError as exc:
            return self._error(visit, exc, chrome)
        principal = visit.principal
        notice = None
        if request.query_params.get("retrain") == "started":
            notice = f"Retraining of {task} started; its outcome appears below when it is done."
        page = self.templates.page(
            "overview.html",
            **chrome,
            nav="overview",
            task=task,
            tasks=list(tasks),
            o=found,
            ranges=list(dashboard.RANGES),
            d=dashboard,
            may_retrain=principal.can("manage_releases") and principal.may_see_task(task),
            retraining=self._running(task),
            notice=notice,
        )
        return self.access.send(visit, page)

    def _overview(
        self,
        runtime: Runtime,
        principal: Principal,
        task: str,
        chosen: str,
        tasks: Mapping[str, TaskSpec],
    ) -> dashboard.Overview:
        if self.overviews is None:
            self.overviews = dashboard.Kept(
                runtime.settings.history_rollup_seconds, keep_errors=False
            )
        found, _, _ = self.overviews.get(
            (task, chosen),
            lambda: dashboard.overview(runtime, principal, task, chosen, self.slow, tasks),
        )
        overview: dashboard.Overview = found
        return overview

    async def retrain(self, request: Request, task: str) -> Response:
        visit = await self.access.visit(request)
        if visit.principal is None:
            return self.access.send(visit, redirect("/sign-in"))
        form = await self.access.checked_form(visit)
        if isinstance(form, Response):
            return form
        chrome = await self.pages.chrome(visit)
        principal = visit.principal
        try:
            if not _TASK.match(task):
                raise NotFound("there is no task with that name")
            principal.require("manage_releases", task)
            await run(visit.runtime.task, task)
            if self._running(task):
                raise_running(task)
            await run(
                visit.runtime.store.dashboard.record,
                principal.name,
                "release.retrain_requested",
                task,
                {"from": "dashboard"},
            )
            self._start(visit.runtime, task, principal.name)
        except LockgateError as exc:
            return self._error(visit, exc, chrome)
        return self.access.send(visit, redirect(f"/tasks/{task}?retrain=started#retrain"))

    # ---- the retraining child process

    def _running(self, task: str) -> bool:
        with self._lock:
            thread = self.retraining.get(task)
            return thread is not None and thread.is_alive()

    def _start(self, runtime: Runtime, task: str, actor: str) -> None:
        thread = threading.Thread(
            target=self._retrain, args=(runtime, task, actor), name=f"retrain-{task}", daemon=True
        )
        with self._lock:
            self.retraining[task] = thread
        thread.start()

    def _retrain(self, runtime: Runtime, task: str, actor: str) -> None:
        """`lockgate retrain TASK --json` in a child process (training is heavy; the server
        keeps serving). On success the command audits `release.retrain` itself; a failure is
        audited here as `release.retrain_failed` with the command's one-line error."""
        settings = runtime.settings
        command = [sys.executable, "-m", "lockgate", "retrain", task, "--json", "--actor", actor]
        command += ["--project", str(settings.project_dir)]
        env = {**os.environ, "LOCKGATE_DATABASE_URL": settings.database_url}
        error: str | None = None
        try:
            done = subprocess.run(
                command,
                env=env,
                capture_output=True,
                text=True,
                timeout=RETRAIN_TIMEOUT_SECONDS,
                check=False,
            )
            if done.returncode != 0:
                error = failure_of(done.stderr, done.returncode)
        except (OSError, subprocess.TimeoutExpired) as exc:
            error = f"could not run lockgate retrain: {type(exc).__name__}"
        self.slow.forget(task)
        if self.overviews is not None:
            self.overviews.forget(task)
        if error is not None:
            log.warning("ui.retrain_failed", extra={"task": task, "error": error})
            try:
                runtime.store.dashboard.record(
                    actor, "release.retrain_failed", task, {"error": error}
                )
            except LockgateError:
                log.warning("ui.retrain_not_audited", extra={"task": task})

    def _error(self, visit: Visit, exc: LockgateError, chrome: dict[str, Any]) -> Response:
        page = self.templates.message(
            Shown.of(exc).title, Shown.of(exc).text, code=exc.status, **chrome
        )
        return self.access.send(visit, page)


def failure_of(stderr: str, returncode: int) -> str:
    """The command's one-line error and its hint (`error: ...`, `hint: ...`), else its last
    line of output."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith(("error:", "hint:"))]
    text = "; ".join(said) if said else (lines[-1] if lines else f"exit code {returncode}")
    return text.removeprefix("error: ")[:400]


def raise_running(task: str) -> None:
    from lockgate.errors import Conflict

    raise Conflict(
        f"a retraining of {task} is running already",
        hint="wait for its outcome on this page",
    )
