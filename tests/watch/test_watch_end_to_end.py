"""Watching a task run, end to end (issue 13, "what must hold"), on the project `lockgate init`
makes, under a real `lockgate serve`:

- a stream from the demo generator raises no drift; the same stream with a new topic in a
  fifth of the tickets raises the drift alert, once, on a signed webhook and by e-mail;
- spot-check verdicts move live accuracy;
- `lockgate retrain` builds a release that passes the gate and runs in shadow;
- the dashboard shows all of it (Chromium).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from lockgate.testing.receiver import Receiver
from lockgate.testing.shifts import stream
from lockgate.testing.smtp import SmtpServer
from tests.cli.kit import lockgate
from tests.server.test_group_commit import LoggedServer
from tests.ui.kit import browser, chromium, need_chromium, screenshot
from tests.watch.demo_kit import SETUP, sealed_gate

pytestmark = pytest.mark.slow

SECRET = "e2e-alert-secret"
ALERTS = """\
alerts:
  - {condition: drift, window: 1h, severity: warning, channels: [ops, oncall], repeat: 1h}
"""


def settings(receiver: Receiver, smtp: SmtpServer) -> str:
    return (
        "\nhistory_rollup_seconds: 0.3\n"
        "alert_interval_seconds: 0.5\n"
        "spot_check_interval_seconds: 0.5\n"
        "drift_window_decisions: 400\n"
        "alert_channels:\n"
        f"  ops: {{type: webhook, url: '{receiver.url}', secret_env: ALERT_HOOK}}\n"
        f"  oncall: {{type: email, host: {smtp.host}, port: {smtp.port}, "
        "from: lockgate@example.com, to: [lead@example.com]}\n"
    )


def wait_for(what: str, ready: Callable[[], Any], server: LoggedServer, s: float) -> Any:
    deadline = time.monotonic() + s
    while not (found := ready()):
        assert server.process.poll() is None, f"serve stopped while waiting for {what}"
        assert time.monotonic() < deadline, f"no {what} within {s:.0f} s"
        time.sleep(0.2)
    return found


@pytest.mark.timeout(900)
def test_drift_alerts_spot_checks_retrain_and_the_dashboard(
    tmp_path: Path, sqlite_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_chromium()
    database = sqlite_database_url
    root = tmp_path / "demo"
    root.mkdir()
    run = lambda *args, **kw: lockgate(*args, cwd=root, database=database, **kw)  # noqa: E731
    run("init", ".")
    task_file = root / "tasks" / "routing.yaml"
    task_file.write_text(task_file.read_text() + SETUP + ALERTS)
    sealed_gate(root, database)
    run("train", "routing", "--data", "data/routing-train.csv")
    assert "reference profile of routing@1" in run("release", "create", "routing").stderr
    run("eval", "routing", "--release", "1")
    run("release", "promote", "routing@1")
    secrets = {
        role: run("keys", "create", "--name", role, "--role", role).stdout.split()[-1]
        for role in ("submitter", "reviewer", "viewer")
    }

    monkeypatch.setenv("ALERT_HOOK", SECRET)
    receiver = Receiver(secret=SECRET, path="/hooks/alerts").start()
    smtp = SmtpServer().start()
    (root / "lockgate.yaml").write_text(
        (root / "lockgate.yaml").read_text() + settings(receiver, smtp)
    )
    server = LoggedServer(root, database, tmp_path / "serve.log")
    client = httpx.Client(timeout=30)  # closed below: a leaked one fails a later test
    try:
        client.base_url = httpx.URL(server.wait_until_serving())

        def submit(texts: list[str], prefix: str) -> None:
            def one(pair: tuple[int, str]) -> None:
                n, text = pair
                answer = client.post(
                    "/v1/tasks/routing/decisions",
                    json={"input": {"text": text}},
                    headers={
                        "Authorization": f"Bearer {secrets['submitter']}",
                        "Idempotency-Key": f"{prefix}-{n}",
                    },
                )
                assert answer.status_code == 201, answer.text

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(one, enumerate(texts)))

        # The same distribution as the training data: no drift.
        submit(stream(200, seed=71), "same")
        same = json.loads(run("drift", "routing", "--json").stdout)
        assert same["verdict"] != "drift", same
        time.sleep(2)  # several evaluation rounds
        assert not receiver.applied, "no drift alert on the training distribution"

        # A new topic in a fifth of the window's tickets (two in five of these): drift, once.
        submit(stream(200, seed=72, shift="topic", share=0.4), "shifted")
        drifted = json.loads(run("drift", "routing", "--json").stdout)
        assert drifted["verdict"] == "drift", drifted
        wait_for("drift alert", lambda: receiver.applied, server, 30)
        (notice,) = receiver.applied.values()
        assert (notice["kind"], notice["rule"], notice["task"]) == ("firing", "drift", "routing")
        (mail,) = smtp.wait_for(1)
        assert str(mail["Subject"]).startswith("Lockgate alert [FIRING] routing: drift")
        assert receiver.bad_signatures == 0

        # Spot checks (every automated decision is one here): verdicts move live accuracy.
        reviewer = {"Authorization": f"Bearer {secrets['reviewer']}"}
        open_checks = wait_for(
            "spot checks",
            lambda: client.get("/v1/spot-checks?task=routing&limit=60", headers=reviewer).json()[
                "items"
            ],
            server,
            30,
        )
        before = client.get("/v1/tasks/routing/accuracy", headers=reviewer).json()
        assert before["releases"] == []
        wrong = open_checks[:6]
        for item in open_checks:
            verdict = {"verdict": "approve"}
            if item in wrong:
                other = "fraud" if item["output"]["queue"] != "fraud" else "cards"
                verdict = {"verdict": "correct", "output": {"queue": other}, "reason": "seen"}
            done = client.post(
                f"/v1/spot-checks/{item['id']}/verdict", json=verdict, headers=reviewer
            )
            assert done.status_code == 200, done.text
        after = client.get("/v1/tasks/routing/accuracy", headers=reviewer).json()
        (live,) = after["releases"]
        judged = len(open_checks)
        assert (live["n"], live["agree"]) == (judged, judged - len(wrong))
        assert live["low"] < live["accuracy"] < live["high"]
    finally:
        client.close()
        server.stop()
        receiver.stop()
        smtp.stop()
    stderr = server.output()
    assert "Traceback" not in stderr and SECRET not in stderr

    # Retrain on the training data and every label: a release that passes the gate, in shadow.
    figures = json.loads(run("retrain", "routing", "--data", "data/routing-train.csv",
                             "--json").stdout)  # fmt: skip
    assert figures["data"]["labels"]["spot_check"] == judged
    assert figures["eval"]["passed"] is True and figures["shadow"] is True
    stages = {r["ref"]: r["stage"] for r in json.loads(run("release", "list", "routing",
                                                           "--json").stdout)}  # fmt: skip
    assert stages == {"routing@1": "live", "routing@2": "shadow"}

    # The dashboard, as a viewer reads it.
    server = LoggedServer(root, database, tmp_path / "serve.log")
    try:
        base = server.wait_until_serving()
        with chromium() as launched, browser(launched) as page:
            page.set_viewport_size({"width": 1280, "height": 1600})
            page.goto(f"{base}/ui/sign-in")
            page.fill("#api_key", secrets["viewer"])
            with page.expect_navigation():
                page.click("button[type=submit]")
            page.goto(f"{base}/ui/tasks/routing?range=1h")
            text = page.inner_text("body")
            release_row = page.locator("tr", has_text="routing@2").first.inner_text()
            screenshot(page, "watch-end-to-end-dashboard")
    finally:
        server.stop()
    # Live accuracy with what it rests on, the firing drift rule, the drift panel's verdict,
    # and the retrained release in shadow, marked on the time axis.
    assert f"{judged} judged ({judged} spot checks" in text
    assert "drift\twarning\t2\tabove 1.5" in text, text
    assert "shadow started routing@2" in text
    assert "\tshadow\t" in release_row, release_row
