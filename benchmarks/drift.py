"""Drift: false alarms on a stream from the reference distribution, and detection of a shifted
stream within one window (issue 13, part 3).

Usage (from the repository root, with the venv active):

    python benchmarks/drift.py --windows 100 --window 1000 --shifted-windows 10

A fresh demo project (`lockgate demo`'s task: 15 queues, the local classifier trained on 3,000
generated tickets, the rules model as fallback) gets release 1 and its reference profile, made
as `lockgate release create` makes it: the release decides a held-out sample of 2,000 tickets
(the gate dataset, another seed of the generator) and `watch.profile` profiles it.

Then, per window, `--window` new tickets (a new seed each) are decided by the release through
the real pipeline (nothing stored) and compared with the profile by `watch.drift`, as
`lockgate drift` compares stored decisions:

- same distribution: `--windows` windows; the count of windows whose verdict is `drift`
  (the bar: at most 5 of 100), and of `warn`;
- shifted: for each of a new topic, a new language and heavy typos, `--shifted-windows`
  windows in which 20% of the tickets are shifted (`lockgate.testing.shifts`); the count whose
  verdict is `drift` (the bar: flagged within one window, so every window).

Prints JSON with the figures and which signals called drift. Nothing asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_common import machine

from lockgate.decide.decision import input_hash, new_id
from lockgate.decide.pipeline import DecisionRequest, Pipeline
from lockgate.demo.generator import generate_tickets
from lockgate.demo.tour import TASK, prepare
from lockgate.evals.runner import DiscardingStore
from lockgate.evals.types import DatasetRow
from lockgate.providers.classifier_training import train_classifier
from lockgate.runtime import Runtime
from lockgate.settings import load_settings
from lockgate.testing.shifts import SHIFTS, stream
from lockgate.watch.drift import drift_report
from lockgate.watch.reference import feature_space, make_profile
from lockgate.watch.types import Observed


async def window_of(loaded: Any, texts: list[str]) -> list[Observed]:
    """The texts decided by the release as a batch job decides them (chunks of 500 through the
    pipeline), nothing stored."""
    pipeline = Pipeline(DiscardingStore())
    now = datetime.now(UTC)
    window: list[Observed] = []
    for start in range(0, len(texts), 500):
        chunk = texts[start : start + 500]
        requests = [
            DecisionRequest({"text": t}, f"w{start + i}-{new_id()}") for i, t in enumerate(chunk)
        ]
        for result in await pipeline.decide_many(loaded, requests):
            d = result.decision
            assert d is not None
            window.append(Observed(d.id, 1, d.input, d.output, d.confidence, d.route, now))
    return window


async def main(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="lockgate-drift-"))
    prepare(folder / "demo", train_n=3000, incoming_n=10)
    settings = load_settings(folder / "demo")
    runtime = Runtime.open(settings)
    try:
        spec = runtime.task(TASK)
        train_classifier(spec, folder / "demo" / "data" / "train.csv", settings, seed=0)
        release, _ = runtime.create_release(TASK, "bench")
        loaded = runtime.release_runtime(TASK, release.number)
        reference = generate_tickets(2000, seed=3, id_prefix="REF")
        ref_rows = [
            DatasetRow(i, {"text": t.text}, {"queue": t.queue}, input_hash({"text": t.text}))
            for i, t in enumerate(reference)
        ]
        profile = await make_profile(loaded, ref_rows, {"dataset": "reference", "rows": 2000})
        space = feature_space(loaded)

        def judge(window: list[Observed]) -> Any:
            return drift_report(
                spec, profile, window, release=1, window_info={"n": len(window)}, space=space
            )

        same: Counter[str] = Counter()
        same_signals: Counter[str] = Counter()
        for i in range(args.windows):
            report = judge(await window_of(loaded, stream(args.window, seed=1000 + i)))
            same[report.verdict] += 1
            same_signals.update(s.name for s in report.signals if s.verdict == "drift")
        shifted: dict[str, Any] = {}
        for shift in SHIFTS:
            verdicts: Counter[str] = Counter()
            signals: Counter[str] = Counter()
            for i in range(args.shifted_windows):
                texts = stream(args.window, seed=5000 + i, shift=shift, share=args.share)
                report = judge(await window_of(loaded, texts))
                verdicts[report.verdict] += 1
                signals.update(s.name for s in report.signals if s.verdict == "drift")
            shifted[shift] = {"verdicts": dict(verdicts), "drift_signals": dict(signals)}
    finally:
        await runtime.aclose()
        runtime.close()
    return {
        "machine": machine(),
        "window": args.window,
        "reference_rows": 2000,
        "same_distribution": {
            "windows": args.windows,
            "verdicts": dict(same),
            "drift_signals": dict(same_signals),
        },
        "shifted": {"share": args.share, "windows": args.shifted_windows, **shifted},
        "seconds": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=100)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--shifted-windows", type=int, default=10)
    parser.add_argument("--share", type=float, default=0.2)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
