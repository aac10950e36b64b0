"""The quarantine page under `/ui/quarantine/{task}`: held records of a task's sources with
their position and reason (raw values masked as in `lockgate quarantine show`), and buttons to
replay them through the task file's current mapping or to discard them (operators and admins,
who may manage releases)."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lockgate.decide.task import NAME_PATTERN
from lockgate.errors import LockgateError, NotFound
from lockgate.intake.service import IntakeService, discard, shown
from lockgate.server.ui.access import Access, Visit, run
from lockgate.server.ui.pages import Shown, Templates, redirect

if TYPE_CHECKING:
    from lockgate.server.ui.routes import ReviewPages

_TASK = re.compile(NAME_PATTERN)
ACTIONS = ("replay", "discard")


class QuarantinePages:
    def __init__(self, pages: ReviewPages, templates: Templates, access: Access) -> None:
        self.pages = pages
        self.templates = templates
        self.access = access

    def add_to(self, router: APIRouter) -> None:
        router.add_api_route("/quarantine/{task}", self.listing, methods=["GET"])
        router.add_api_route("/quarantine/{task}/{action}", self.act, methods=["POST"])

    async def listing(self, request: Request, task: str) -> Response:
        visit = await self.access.visit(request)
        if visit.principal is None:
            return self.access.send(visit, redirect("/sign-in"))
        chrome = await self.pages.chrome(visit)
        try:
            items = await self._items(visit, task)
        except LockgateError as exc:
            return self._error(visit, exc, chrome)
        notice = request.query_params.get("done")
        page = self.templates.page(
            "quarantine.html",
            **chrome,
            nav=f"quarantine:{task}",
            task=task,
            items=items,
            may_act=visit.principal.can("manage_releases") and visit.principal.may_see_task(task),
            notice=notice[:200] if notice else None,
        )
        return self.access.send(visit, page)

    async def _items(self, visit: Visit, task: str) -> list[dict[str, Any]]:
        assert visit.principal is not None
        if not _TASK.match(task):
            raise NotFound("there is no task with that name")
        visit.principal.require("read_decisions", task)
        runtime = visit.runtime
        spec = (await run(runtime.tasks)).get(task)
        held = await run(runtime.store.intake.quarantined, task, None, "held", 500)
        clear = visit.principal.role in runtime.settings.review_pii_roles
        return [shown(item, spec, clear=clear) for item in held]

    async def act(self, request: Request, task: str, action: str) -> Response:
        visit = await self.access.visit(request)
        if visit.principal is None:
            return self.access.send(visit, redirect("/sign-in"))
        form = await self.access.checked_form(visit)
        if isinstance(form, Response):
            return form
        chrome = await self.pages.chrome(visit)
        try:
            if action not in ACTIONS or not _TASK.match(task):
                raise NotFound("there is no such page")
            visit.principal.require("manage_releases", task)
            ids = [int(v) for v in form.get("ids", "").split(",") if v.strip().isdigit()]
            runtime = visit.runtime
            items = await run(runtime.store.intake.quarantined, task, None, "held", 500, ids)
            if action == "discard":
                for item in items:
                    await run(runtime.store.intake.commit, [], discard(item))
                done = f"{len(items)} discarded"
            else:
                service = IntakeService(
                    runtime.store.async_intake,
                    runtime.pipeline,
                    runtime.release_runtime,
                    await run(runtime.tasks),
                    runtime.settings.project_dir,
                    os.environ,
                    metrics=runtime.metrics,
                )
                outcome = await service.replay(items, release=await runtime.serving_release(task))
                counts = outcome.counts
                done = (
                    f"{len(items)} replayed: {counts['decided']} decided, "
                    f"{counts['duplicates']} duplicates, {counts['quarantined']} still held"
                )
        except LockgateError as exc:
            return self._error(visit, exc, chrome)
        return self.access.send(visit, redirect(f"/quarantine/{task}?done={done}"))

    def _error(self, visit: Visit, exc: LockgateError, chrome: dict[str, Any]) -> Response:
        page = self.templates.message(
            Shown.of(exc).title, Shown.of(exc).text, code=exc.status, **chrome
        )
        return self.access.send(visit, page)
