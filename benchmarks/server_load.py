"""Load on `lockgate serve`: added latency, sustained decisions/s, and memory over a long run.

Usage (from the repository root, with the venv active):

    python benchmarks/server_load.py --latency-requests 2000 --repeats 3 \
        --load-requests 5000 --memory-decisions 100000

It makes a fresh project (SQLite default, WAL, synchronous=FULL) whose task calls an
OpenAI-compatible model over HTTP, starts a fast local upstream
(`python -m lockgate.testing.fault_server`) and one `lockgate serve` process as subprocesses,
creates a submitter key with the CLI, and drives the server with an aiohttp client on loopback:

1. concurrency 1: N sequential chat completions sent straight to the upstream (the body the
   provider sends) and N sequential `POST /v1/tasks/{task}/decisions`, repeated; p50/p99;
2. concurrency 16 and 64: a fixed number of decisions each; decisions/s, p50/p99, non-2xx
   counted as errors, and every 2xx decision checked in the SQLite file afterwards;
3. memory: the server's VmRSS sampled every 10,000 decisions up to the total asked for.

Every loop is bounded in count and in time. Everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from lockgate.decide.task import load_task
from lockgate.providers.openai import system_message

TASK = "bench"
TASK_TEXT = """\
name: bench
input:
  text: {type: string, max_length: 4000}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - {provider: openai, model: bench-model}
policy:
  auto_min_confidence: 0.0
"""
TEXT = "My card was charged twice for the same order, please refund one of the payments."
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lockgate(root: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "lockgate", *args, "--project", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


def make_project(root: Path) -> str:
    """A project with one live release of the task; returns a submitter key."""
    (root / "tasks").mkdir(parents=True)
    (root / "tasks" / f"{TASK}.yaml").write_text(TASK_TEXT)
    lockgate(root, "release", "create", TASK)
    lockgate(root, "release", "promote", f"{TASK}@1")
    out = lockgate(root, "keys", "create", "--name", "bench", "--role", "submitter")
    return out.strip().splitlines()[-1]


def upstream_body(root: Path) -> dict[str, Any]:
    """The chat completion request the openai provider sends for one decision."""
    task = load_task(root / "tasks" / f"{TASK}.yaml")
    return {
        "model": "bench-model",
        "messages": [
            {"role": "system", "content": system_message(task)},
            {"role": "user", "content": json.dumps({"text": TEXT}, separators=(",", ":"))},
        ],
        "temperature": 0,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": task.output_json_schema(), "strict": True},
        },
    }


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50_ms": round(pick(0.50) * 1000, 3), "p99_ms": round(pick(0.99) * 1000, 3)}


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str, key: str) -> None:
        self.session = session
        self.url = f"{base}/v1/tasks/{TASK}/decisions"
        self.headers = {"Authorization": f"Bearer {key}"}
        self.body = json.dumps({"input": {"text": TEXT}}).encode()
        self.total = 0
        self.ok_keys: list[str] = []
        self.errors: dict[str, int] = {}

    async def decide(self) -> float:
        key = uuid.uuid4().hex
        headers = {**self.headers, "Idempotency-Key": key, "Content-Type": "application/json"}
        started = time.perf_counter()
        try:
            async with self.session.post(self.url, data=self.body, headers=headers) as response:
                await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            status = type(exc).__name__
        elapsed = time.perf_counter() - started
        self.total += 1
        if status in (200, 201):
            self.ok_keys.append(key)
        else:
            self.errors[str(status)] = self.errors.get(str(status), 0) + 1
        return elapsed

    async def run(self, count: int, concurrency: int, deadline_s: float) -> dict[str, Any]:
        """`count` decisions with `concurrency` in flight; stops early at the deadline."""
        latencies: list[float] = []
        errors_before = sum(self.errors.values())
        stop_at = time.perf_counter() + deadline_s
        remaining = count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0 and time.perf_counter() < stop_at:
                remaining -= 1
                latencies.append(await self.decide())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        return {
            "concurrency": concurrency,
            "requests": len(latencies),
            "errors": sum(self.errors.values()) - errors_before,
            "seconds": round(elapsed, 2),
            "decisions_per_s": round(len(latencies) / elapsed, 1),
            **percentiles(latencies),
        }


async def direct_latency(session: aiohttp.ClientSession, url: str, body: bytes, n: int) -> dict:
    samples = []
    headers = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}
    for _ in range(n):
        started = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            assert response.status == 200, response.status
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


async def wait_http(session: aiohttp.ClientSession, url: str, method: str = "GET") -> None:
    stop_at = time.perf_counter() + START_TIMEOUT_S
    while time.perf_counter() < stop_at:
        try:
            async with session.request(method, url) as response:
                if response.status < 500:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def stored_keys(root: Path) -> set[str]:
    db = root / ".lockgate" / "lockgate.db"
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT idempotency_key FROM decisions WHERE task = ?", (TASK,)
        ).fetchall()
    finally:
        connection.close()
    return {row[0] for row in rows}


async def bench(root: Path, key: str, server: subprocess.Popen[bytes], ports: dict, options):
    report: dict[str, Any] = {}
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=128)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        base = f"http://127.0.0.1:{ports['server']}"
        upstream = f"http://127.0.0.1:{ports['upstream']}/v1/chat/completions"
        await wait_http(session, f"{base}/healthz")
        await wait_http(session, f"{base}/readyz")
        client = Client(session, base, key)
        report["rss_mib_at_start"] = round(rss_mib(server.pid), 1)
        body = json.dumps(upstream_body(root)).encode()

        # Warm up both paths (connections, imports, caches) before measuring.
        await direct_latency(session, upstream, body, 200)
        await client.run(200, 1, 60)

        # 1. Added latency at concurrency 1.
        runs = []
        for _ in range(options.repeats):
            direct = await direct_latency(session, upstream, body, options.latency_requests)
            served = await client.run(options.latency_requests, 1, options.phase_seconds)
            runs.append({"direct": direct, "decision": served})
            print("latency", json.dumps(runs[-1]), file=sys.stderr)
        med = lambda side, q: statistics.median(r[side][q] for r in runs)  # noqa: E731
        report["latency_c1"] = {
            "runs": runs,
            "median_direct_p50_ms": med("direct", "p50_ms"),
            "median_direct_p99_ms": med("direct", "p99_ms"),
            "median_decision_p50_ms": med("decision", "p50_ms"),
            "median_decision_p99_ms": med("decision", "p99_ms"),
            "added_p50_ms": round(med("decision", "p50_ms") - med("direct", "p50_ms"), 3),
            "added_p99_ms": round(med("decision", "p99_ms") - med("direct", "p99_ms"), 3),
        }

        # 2. Sustained throughput at concurrency 16 and 64.
        report["throughput"] = []
        for concurrency in options.concurrency:
            result = await client.run(options.load_requests, concurrency, options.phase_seconds)
            print("load", json.dumps(result), file=sys.stderr)
            report["throughput"].append(result)
        stored = stored_keys(root)
        missing = [k for k in client.ok_keys if k not in stored]
        report["durability_check"] = {
            "ok_responses": len(client.ok_keys),
            "missing_from_database": len(missing),
        }

        # 3. Memory over a long run, sampled every 10,000 decisions served so far.
        samples = [{"decisions": client.total, "rss_mib": round(rss_mib(server.pid), 1)}]
        started = time.perf_counter()
        target = options.memory_decisions
        while client.total < target and time.perf_counter() - started < options.memory_seconds:
            step = min(10_000 - client.total % 10_000, target - client.total)
            left = options.memory_seconds - (time.perf_counter() - started)
            await client.run(step, options.memory_concurrency, left)
            samples.append({"decisions": client.total, "rss_mib": round(rss_mib(server.pid), 1)})
            print("memory", json.dumps(samples[-1]), file=sys.stderr)
        elapsed = time.perf_counter() - started
        stored = stored_keys(root)
        report["memory"] = {
            "concurrency": options.memory_concurrency,
            "seconds": round(elapsed, 1),
            "samples": samples,
            "decisions_served": client.total,
            "ok_responses": len(client.ok_keys),
            "errors": dict(client.errors),
            "missing_from_database": sum(1 for k in client.ok_keys if k not in stored),
            "decisions_in_database": len(stored),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load-requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--phase-seconds", type=float, default=300, help="cap on each phase")
    parser.add_argument("--memory-decisions", type=int, default=100_000)
    parser.add_argument("--memory-concurrency", type=int, default=16)
    parser.add_argument("--memory-seconds", type=float, default=900, help="cap on part 3")
    options = parser.parse_args()
    report: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared by load generator, "
        f"upstream and server), Python {platform.python_version()}",
    }
    ports = {"upstream": free_port(), "server": free_port()}
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "p"
        try:
            key = make_project(root)
            env = {
                **os.environ,
                "OPENAI_BASE_URL": f"http://127.0.0.1:{ports['upstream']}/v1",
                "OPENAI_API_KEY": "sk-bench",
            }
            python = [sys.executable, "-m"]
            listen = ["--host", "127.0.0.1", "--port", str(ports["server"])]
            processes.append(
                subprocess.Popen(
                    [*python, "lockgate.testing.fault_server", "--port", str(ports["upstream"])],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            server = subprocess.Popen(
                [*python, "lockgate", "serve", "--project", str(root), *listen],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            processes.append(server)
            report.update(asyncio.run(bench(root, key, server, ports, options)))
        finally:
            for process in reversed(processes):
                stop(process)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
