"""The dashboard (`/ui/tasks/{task}`) in Chromium: real decisions through the API, rolled up by
the real roll-up, a promotion marked on the time axis, an alert fired by the real evaluator,
drift against a stored reference profile, and the retrain button for operators only."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from lockgate.watch.history import counts_of
from lockgate.watch.profile import build_profile
from tests.ui.kit import REVIEW_TASK, Site, browser, need_chromium, screenshot, serving, sign_in

#: The review task with an alert rule that fires once two items wait for review.
DASHBOARD_TASK = (
    REVIEW_TASK
    + """\
alerts:
  - {condition: review_backlog, threshold: 1, window: 1m, severity: critical}
"""
)


def roll_up(site: Site) -> None:
    """What `lockgate serve`'s roll-up loop does in one round."""
    history = site.runtime.store.history
    summarize = functools.partial(counts_of, label_fields={"routing": ("queue",)})
    while history.roll_up(summarize, 2000):
        pass
    history.sample_backlog()


def evaluate_alerts(site: Site) -> None:
    """One round of the real alert evaluator (in a thread: Playwright holds this one's loop)."""
    from lockgate.server.history import evaluator

    failures: list[BaseException] = []

    def one_round() -> None:
        try:
            asyncio.run(evaluator(site.runtime, "test").round())
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    thread = threading.Thread(target=one_round)
    thread.start()
    thread.join(30)
    assert not failures, failures


def submit_all(site: Site, inputs: list[tuple[str, str]]) -> None:
    """Decide each text through the HTTP API, eight requests at a time."""
    site.key("app", "submitter")  # made once, before the threads share it
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda pair: site.submit(*pair), inputs))


def reference_profile(site: Site, release: int) -> None:
    """A reference profile of short card questions, as `lockgate release create` stores one."""
    spec = site.runtime.task("routing")
    inputs = [{"text": f"where is my card number {n}"} for n in range(200)]
    outputs = [{"queue": "cards"} for _ in inputs]
    profile = build_profile(
        spec, inputs, outputs, [0.9] * len(inputs), routes=["auto"] * len(inputs)
    )
    from lockgate.decide.decision import utcnow

    site.runtime.store.quality.save_profile("routing", release, profile, utcnow())


def stored_routes(site: Site) -> dict[str, int]:
    """Decisions per route, counted straight from the decisions table."""
    from sqlalchemy import func, select

    from lockgate.store.tables import decisions

    with site.runtime.store.engine.connect() as conn:
        rows = conn.execute(select(decisions.c.route, func.count()).group_by(decisions.c.route))
        return {str(route): int(n) for route, n in rows}


def figure(page: Any, key: str) -> str:
    text: str = page.inner_text(f"#value-{key}")
    return text


@pytest.fixture
def dashboard_site(tmp_path: Path) -> Any:
    need_chromium()
    # The server's own alert loop waits an hour before its first round, so the test's round
    # (`evaluate_alerts`) takes the `alerts` lease.
    with serving(
        tmp_path,
        f"sqlite:///{tmp_path}/lockgate.db",
        task=DASHBOARD_TASK,
        alert_interval_seconds=3600.0,
    ) as site:
        yield site


def test_the_overview_shows_rolled_up_figures_a_promotion_alerts_and_drift(
    dashboard_site: Site, chromium_browser: Any
) -> None:
    site = dashboard_site
    reference_profile(site, 1)
    # Release 1: 60 decisions (4 of them fraud: for review), then release 2 promoted (a
    # release change on the time axis) and 60 more, long texts in another language (drift).
    submit_all(site, [(f"my card was stolen, case {n}", f"r-{n}") for n in range(4)])
    submit_all(site, [(f"where is my card number {n}", f"a-{n}") for n in range(56)])
    tasks_file = site.runtime.settings.tasks_dir / "routing.yaml"
    tasks_file.write_text(tasks_file.read_text().replace("confidence: 0.9", "confidence: 0.95"))
    second, _ = site.runtime.create_release("routing", "test")
    site.runtime.store.releases.promote("routing", second.number, "alice-operator")
    site.runtime.forget_serving("routing")
    reference_profile(site, second.number)
    french = "la carte ne fonctionne plus du tout depuis hier soir " * 6
    submit_all(site, [(f"{french} numero {n}", f"b-{n}") for n in range(60)])
    roll_up(site)
    evaluate_alerts(site)

    page: Any
    with browser(chromium_browser) as page:
        sign_in(page, site, site.key("vera", "viewer"))
        with page.expect_navigation():
            page.click("nav >> text=Overview")
        assert page.url.endswith("/ui/tasks/routing")
        screenshot(page, "20-dashboard-overview-viewer")
        # The figures equal a direct count of the stored decisions.
        routes = stored_routes(site)
        assert sum(routes.values()) == 120
        assert "120 decisions in the last 24h" in page.inner_text("#figure-decisions")
        assert figure(page, "automation") == f"{routes['auto'] / 120 * 100:.1f}%"
        assert figure(page, "failures") == "0.0%"
        assert figure(page, "backlog") == str(routes["review"])
        assert "oldest waiting" in page.inner_text("#figure-backlog")
        assert figure(page, "latency") != "\u2013"
        # The numbers behind each chart are in a table, readable without script.
        rows = page.eval_on_selector_all("#table-automation tbody tr", "rows => rows.length")
        assert rows >= 1
        assert page.get_attribute("#chart-decisions", "role") == "img"
        # The promotion is marked on the charts and listed.
        marks = page.eval_on_selector_all(
            "#chart-decisions .mark title", "titles => titles.map(t => t.textContent)"
        )
        assert len(marks) == 2  # routing@1 made live at the start, then routing@2
        assert "promoted routing@2 by alice-operator" in marks[1]
        assert "promoted routing@2 by alice-operator" in page.inner_text("#release-changes")
        # The firing alert, and drift of the French texts against the English profile.
        alerts = page.inner_text("#alerts")
        assert "review_backlog" in alerts and "critical" in alerts
        assert page.inner_text("#drift-verdict") == "drift"
        assert "input.text.length" in page.inner_text("#drift-signals")
        # The release table: both releases, the live one live now.
        table = page.inner_text("#release-table")
        assert "routing@2" in table and "routing@1" in table
        assert "live now" in page.inner_text("#release-2")
        assert page.inner_text("#release-1 td:nth-child(6)") == "60"
        assert page.inner_text("#release-2 td:nth-child(6)") == "60"
        # A viewer sees no retrain button.
        assert page.locator(".retrain-button").count() == 0

        # The range switch: plain links; the 1 h range shows the same decisions by minute.
        with page.expect_navigation():
            page.click("#range-1h")
        assert page.url.endswith("?range=1h")
        assert page.get_attribute("#range-1h", "aria-current") == "page"
        assert "120 decisions in the last 1h" in page.inner_text("#figure-decisions")
        screenshot(page, "21-dashboard-overview-1h")
        with page.expect_navigation():
            page.click("#range-30d")
        assert "120 decisions in the last 30d" in page.inner_text("#figure-decisions")


def test_an_operator_retrains_from_the_dashboard_and_sees_the_outcome(
    dashboard_site: Site, chromium_browser: Any
) -> None:
    site = dashboard_site
    site.submit("my card was stolen", "x-1")
    roll_up(site)
    page: Any
    with browser(chromium_browser) as page:
        sign_in(page, site, site.key("olga", "operator"))
        page.goto(f"{site.base}/ui/tasks/routing")
        button = page.locator("#drift .retrain-button")
        assert button.count() == 1
        with page.expect_navigation():
            button.click()
        assert "Retraining of routing started" in page.inner_text(".notice")
        # The request is audited with the operator's name at once.
        requested = site.runtime.store.audit.entries("routing", action="release.retrain_requested")
        assert [e.actor for e in requested] == ["olga"]
        # The child process ends (here without any label to train on) and its outcome shows.
        deadline = time.monotonic() + 120
        while True:
            page.goto(f"{site.base}/ui/tasks/routing")
            status = page.inner_text("#retrain-status")
            if "running" not in status:
                break
            assert time.monotonic() < deadline, "lockgate retrain did not end in 120 s"
            time.sleep(1)
        screenshot(page, "22-dashboard-retrain-outcome")
        assert "failed" in status and "nothing to train" in status
        failed = site.runtime.store.audit.entries("routing", action="release.retrain_failed")
        assert [e.actor for e in failed] == ["olga"]


def test_the_retrain_post_is_refused_for_a_viewer_and_without_the_form_token(
    dashboard_site: Site, chromium_browser: Any
) -> None:
    site = dashboard_site
    page: Any
    with browser(chromium_browser) as page:
        sign_in(page, site, site.key("vera", "viewer"))
        page.goto(f"{site.base}/ui/tasks/routing")
        token = page.get_attribute("form[action$='/sign-out'] input[name=csrf_token]", "value")
        # A viewer posting the form by hand (with a valid token) is refused.
        response = page.request.post(
            f"{site.base}/ui/tasks/routing/retrain",
            form={"csrf_token": token},
            headers={"Origin": site.base},
        )
        assert response.status == 403
        # An operator's post without the session's token changes nothing.
    with browser(chromium_browser) as page:
        sign_in(page, site, site.key("olga", "operator"))
        response = page.request.post(
            f"{site.base}/ui/tasks/routing/retrain",
            form={"csrf_token": "forged"},
            headers={"Origin": site.base},
        )
        assert response.status == 403
    assert site.runtime.store.audit.entries("routing", action="release.retrain_requested") == []
