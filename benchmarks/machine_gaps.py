"""What one request costs after a pause: the same work, timed warm (back to back) and after a
gap, on this machine.

At concurrency 1 a server handles each request after an idle gap (the client's round trip);
under load it handles the next request at once. This script times the CPU of the calling
thread for (a) a lookup of a new key through Lockgate's store on SQLite (`find`: SQLAlchemy,
the driver and SQLite, all user-space code), (b) the commit of one decision (`save`, whose
fsync is kernel work), and (c) a small loop of plain Python, each after a gap of 0, 0.2, 1
and 5 ms, spent asleep or spinning in Python. The median CPU per call against the warm one
says whether a gap makes the same work dearer, and for which kind of code.

    python benchmarks/machine_gaps.py [--calls 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench_common import machine

from lockgate.decide.decision import Attempt, Decision, input_hash, new_id, utcnow
from lockgate.store import Store

GAPS_MS = (0.0, 0.2, 1.0, 5.0)


def one_decision(key: str) -> Decision:
    text = "My card was charged twice for the same order, please refund one of the payments."
    return Decision(
        id=new_id(), task="bench", release=1, idempotency_key=key,
        input_hash=input_hash({"text": text}), input={"text": text},
        redacted_input={"text": text}, output={"queue": "cards"}, confidence=0.9,
        route="auto", status="decided", reason="confident", cost=0.0, latency_ms=1.0,
        created_at=utcnow(),
        attempts=(Attempt("openai", "m", "http://127.0.0.1/v1", 1.0, "valid"),),
    )  # fmt: skip


def small_loop(_: int) -> None:
    total = 0
    for i in range(12_000):
        total += i & 7


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def median_cpu_us(work: Callable[[int], None], gap_s: float, asleep: bool, calls: int) -> float:
    """Median CPU per call of this thread (microseconds)."""
    taken = []
    for i in range(calls):
        if gap_s:
            time.sleep(gap_s) if asleep else spin(gap_s)
        start = time.thread_time_ns()
        work(i)
        taken.append(time.thread_time_ns() - start)
    return statistics.median(taken) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="timed calls per cell")
    options = parser.parse_args()
    print(machine())
    calls = options.calls
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{Path(folder) / 'lockgate.db'}")
        template = one_decision("warm-up")
        counter = iter(range(10**9))

        def save(_: int) -> None:
            key = f"k-{next(counter)}"
            store.decisions.save([replace(template, id=new_id(), idempotency_key=key)])

        def find(_: int) -> None:
            store.decisions.find("bench", [f"new-{next(counter)}"])

        for i in range(50):  # warm the code paths and the database file
            save(i)
        works = (
            ("store: `find` of a new key (a read)", find),
            ("store: `save` of one decision (a commit, with its fsync)", save),
            ("plain Python loop", small_loop),
        )
        rows = []
        for name, work in works:
            warm = median_cpu_us(work, 0.0, True, calls)
            row = [name, f"{warm:,.0f} us"]
            for gap_ms in GAPS_MS[1:]:
                for asleep in (True, False):
                    cost = median_cpu_us(work, gap_ms / 1000, asleep, calls)
                    row.append(f"{cost:,.0f} us ({cost / warm:.1f}x)")
            rows.append(row)
        store.close()
    print("median CPU per call, and its ratio to the warm one:")
    head = ["work", "warm"] + [
        f"after {g:g} ms {'asleep' if s else 'spinning'}"
        for g in GAPS_MS[1:]
        for s in (True, False)
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
