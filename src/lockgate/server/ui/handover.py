"""The readiness report and the runbook as pages: `/ui/readiness/{task}` and
`/ui/runbook/{task}`, for every role that may read the task (viewer and above). The same data
as `lockgate readiness` and `lockgate runbook`, built from the live state on each visit."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lockgate.decide.task import NAME_PATTERN
from lockgate.errors import LockgateError, NotFound
from lockgate.runtime import Runtime
from lockgate.security import Principal
from lockgate.server import readiness
from lockgate.server.ui.access import Access, run
from lockgate.server.ui.pages import Shown, Templates, redirect

if TYPE_CHECKING:
    from lockgate.server.ui.routes import ReviewPages

_TASK = re.compile(NAME_PATTERN)


def _report(runtime: Runtime, principal: Principal, task: str) -> Any:
    principal.require("read_tasks", task)
    return readiness.report(runtime, task)


def _runbook(runtime: Runtime, principal: Principal, task: str) -> str:
    principal.require("read_tasks", task)
    text, _ = readiness.runbook_markdown(runtime, task)
    return text


class HandoverPages:
    def __init__(self, pages: ReviewPages, templates: Templates, access: Access) -> None:
        self.pages = pages
        self.templates = templates
        self.access = access

    def add_to(self, router: APIRouter) -> None:
        router.add_api_route("/readiness/{task}", self.readiness, methods=["GET"])
        router.add_api_route("/runbook/{task}", self.runbook, methods=["GET"])

    async def readiness(self, request: Request, task: str) -> Response:
        return await self._page(request, task, "readiness.html", _report)

    async def runbook(self, request: Request, task: str) -> Response:
        return await self._page(request, task, "runbook.html", _runbook)

    async def _page(self, request: Request, task: str, template: str, build: Any) -> Response:
        visit = await self.access.visit(request)
        if visit.principal is None:
            return self.access.send(visit, redirect("/sign-in"))
        chrome = await self.pages.chrome(visit)
        try:
            if not _TASK.match(task):
                raise NotFound("there is no task with that name")
            found = await run(build, visit.runtime, visit.principal, task)
        except LockgateError as exc:
            shown = Shown.of(exc)
            page = self.templates.message(shown.title, shown.text, code=exc.status, **chrome)
            return self.access.send(visit, page)
        placeholders: dict[str, str] = {}
        for item in getattr(found, "items", ()):
            placeholders.update(item.placeholders)
        page = self.templates.page(
            template,
            **chrome,
            nav=f"{template.removesuffix('.html')}:{task}",
            task=task,
            r=found,
            placeholders=placeholders,
        )
        return self.access.send(visit, page)
