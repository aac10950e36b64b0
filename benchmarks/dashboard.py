"""The dashboard's overview (`GET /ui/tasks/{task}`) over 1,000,000 stored decisions (issue 13,
part 5: "the overview renders in under 300 ms with 1,000,000 decisions in the database").

Usage (from the repository root, with the venv active):

    python benchmarks/dashboard.py --decisions 1000000 --days 30 --renders 30

Steps, each timed and printed:

1. A project on SQLite (the `routing` task on the deterministic provider), release 1 live with
   a reference profile (drift needs one).
2. `--decisions` decisions bulk-inserted into the decisions table (SQLAlchemy core, batches of
   20,000), spread evenly over the last `--days` days: 85% automated, 10% reviewed (the
   newest 300 of them still pending review), 3% rejected by the policy, 2% failed; release 2
   (the task file with a description, profiled) decides the last third and is promoted when
   they are stored (audited, so a release change is marked at the end of the range). A 2%
   spot check of the automated ones with verdicts (92% approve) gives live accuracy its
   figures; drift reads release 2's newest 1,000 decisions.
3. The real roll-up (`HistoryRepository.roll_up` with `watch.history.counts_of`, 5,000 a
   call: each decision into its minute, hour and day), the backlog sample, and the minutes
   older than 7 days dropped (their hours hold them), as `lockgate serve`'s roll-up loop does.
   With `--keep` and a database filled by an earlier run, that database is reused instead:
   opened (which migrates it, when it is behind the newest revision: timed), then topped up
   from its newest decision to now at its own rate (release 2) and rolled up, so every range
   ends with data as a live system's does.
4. The app (`create_app`) in process; a viewer signs in through the sign-in form; then
   `--renders` GETs of the overview per range (24h, the default, first; then 1h, 7d, 30d)
   over ASGI (httpx.ASGITransport). The first render of all computes the drift report (kept
   300 s after); it is reported on its own, and the medians and p95 are of the renders after
   it.
   Before them the set-up's write-ahead log is checkpointed (timed).
5. The same renders on an empty database (no decision at all) in the same run: the baseline.

Prints JSON. Nothing asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import random
import re
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from bench_common import machine
from sqlalchemy import func, select

from lockgate.decide.decision import utcnow
from lockgate.runtime import Runtime
from lockgate.server import create_app
from lockgate.settings import load_settings
from lockgate.store.database import aware
from lockgate.store.tables import decisions, spot_checks
from lockgate.watch.history import counts_of
from lockgate.watch.profile import build_profile

TASK = """\
name: routing
input:
  text: {type: string, max_length: 4000, pii: true}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - provider: deterministic
    confidence: 0.9
    answers:
      - {if_contains: "stolen", output: {queue: fraud}}
policy:
  auto_min_confidence: 0.8
  review_when:
    - {field: queue, equals: fraud}
"""
QUEUES = ("cards", "payments", "fraud", "other")
WORDS = ("card", "payment", "refund", "stolen", "blocked", "transfer", "account", "limit")
RANGES = ("24h", "1h", "7d", "30d")


def project(root: Path) -> Runtime:
    (root / "tasks").mkdir(parents=True)
    (root / "tasks" / "routing.yaml").write_text(TASK)
    settings = load_settings(root, database_url=f"sqlite:///{root}/lockgate.db", environ={})
    runtime = Runtime.open(settings)
    release, _ = runtime.create_release("routing", "bench")
    runtime.store.releases.promote("routing", release.number, "bench")
    runtime.store.quality.save_profile("routing", release.number, reference(runtime), utcnow())
    return runtime


def reference(runtime: Runtime) -> dict[str, Any]:
    """A reference profile for drift: 500 inputs of the kind the benchmark stores."""
    rng = random.Random(1)
    inputs = [{"text": " ".join(rng.choices(WORDS, k=12))} for _ in range(500)]
    return build_profile(
        runtime.task("routing"),
        inputs,
        [{"queue": rng.choice(QUEUES)} for _ in inputs],
        [round(rng.uniform(0.6, 1.0), 3) for _ in inputs],
        routes=["auto"] * len(inputs),
    )


def second_release(runtime: Runtime) -> bool:
    """Release 2, which decides the newest third of the decisions, made live with its
    reference profile (the task file gets a description, so it is a new release), unless it
    is live already; whether it was made now."""
    live = runtime.store.releases.live("routing")
    if live is not None and live.number >= 2:
        return False
    path = runtime.settings.tasks_dir / "routing.yaml"
    path.write_text(TASK.replace("name: routing\n", "name: routing\ndescription: release 2\n"))
    release, _ = runtime.create_release("routing", "bench")
    runtime.store.quality.save_profile("routing", release.number, reference(runtime), utcnow())
    runtime.store.releases.promote("routing", release.number, "bench")
    return True


def fill(
    runtime: Runtime,
    n: int,
    days: float,
    *,
    until: datetime | None = None,
    seed: int = 7,
    pending: int = 300,
    first_key: int = 0,
    release_2_from: float = 2 / 3,
) -> dict[str, Any]:
    """`n` decisions evenly over the `days` days before `until` (now), and their spot checks;
    the newest `pending` reviewed ones still wait; release 2 decides from `release_2_from` of
    them on. Timings."""
    rng = random.Random(seed)
    now = until or datetime.now(UTC)
    first = now - timedelta(days=days)
    span = (now - first).total_seconds()
    second_from = int(n * release_2_from)
    engine = runtime.store.engine
    started = time.perf_counter()
    checks: list[dict[str, Any]] = []
    pending_from = None
    batch: list[dict[str, Any]] = []
    review_seen = 0
    reviews_total = int(n * 0.10)
    for i in range(n):
        at = first + timedelta(seconds=span * (i + 0.5) / n)
        draw = rng.random()
        queue = rng.choice(QUEUES)
        if draw < 0.85:
            route, status, reason = "auto", "delivered", "confidence 0.93 >= 0.8"
        elif draw < 0.95:
            review_seen += 1
            waiting = review_seen > reviews_total - pending
            route, status, reason = (
                "review",
                "pending_review" if waiting else rng.choice(("approved", "corrected")),
                "queue equals fraud",
            )
            if waiting and pending_from is None:
                pending_from = at
        elif draw < 0.98:
            route, status, reason = "reject", "rejected", "policy: reject"
        else:
            route, status, reason = None, "failed", "every model failed: timeout"
        text = " ".join(rng.choices(WORDS, k=12))
        decision_id = f"{int(at.timestamp() * 1000):012x}{secrets.token_hex(7)}"
        key = first_key + i
        batch.append(
            {
                "id": decision_id,
                "task": "routing",
                "release": 1 if i < second_from else 2,
                "idempotency_key": f"k{key}",
                "input_hash": f"{key:064x}",
                "input": {"text": text},
                "redacted_input": {"text": "[redacted]"},
                "output": None if status == "failed" else {"queue": queue},
                "alternatives": None,
                "confidence": None if status == "failed" else round(rng.uniform(0.5, 1.0), 3),
                "route": route,
                "status": status,
                "reason": reason,
                "cost": 0.0004 if status != "failed" else 0.0,
                "latency_ms": rng.lognormvariate(4.0, 0.6),
                "metadata": {},
                "submitted_by": None,
                "created_at": at,
                "updated_at": at,
                "priority": 0,
            }
        )
        if route == "auto" and rng.random() < 0.02:
            verdict = "approve" if rng.random() < 0.92 else "correct"
            checks.append(
                {
                    "decision_id": decision_id,
                    "task": "routing",
                    "release": 1 if i < second_from else 2,
                    "decided_at": at,
                    "created_at": at + timedelta(minutes=5),
                    "verdict": verdict,
                    "output": None if verdict == "approve" else {"queue": "other"},
                    "reviewer": "bench",
                    "at": at + timedelta(minutes=30),
                }
            )
        if len(batch) == 20_000 or i == n - 1:
            with engine.begin() as conn:
                conn.execute(decisions.insert(), batch)
            batch = []
    inserted = time.perf_counter() - started
    started = time.perf_counter()
    with engine.begin() as conn:
        for index in range(0, len(checks), 20_000):
            conn.execute(spot_checks.insert(), checks[index : index + 20_000])
    checked = time.perf_counter() - started
    return {
        "decisions": n,
        "spot_checks": len(checks),
        "insert_s": round(inserted, 1),
        "spot_checks_insert_s": round(checked, 1),
    }


def top_up(runtime: Runtime) -> dict[str, Any] | None:
    """A database filled by an earlier run ends when that run ended: decisions (release 2, at
    the database's own rate) from its newest one to now, so that every range ends with data
    as a live system's does; rolled up like the rest. None when it is up to date."""
    with runtime.store.engine.connect() as conn:
        row = conn.execute(
            select(func.count(), func.min(decisions.c.created_at), func.max(decisions.c.created_at))
        ).one()
    count, oldest, newest = int(row[0]), aware(row[1]), aware(row[2])
    now = datetime.now(UTC)
    per_second = count / max((newest - oldest).total_seconds(), 1.0)
    n = int((now - newest).total_seconds() * per_second)
    if n < 1:
        return None
    added = fill(
        runtime,
        n,
        (now - newest).total_seconds() / 86400,
        until=now,
        seed=int(now.timestamp()),
        pending=0,
        first_key=count + int(now.timestamp()) * 1000,
        release_2_from=0.0,
    )
    return {**added, "from": newest.isoformat(), "rollup": roll_up(runtime)}


def roll_up(runtime: Runtime) -> dict[str, Any]:
    history = runtime.store.history
    summarize = functools.partial(counts_of, label_fields={"routing": ("queue",)})
    started = time.perf_counter()
    rounds = 0
    while history.roll_up(summarize, 5000):
        rounds += 1
    rolled = time.perf_counter() - started
    history.sample_backlog()
    started = time.perf_counter()
    dropped = 0
    while True:
        done = history.expire()
        dropped += done
        if not done:
            break
    expired = time.perf_counter() - started
    with runtime.store.engine.connect() as conn:
        cells = conn.exec_driver_sql("SELECT step, count(*) FROM history_cells GROUP BY step")
        by_step = {step: int(count) for step, count in cells}
    return {
        "rollup_s": round(rolled, 1),
        "rollup_calls": rounds,
        "expire_s": round(expired, 1),
        "cells_dropped": dropped,
        "cells": by_step,
    }


async def renders(runtime: Runtime, count: int, name: str, kept: bool) -> dict[str, Any]:
    """Sign in as a viewer, then time `count` overview renders per range. `kept`: as served
    (an overview is kept for the roll-up's interval, 10 s); else every render computes it
    (the runtime's roll-up interval read by the pages is set to 0 once the app's loops have
    started with the real one)."""
    _, secret = runtime.store.keys.create(
        f"{name}-{secrets.token_hex(3)}", "viewer", (), actor="bench"
    )
    # No compaction while timing (the loop `lockgate serve` runs would fold a slice a round).
    original = runtime.settings
    settings = original.with_changes(history_hours_after_days=36500.0)
    runtime.settings = settings
    app = create_app(settings, runtime=runtime)
    base = "http://dashboard.test"
    transport = httpx.ASGITransport(app=app)
    figures: dict[str, Any] = {}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=base) as client,
    ):
        form = await client.get("/ui/sign-in")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        signed = await client.post(
            "/ui/sign-in",
            data={"csrf_token": token.group(1), "api_key": secret},
            headers={"Origin": base},
        )
        assert signed.status_code == 303, signed.text[:300]
        if not kept:
            runtime.settings = settings.with_changes(history_rollup_seconds=0.0)
        first = True
        for rng in RANGES:
            times = []
            for _ in range(count + (1 if first else 0)):
                started = time.perf_counter()
                page = await client.get(f"/ui/tasks/routing?range={rng}")
                times.append((time.perf_counter() - started) * 1000)
                assert page.status_code == 200, page.text[:500]
            if first:
                figures["first_render_ms"] = round(times.pop(0), 1)
                first = False
            times.sort()
            figures[rng] = {
                "median_ms": round(statistics.median(times), 1),
                "p95_ms": round(times[max(0, round(0.95 * len(times)) - 1)], 1),
                "n": len(times),
            }
    runtime.settings = original
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--renders", type=int, default=30)
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep the filled project here; run again with the same folder to reuse it",
    )
    args = parser.parse_args()
    out: dict[str, Any] = {"machine": machine(), "started": utcnow().isoformat()}
    root = args.keep or Path(tempfile.mkdtemp(prefix="lockgate-dashboard-"))
    baseline = project(Path(tempfile.mkdtemp(prefix="lockgate-dashboard-empty-")))
    try:
        out["baseline_empty_database"] = {
            "computed": asyncio.run(renders(baseline, args.renders, "v1", kept=False)),
            "as_served": asyncio.run(renders(baseline, args.renders, "v2", kept=True)),
        }
    finally:
        baseline.close()
    filled = root / "full" / "lockgate.db"
    if args.keep is not None and filled.exists():  # a database filled by an earlier run
        settings = load_settings(root / "full", database_url=f"sqlite:///{filled}", environ={})
        started = time.perf_counter()
        full = Runtime.open(settings)  # migrates it to the newest revision, when it is behind
        out["open_and_migrate_s"] = round(time.perf_counter() - started, 1)
        out["fill"] = "reused from an earlier run (see its output for the timings)"
        out["release_2_made_live_now"] = second_release(full)
        out["top_up"] = top_up(full)
        print(json.dumps({"top_up": out["top_up"]}), flush=True)
        with full.store.engine.connect() as conn:
            cells = conn.exec_driver_sql("SELECT step, count(*) FROM history_cells GROUP BY step")
            out["cells"] = {step: int(count) for step, count in cells}
            out["decisions_stored"] = int(
                conn.execute(select(func.count()).select_from(decisions)).scalar_one()
            )
    else:
        full = project(root / "full")
    try:
        if not isinstance(out.get("fill"), str):
            out["fill"] = fill(full, args.decisions, args.days)
            print(json.dumps(out["fill"]), flush=True)
            second_release(full)
            out["rollup"] = roll_up(full)
            print(json.dumps(out["rollup"]), flush=True)
        # The set-up's writes (a migration, a fill, hundreds of thousands of old minutes
        # dropped) leave a long write-ahead log; a running server's commits checkpoint it
        # within a few rounds. Checkpointed here, so the renders read the database as such a
        # server does.
        started = time.perf_counter()
        raw = full.store.engine.raw_connection()  # outside a transaction, as SQLite needs
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
        out["checkpoint_s"] = round(time.perf_counter() - started, 1)
        out["with_decisions"] = {
            "computed": asyncio.run(renders(full, args.renders, "v1", kept=False)),
            "as_served": asyncio.run(renders(full, args.renders, "v2", kept=True)),
        }
    finally:
        full.close()
    out["database_mb"] = round((root / "full" / "lockgate.db").stat().st_size / 2**20, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
