"""`lockgate alerts export --format prometheus` writes rules that `promtool check rules`
accepts, and a real Prometheus scraping a real `lockgate serve` evaluates one to firing.

Needs Debian's `prometheus` package (prometheus and promtool); skipped with the reason
otherwise (scripts/test-tools.sh installs it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from lockgate.testing.mailbox import free_port
from tests.cli.kit import lockgate, make_project
from tests.server.test_serve import start_server, submitter_key, wait_until_healthy

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

pytestmark = pytest.mark.skipif(
    not (Path(PROMETHEUS).exists() and Path(PROMTOOL).exists()),
    reason="Prometheus is not installed (Debian package `prometheus`: scripts/test-tools.sh)",
)

FAILING_TASK = """\
name: routing
input:
  text: {type: string, max_length: 4000}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - {provider: openai, model: gone, timeout_s: 2, retries: 0}
alerts:
  - {condition: failure_rate, threshold: 0.5, window: 1m, severity: critical}
  - {condition: latency_p95_ms, threshold: 900, window: 5m}
"""


@pytest.fixture
def project(tmp_path: Path, sqlite_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The model's endpoint is a closed port: every decision fails.
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    root = make_project(tmp_path / "project", FAILING_TASK)
    (root / "lockgate.yaml").write_text("metrics_public: true\n")
    lockgate("release", "create", "routing", cwd=root, database=sqlite_database_url)
    lockgate("release", "promote", "routing@1", cwd=root, database=sqlite_database_url)
    return root


def export(project: Path, database_url: str) -> Path:
    out = project / "lockgate-rules.yml"
    lockgate("alerts", "export", "--format", "prometheus", "--out", str(out),
             cwd=project, database=database_url)  # fmt: skip
    return out


def test_the_exported_rules_pass_promtool(project: Path, sqlite_database_url: str) -> None:
    rules = export(project, sqlite_database_url)
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    exported = yaml.safe_load(rules.read_text())["groups"][0]["rules"]
    by_rule = {r["labels"]["rule"]: r for r in exported}
    assert "> 0.5" in by_rule["failure_rate"]["expr"]  # the task file's threshold
    assert "> 900" in by_rule["latency_p95_ms"]["expr"]
    assert by_rule["failure_rate"]["labels"] == {
        "severity": "critical", "task": "routing", "rule": "failure_rate",
    }  # fmt: skip
    # Conditions no metric measures are named, not silently dropped.
    assert "review_backlog" in rules.read_text().splitlines()[1]


@pytest.fixture
def prometheus(tmp_path: Path, project: Path, sqlite_database_url: str) -> Iterator[str]:
    """`lockgate serve` on a free port, and a Prometheus scraping it every second with the
    exported rules evaluated every second; the Prometheus base URL."""
    rules = export(project, sqlite_database_url)
    server, base = start_server(project, sqlite_database_url)
    process = None
    log = (tmp_path / "prometheus.log").open("w")
    try:
        wait_until_healthy(server, base)
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{rules}']\n"
            "scrape_configs:\n"
            "  - job_name: lockgate\n"
            f"    static_configs: [{{targets: ['{base.removeprefix('http://')}']}}]\n"
        )
        port = free_port()
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        yield f"http://127.0.0.1:{port}|{base}"
    finally:
        for child in (process, server):
            if child is not None and child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        if server.stdout is not None:
            server.stdout.close()
        if server.stderr is not None:
            server.stderr.close()
        log.close()


def alerts_of(prometheus: str) -> list[dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{prometheus}/api/v1/alerts", timeout=5) as response:
            answer = json.load(response)
    except OSError:
        return []  # not listening yet
    found: list[dict[str, Any]] = answer["data"]["alerts"]
    return found


def test_prometheus_evaluates_the_failure_rate_rule_to_firing(
    prometheus: str, project: Path, sqlite_database_url: str, tmp_path: Path
) -> None:
    prom, base = prometheus.split("|")
    secret = submitter_key(project, sqlite_database_url)
    headers = {"Authorization": f"Bearer {secret}"}
    deadline = time.monotonic() + 60
    firing: list[dict[str, Any]] = []
    n = 0
    # Failing decisions keep coming (a rate needs two scrapes that saw the counter grow).
    while not firing:
        assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()[-2000:]
        for _ in range(3):
            n += 1
            response = httpx.post(
                f"{base}/v1/tasks/routing/decisions",
                json={"input": {"text": f"ticket {n}"}},
                headers={**headers, "Idempotency-Key": f"p-{n}"},
                timeout=10,
            )
            assert response.status_code < 500 or response.status_code == 502, response.text
        firing = [
            a
            for a in alerts_of(prom)
            if a["labels"].get("alertname") == "LockgateFailureRate" and a["state"] == "firing"
        ]
        time.sleep(0.3)
    (alert,) = firing
    assert alert["labels"]["task"] == "routing" and alert["labels"]["severity"] == "critical"
    assert float(alert["value"]) > 0.5
