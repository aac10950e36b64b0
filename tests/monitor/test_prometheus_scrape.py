"""A real Prometheus server scrapes `Metrics.render()` and answers a query about a counter.

Needs Debian's `prometheus` package (`/usr/bin/prometheus`); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lockgate.monitor.metrics import Metrics
from tests.monitor.kit import TASK, deterministic_model, observed_kit

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
DEADLINE_S = 60.0

pytestmark = pytest.mark.skipif(
    not Path(PROMETHEUS).exists(),
    reason="Prometheus is not installed (Debian package `prometheus`: apt-get install prometheus)",
)


def metrics_server(metrics: Metrics) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, content_type = metrics.render()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def exposed(tmp_path: Path) -> Iterator[tuple[Metrics, int]]:
    with observed_kit(f"sqlite:///{tmp_path}/lockgate.db", tmp_path, [deterministic_model()]) as o:
        o.kit.decide_many(["first ticket", "second ticket", "third ticket"])
        server = metrics_server(o.observer.metrics)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield o.observer.metrics, server.server_address[1]
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


@pytest.fixture
def prometheus(tmp_path: Path, exposed: tuple[Metrics, int]) -> Iterator[str]:
    _, target_port = exposed
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: lockgate\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
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
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def test_prometheus_scrapes_the_decision_counter(prometheus: str, tmp_path: Path) -> None:
    promql = f'lockgate_decisions_total{{task="{TASK}",route="auto",status="decided"}}'
    deadline = time.monotonic() + DEADLINE_S
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            result = query(prometheus, promql)
        except OSError:
            result = []  # not listening yet
        if result:
            break
        time.sleep(0.25)
    log = (tmp_path / "prometheus.log").read_text()

    assert result, f"no sample within {DEADLINE_S:g} s; Prometheus said:\n{log[-2000:]}"
    (series,) = result
    assert series["metric"]["job"] == "lockgate"
    assert series["metric"]["release"] == "1"
    assert float(series["value"][1]) == 3
