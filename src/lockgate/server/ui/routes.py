"""The review pages under `/ui/`: sign-in, queue, item, verdicts and the suggest-mode report.

Endpoints stay thin: who may see or do what is decided by the review core
(`runtime.reviews`); its refusals (403, 409, 422) are shown on the page as a readable message.
Every POST passes the CSRF and same-origin checks of `Access.checked_form` first.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lockgate.decide.decision import utcnow
from lockgate.decide.task import NAME_PATTERN, TaskSpec
from lockgate.errors import LockgateError, NotFound
from lockgate.review.service import waiting_on_others
from lockgate.review.types import Verdict
from lockgate.server.auth import client_address, failed_attempts
from lockgate.server.ui import reports, views
from lockgate.server.ui.access import Access, Visit, run
from lockgate.server.ui.handover import HandoverPages
from lockgate.server.ui.overview import OverviewPages
from lockgate.server.ui.pages import BASE, Shown, Templates, redirect, static_file
from lockgate.server.ui.quarantine import QuarantinePages
from lockgate.server.ui.sessions import SessionSigner
from lockgate.server.ui.spot_checks import SpotCheckPages, live_quality
from lockgate.settings import Settings

_DECISION_ID = re.compile(r"^[0-9a-f]{1,32}$")
_TASK = re.compile(NAME_PATTERN)
STATUSES = ("pending_review", "approved", "corrected", "rejected", "rejected_by_policy")
"""The lists of the queue page: a reviewer's rejections and the policy's are kept apart."""
ACTIONS = ("claim", "release", "approve", "correct", "reject")
SELECT_PREFIX = "select."
"""A ticked row of the queue posts `select.DECISION_ID`."""
BULK_LIMIT = 50
BULK_REASON = "approved with other selected items from the queue"
_DONE = {"approved": "approved", "corrected": "corrected", "rejected": "rejected"}


class ReviewPages:
    """The endpoints of the pages (one instance per app)."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.session_secret.reveal().encode() or secrets.token_bytes(32)
        self.templates = Templates()
        self.access = Access(
            SessionSigner(secret, settings.session_max_age_seconds), self.templates
        )
        self.pii_roles = settings.review_pii_roles

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        router.add_api_route("", self.home, methods=["GET"])
        router.add_api_route("/", self.home, methods=["GET"])
        router.add_api_route("/static/{name}", self.static, methods=["GET"])
        router.add_api_route("/sign-in", self.sign_in_form, methods=["GET"])
        router.add_api_route("/sign-in", self.sign_in, methods=["POST"])
        router.add_api_route("/sign-out", self.sign_out, methods=["POST"])
        router.add_api_route("/queue", self.queue, methods=["GET"])
        router.add_api_route("/next", self.next_item, methods=["GET"])
        router.add_api_route("/items/{decision_id}", self.item, methods=["GET"])
        router.add_api_route("/items/{decision_id}/{action}", self.act, methods=["POST"])
        router.add_api_route("/approve-selected", self.approve_selected, methods=["POST"])
        router.add_api_route("/reports/{task}", self.suggest_report, methods=["GET"])
        router.add_api_route("/shadow/{task}", self.shadow_report, methods=["GET"])
        QuarantinePages(self, self.templates, self.access).add_to(router)
        HandoverPages(self, self.templates, self.access).add_to(router)
        OverviewPages(self, self.templates, self.access).add_to(router)
        SpotCheckPages(self, self.templates, self.access).add_to(router)
        return router

    # ---- sign-in

    async def home(self, request: Request) -> Response:
        return redirect("/queue")

    async def static(self, name: str) -> Response:
        return static_file(name)

    async def sign_in_form(self, request: Request) -> Response:
        visit = await self.access.visit(request)
        if visit.principal is not None:
            return redirect("/queue")
        notice = "You are signed out." if request.query_params.get("out") else None
        page = self.templates.page("sign_in.html", csrf_token=visit.session.nonce, notice=notice)
        return self.access.send(visit, page)

    async def sign_in(self, request: Request) -> Response:
        visit = await self.access.visit(request)
        form = await self.access.checked_form(visit)
        if isinstance(form, Response):
            return form
        secret = form.get("api_key", "").strip()
        key = await run(visit.runtime.store.keys.authenticate, secret) if secret else None
        if key is None:
            wait = failed_attempts(request).failed(client_address(request), secret)
            if wait is not None:
                page = self.templates.page(
                    "sign_in.html",
                    code=429,
                    csrf_token=visit.session.nonce,
                    error=Shown(
                        "Too many failed sign-ins",
                        f"Too many failed sign-ins from this address. Wait {wait} s, "
                        "then sign in with a valid key.",
                    ),
                )
                page.headers["Retry-After"] = str(wait)
                return self.access.send(visit, page)
            page = self.templates.page(
                "sign_in.html",
                code=401,
                csrf_token=visit.session.nonce,
                error=Shown(
                    "Sign-in failed",
                    "That API key is unknown or revoked. Check it, or ask an admin for a new one.",
                ),
            )
            return self.access.send(visit, page)
        session = await self.access.sign_in(visit, key)
        return self.access.send(visit, redirect("/queue"), session)

    async def sign_out(self, request: Request) -> Response:
        visit = await self.access.visit(request)
        form = await self.access.checked_form(visit)
        if isinstance(form, Response):
            return form
        signed_out = await self.access.sign_out(visit)
        return self.access.send(visit, redirect("/sign-in?out=1"), signed_out)

    # ---- pages

    async def chrome(
        self, visit: Visit, tasks: Mapping[str, TaskSpec] | None = None
    ) -> dict[str, Any]:
        """What the page frame shows: the reviewer, today's count, the report links; `tasks`
        are the key's tasks (`tasks`) when the page has read them already."""
        assert visit.principal is not None
        principal = visit.principal
        try:
            done = await run(visit.runtime.reviews.done_today, principal)
        except LockgateError:
            done = None
        if tasks is None:
            tasks = await self.tasks(visit)
        try:
            shadowed = await run(reports.shadowed_tasks, visit.runtime)
        except LockgateError:
            shadowed = set()
        return {
            "principal": principal,
            "csrf_token": visit.session.nonce,
            "done_today": done,
            "report_tasks": [n for n, spec in tasks.items() if spec.policy.mode == "suggest"],
            "shadow_tasks": [n for n in tasks if n in shadowed],
        }

    async def tasks(self, visit: Visit) -> dict[str, TaskSpec]:
        assert visit.principal is not None
        try:
            tasks = await run(visit.runtime.tasks)
        except LockgateError:
            return {}
        return {n: s for n, s in sorted(tasks.items()) if visit.principal.may_see_task(n)}

    async def queue(self, request: Request) -> Response:
        visit = await self.access.visit(request)
        if visit.principal is None:
            return self.access.send(visit, redirect("/sign-in"))
        params = request.query_params
        task = params.get("task") or None
        status = params.get("status") or "pending_review"
        after = params.get("after") or None
        mine = params.get("mine") == "1"
        search = (params.get("q") or "").strip()[:200]
        chrome = await self.chrome(visit)
        context: dict[str, Any] = {
            **chrome,
            "nav": "queue",
            "tasks": list(await self.tasks(visit)),
            "task": task,
            "status": status,
            "statuses": STATUSES,
            "items": [],
            "next_after": None,
            "next_query": "",
            "mine": mine,
            "search": search,
            "counts": {},
            "rows": {},
        }
        done = _DONE.get(params.get("done", ""))
        if done:
            context["notice"] = f"Decision {params.get('id', '')[-10:]} {done}."
        if params.get("approved"):
            approved, left = params.get("approved", "0"), params.get("left", "0")
            context["notice"] = f"Approved {approved} selected item(s)" + (
                f"; {left} left for review one by one." if left not in ("", "0") else "."
            )
        if params.get("released"):
            released = params["released"][-10:]
            context["notice"] = f"You released your claim on {released}; anyone may take it now."
        if (
            (task and not _TASK.match(task))
            or status not in STATUSES
            or (after and not _DECISION_ID.match(after))
        ):
            context["error"] = Shown("Check the filters", "Pick a task and status from the lists.")
            return self.access.send(visit, self.templates.page("queue.html", code=422, **context))
        limit = 50
        try:
            final = status != "pending_review"
            items = await run(
                partial(
                    visit.runtime.reviews.queue,
                    visit.principal,
                    task=task,
                    status="rejected" if status == "rejected_by_policy" else status,
                    limit=limit,
                    after=after,
                    mine=mine,
                    search=search or None,
                    by_reviewer=(status != "rejected_by_policy") if final else None,
                )
            )
            context["counts"] = await run(visit.runtime.reviews.pending_counts, visit.principal)
        except LockgateError as exc:
            context["error"] = Shown.of(exc)
            return self.access.send(
                visit, self.templates.page("queue.html", code=exc.status, **context)
            )
        context["items"] = items
        context["rows"] = await self.queue_rows(visit, items)
        context["waiting"] = {
            i.decision.id: why
            for i in items
            if (why := waiting_on_others(visit.principal, i)) is not None
        }
        if len(items) == limit:
            last = items[-1].decision.id
            context["next_after"] = last
            filters = {"task": task, "status": status, "mine": "1" if mine else "", "q": search}
            context["next_query"] = urlencode(
                {k: v for k, v in {**filters, "after": last}.items() if v}
            )
        return self.access.send(visit, self.templates.page("queue.html", **context))

    async def queue_rows(self, visit: Visit, items: list[Any]) -> dict[str, views.QueueRow]:
        """Per item, what a lead scans a queue for: the input's start (masked for the role),
        its age and the time left to the task's review SLA, and who acted on it, when and why."""
        assert visit.principal is not None
        clear = views.may_see_personal_data(visit.principal, self.pii_roles)
        specs: dict[tuple[str, int], TaskSpec] = {}
        now = utcnow()
        rows = {}
        for item in items:
            d = item.decision
            if (d.task, d.release) not in specs:
                stored = await run(visit.runtime.store.releases.get, d.task, d.release)
                specs[(d.task, d.release)] = stored.task_spec()
            rows[d.id] = views.queue_row(item, specs[(d.task, d.release)], clear, now)
        return rows

    async def next_item(self, request: Request) -> Response:
        """The first item of the queue other than `skip` that this reviewer may act on (the `n`
        shortcut): one they approved already waits for another reviewer."""
        visit = await self.access.visit(request)
        if visit.principal is None:
            return self.access.send(visit, redirect("/sign-in"))
        task = request.query_params.get("task") or None
        skip = request.query_params.get("skip", "")
        if task is not None and not _TASK.match(task):
            task = None
        try:
            items = await run(
                partial(visit.runtime.reviews.queue, visit.principal, task=task, limit=50)
            )
        except LockgateError:
            items = []
        for item in items:
            if item.decision.id != skip and waiting_on_others(visit.principal, item) is None:
                return self.access.send(visit, redirect(f"/items/{item.decision.id}"))
        return self.access.send(visit, redirect("/queue" + (f"?task={task}" if task else "")))

    async def item(self, request: Request, decision_id: str) -> Response:
        visit = await self.access.visit(request)
        if visit.principal is None:
            return self.access.send(visit, redirect("/sign-in"))
        notice = None
        if request.query_params.get("recorded"):
            notice = "Your verdict is recorded; another reviewer must approve before it is final."
        return await self.item_page(visit, decision_id, notice=notice)

    async def item_page(
        self,
        visit: Visit,
        decision_id: str,
        *,
        error: LockgateError | None = None,
        notice: str | None = None,
    ) -> Response:
        assert visit.principal is not None
        principal = visit.principal
        chrome = await self.chrome(visit)
        reviews = visit.runtime.reviews
        try:
            if not _DECISION_ID.match(decision_id):
                raise NotFound("there is no decision with that id")
            item = await run(reviews.item, principal, decision_id)
            similar = await run(partial(reviews.similar, principal, decision_id, limit=5))
        except LockgateError as exc:
            page = self.templates.message(
                title_of(exc), Shown.of(exc).text, code=exc.status, **chrome
            )
            return self.access.send(visit, page)
        decision = item.decision
        specs: dict[tuple[str, int], TaskSpec] = {}

        async def spec_of(task: str, release: int) -> TaskSpec:
            if (task, release) not in specs:
                stored = await run(visit.runtime.store.releases.get, task, release)
                specs[(task, release)] = stored.task_spec()
            return specs[(task, release)]

        clear = views.may_see_personal_data(principal, self.pii_roles)
        spec = await spec_of(decision.task, decision.release)
        rows = views.shown_input(decision, spec, clear)
        similar_rows = [
            {
                "decision": other,
                "rows": views.shown_input(other, await spec_of(other.task, other.release), clear),
            }
            for other in similar
        ]
        mine = item.claimed_by == principal.name and item.claim_live(utcnow())
        spot_check, feedback = await live_quality(visit, decision.id)
        page = self.templates.page(
            "item.html",
            code=error.status if error else 200,
            **chrome,
            error=Shown.of(error) if error else None,
            notice=notice,
            item=item,
            input_rows=rows,
            masked=any(row.masked for row in rows),
            alternatives=views.alternatives(decision),
            form_fields=views.output_form(spec, decision.output),
            similar=similar_rows,
            mine=mine,
            waiting=waiting_on_others(principal, item),
            verdict_text=verdict_text,
            spot_check=spot_check,
            feedback=feedback,
            next_href=f"{BASE}/next?" + urlencode({"task": decision.task, "skip": decision.id}),
        )
        return self.access.send(visit, page)

    async def act(self, request: Request, decision_id: str, action: str) -> Response:
        visit = await self.access.visit(request)
        if visit.principal is None:
            return self.access.send(visit, redirect("/sign-in"))
        form = await self.access.checked_form(visit)
        if isinstance(form, Response):
            return form
        if action not in ACTIONS or not _DECISION_ID.match(decision_id):
            page = self.templates.message(
                "Not found", "There is no such page.", code=404, **await self.chrome(visit)
            )
            return self.access.send(visit, page)
        principal = visit.principal
        reviews = visit.runtime.reviews
        reason = form.get("reason", "").strip()
        try:
            if action == "claim":
                await run(reviews.claim, principal, decision_id)
                return self.access.send(visit, redirect(f"/items/{decision_id}"))
            if action == "release":
                released = await run(reviews.release, principal, decision_id)
                query = urlencode({"task": released.decision.task, "released": decision_id})
                return self.access.send(visit, redirect(f"/queue?{query}"))
            if action == "approve":
                item = await run(reviews.approve, principal, decision_id, reason or None)
            elif action == "correct":
                current = await run(reviews.item, principal, decision_id)
                decision = current.decision
                stored = await run(
                    visit.runtime.store.releases.get, decision.task, decision.release
                )
                output = views.submitted_output(stored.task_spec(), form)
                item = await run(reviews.correct, principal, decision_id, output, reason)
            else:
                item = await run(reviews.reject, principal, decision_id, reason)
        except LockgateError as exc:
            return await self.item_page(visit, decision_id, error=exc)
        decision = item.decision
        if decision.status == "pending_review":
            # An approval that still needs another reviewer: back to the item, which says so.
            return self.access.send(visit, redirect(f"/items/{decision_id}?recorded=1"))
        query = urlencode({"task": decision.task, "done": decision.status, "id": decision.id})
        return self.access.send(visit, redirect(f"/queue?{query}"))

    async def approve_selected(self, request: Request) -> Response:
        """Approve the ticked items of the queue, each claimed and approved on its own (so
        every rule holds per item); an item that needs two reviewers is left alone."""
        visit = await self.access.visit(request)
        if visit.principal is None:
            return self.access.send(visit, redirect("/sign-in"))
        form = await self.access.checked_form(visit)
        if isinstance(form, Response):
            return form
        principal = visit.principal
        reviews = visit.runtime.reviews
        chosen = [k.removeprefix(SELECT_PREFIX) for k in form if k.startswith(SELECT_PREFIX)]
        approved = left = 0
        for decision_id in [d for d in chosen if _DECISION_ID.match(d)][:BULK_LIMIT]:
            try:
                item = await run(reviews.item, principal, decision_id)
                if item.approvals_needed > 1 or waiting_on_others(principal, item):
                    left += 1  # never across the two-person rule
                    continue
                await run(reviews.claim, principal, decision_id)
                await run(reviews.approve, principal, decision_id, BULK_REASON)
                approved += 1
            except LockgateError:
                left += 1
        query = urlencode({"task": form.get("task", ""), "approved": approved, "left": left})
        return self.access.send(visit, redirect(f"/queue?{query}"))

    async def suggest_report(self, request: Request, task: str) -> Response:
        return await self.report_page(request, task, "report.html", reports.suggest)

    async def shadow_report(self, request: Request, task: str) -> Response:
        return await self.report_page(request, task, "shadow.html", reports.shadow)

    async def report_page(
        self, request: Request, task: str, template: str, build: Callable[..., Any]
    ) -> Response:
        visit = await self.access.visit(request)
        if visit.principal is None:
            return self.access.send(visit, redirect("/sign-in"))
        chrome = await self.chrome(visit)
        try:
            if not _TASK.match(task):
                raise NotFound("there is no task with that name")
            report = await run(build, visit.runtime, visit.principal, task)
        except LockgateError as exc:
            page = self.templates.message(
                title_of(exc), Shown.of(exc).text, code=exc.status, **chrome
            )
            return self.access.send(visit, page)
        nav = f"{template.removesuffix('.html')}:{task}"
        spec = (await self.tasks(visit)).get(task)
        page = self.templates.page(
            template,
            **chrome,
            nav=nav,
            task=task,
            report=report,
            reports=reports,
            mode=spec.policy.mode if spec is not None else None,
        )
        return self.access.send(visit, page)


def title_of(exc: LockgateError) -> str:
    return Shown.of(exc).title


def verdict_text(verdict: Verdict) -> str:
    """One line for a past verdict: who did what, when and why (never the input)."""
    done = {"approve": "approved", "correct": "corrected", "reject": "rejected"}[verdict.verdict]
    line = f"{verdict.reviewer} {done} at {verdict.at:%Y-%m-%d %H:%M} UTC"
    if verdict.output is not None and verdict.verdict == "correct":
        line += " to " + ", ".join(f"{k}: {v}" for k, v in verdict.output.items())
    return f"{line} ({verdict.reason})" if verdict.reason else line
