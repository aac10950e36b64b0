"""Memory of one `lockgate serve` process over a long run of decisions.

Usage (from the repository root, with the venv active; `wrk` on PATH):

    python benchmarks/server_memory.py --decisions 200000

It makes the local-classifier project of benchmarks/batch_run.py (SQLite, WAL,
synchronous=FULL), starts one `lockgate serve`, warms it up with 10,000 decisions, then drives
it with `wrk` (concurrency 64, a fresh Idempotency-Key per request) in rounds of
`--round-seconds` until `--decisions` more decisions are stored, reading the server's VmRSS
after each round. It prints one line per round, then one JSON line with the series, the
growth from the first to the last sample and the largest sample above the first. Every
round is bounded; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from batch_run import make_project
from bench_common import machine
from gateway_compare import lua, wait_ready
from server_load import free_port, lockgate, rss_mib, stop

from lockgate.demo.tour import TASK

TEXT = "My card was charged twice for the same order, please refund one of the payments."


def stored(root: Path) -> int:
    connection = sqlite3.connect(f"file:{root / '.lockgate' / 'lockgate.db'}?mode=ro", uri=True)
    try:
        return int(connection.execute("SELECT count(*) FROM decisions").fetchone()[0])
    finally:
        connection.close()


def drive(url: str, script: Path, key: str, seconds: float) -> None:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    script.write_text(lua(json.dumps({"input": {"text": TEXT}}).encode(), headers))
    command = ["wrk", "-t1", "-c64", f"-d{seconds:g}s", "--timeout", "30s", "-s", str(script)]
    subprocess.run([*command, url], capture_output=True, timeout=seconds + 60, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=200_000)
    parser.add_argument("--warmup", type=int, default=10_000)
    parser.add_argument("--round-seconds", type=float, default=20.0)
    parser.add_argument("--max-minutes", type=float, default=60.0, help="cap on the whole run")
    options = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="server-memory-") as tmp:
        root = make_project(Path(tmp) / "c", 10, None)
        key = lockgate(root, "keys", "create", "--name", "bench", "--role", "submitter")
        key = key.strip().splitlines()[-1]
        port = free_port()
        log = (Path(tmp) / "serve.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "lockgate", "serve", "--project", str(root),
             "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/v1/tasks/{TASK}/decisions"
        script = Path(tmp) / f"{uuid.uuid4().hex}.lua"
        samples: list[dict[str, float]] = []
        try:
            wait_ready(f"{base}/readyz", server, Path(tmp) / "serve.log")
            while stored(root) < options.warmup:
                drive(url, script, key, 5)
            first = stored(root)
            samples.append({"decisions": 0, "rss_mib": rss_mib(server.pid)})
            print(f"after warm-up ({first:,} decisions): {samples[0]['rss_mib']:.1f} MiB")
            while stored(root) - first < options.decisions:
                if time.monotonic() - started > options.max_minutes * 60:
                    print("stopped at --max-minutes", file=sys.stderr)
                    break
                drive(url, script, key, options.round_seconds)
                done = stored(root) - first
                samples.append({"decisions": done, "rss_mib": rss_mib(server.pid)})
                print(f"{done:>9,} decisions: {samples[-1]['rss_mib']:.1f} MiB", flush=True)
        finally:
            stop(server)
            log.close()
    base_rss = samples[0]["rss_mib"]
    print(
        json.dumps(
            {
                "command": " ".join(["python", *sys.argv]),
                "machine": machine(),
                "decisions_after_warmup": samples[-1]["decisions"],
                "rss_first_mib": base_rss,
                "rss_last_mib": samples[-1]["rss_mib"],
                "growth_mib": round(samples[-1]["rss_mib"] - base_rss, 1),
                "largest_above_first_mib": round(max(s["rss_mib"] for s in samples) - base_rss, 1),
                "samples": samples,
            }
        )
    )


if __name__ == "__main__":
    main()
