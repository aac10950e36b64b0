"""The spot-check page under `/ui/spot-checks`: automated decisions that were delivered and now
wait for a person, each marked "spot check", with approve, correct and reject. A verdict never
changes the decision or its delivery: it counts toward live accuracy (`watch.quality`). The
same duty rules as the review queue: reviewers of the task, never the key that submitted it."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lockgate.decide.task import NAME_PATTERN, TaskSpec
from lockgate.errors import LockgateError, NotFound
from lockgate.monitor.redaction import redact_text
from lockgate.server.ui import views
from lockgate.server.ui.access import Access, Visit, run
from lockgate.server.ui.pages import Shown, Templates, redirect
from lockgate.watch.types import Feedback, SpotCheck

if TYPE_CHECKING:
    from lockgate.server.ui.routes import ReviewPages

_DECISION_ID = re.compile(r"^[0-9a-f]{1,32}$")
_TASK = re.compile(NAME_PATTERN)
ACTIONS = ("approve", "correct", "reject")
DONE = {"approve": "approved", "correct": "corrected", "reject": "rejected"}
PAGE = 50


async def live_quality(visit: Visit, decision_id: str) -> tuple[SpotCheck | None, list[Feedback]]:
    """What the item page shows after a decision's delivery: its spot check and the feedback
    on it, each comment with personal data patterns redacted."""
    quality = visit.runtime.store.quality
    check = await run(quality.spot_check, decision_id)
    given = await run(quality.feedback_of, decision_id)
    shown = [
        replace(f, comment=redact_text(f.comment) if f.comment is not None else None) for f in given
    ]
    return check, shown


class SpotCheckPages:
    def __init__(self, pages: ReviewPages, templates: Templates, access: Access) -> None:
        self.pages = pages
        self.templates = templates
        self.access = access

    def add_to(self, router: APIRouter) -> None:
        router.add_api_route("/spot-checks", self.listing, methods=["GET"])
        router.add_api_route("/spot-checks/{decision_id}/{action}", self.act, methods=["POST"])

    async def listing(self, request: Request) -> Response:
        visit = await self.access.visit(request)
        if visit.principal is None:
            return self.access.send(visit, redirect("/sign-in"))
        task = request.query_params.get("task") or None
        if task is not None and not _TASK.match(task):
            task = None
        done = request.query_params.get("done")
        return await self.page(visit, task, notice=done[:200] if done else None)

    async def page(
        self,
        visit: Visit,
        task: str | None,
        *,
        notice: str | None = None,
        error: LockgateError | None = None,
    ) -> Response:
        assert visit.principal is not None
        chrome = await self.pages.chrome(visit)
        try:
            found = await run(visit.runtime.quality.open_checks, visit.principal, task, PAGE)
        except LockgateError as exc:
            page = self.templates.message(
                Shown.of(exc).title, Shown.of(exc).text, code=exc.status, **chrome
            )
            return self.access.send(visit, page)
        clear = views.may_see_personal_data(visit.principal, self.pages.pii_roles)
        specs: dict[tuple[str, int], TaskSpec] = {}
        items: list[dict[str, Any]] = []
        for check, decision in found:
            key = (decision.task, decision.release)
            if key not in specs:
                stored = await run(visit.runtime.store.releases.get, *key)
                specs[key] = stored.task_spec()
            items.append(
                {
                    "check": check,
                    "decision": decision,
                    "input_rows": views.shown_input(decision, specs[key], clear),
                    "form_fields": views.output_form(specs[key], decision.output),
                }
            )
        page = self.templates.page(
            "spot_checks.html",
            code=error.status if error else 200,
            **chrome,
            nav="spot-checks",
            task=task,
            items=items,
            notice=notice,
            error=Shown.of(error) if error else None,
        )
        return self.access.send(visit, page)

    async def act(self, request: Request, decision_id: str, action: str) -> Response:
        visit = await self.access.visit(request)
        if visit.principal is None:
            return self.access.send(visit, redirect("/sign-in"))
        form = await self.access.checked_form(visit)
        if isinstance(form, Response):
            return form
        quality = visit.runtime.quality
        try:
            if action not in ACTIONS or not _DECISION_ID.match(decision_id):
                raise NotFound("there is no such page")
            output = None
            if action == "correct":
                decision = await run(visit.runtime.store.decisions.get, decision_id)
                if decision is None:
                    raise NotFound("there is no decision with that id")
                stored = await run(
                    visit.runtime.store.releases.get, decision.task, decision.release
                )
                output = views.submitted_output(stored.task_spec(), form)
            reason = form.get("reason", "").strip() or None
            await run(quality.judge, visit.principal, decision_id, action, output, reason)
        except LockgateError as exc:
            return await self.page(visit, None, error=exc)
        done = f"Spot check of {decision_id[-10:]} {DONE[action]}; the delivered outcome stays."
        return self.access.send(visit, redirect("/spot-checks?" + urlencode({"done": done})))
