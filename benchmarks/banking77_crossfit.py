"""Where does a calibrated threshold land on banking77's sealed test set: picked on a 2,000-row
held-out share of train.csv, or cross-fitted on all of train.csv (`lockgate calibrate
--cross-fit K`, the same code)?

For each seed:
1. split: the chain trained on 80% of train.csv (a seeded split, same inputs together) decides
   the other 20%; the lowest threshold whose 95% Clopper-Pearson lower bound reaches the
   target is picked there.
2. cross-fit: train.csv dealt into K folds (seeded); each fold decided by the chain trained on
   the others; the threshold picked on all 10,003 rows (`lockgate.evals.cross_fit`, through
   the decision pipeline, as `lockgate calibrate --cross-fit` runs it).
3. The chain trained on every row of train.csv decides test.csv; both thresholds are applied
   to it: coverage and accuracy of the automated share.

The chain is a combined geometric model of frozen encoders, so that K trainings take minutes:
the local classifier (TF-IDF), all-MiniLM-L6-v2 and all-mpnet-base-v2 (embedding classifiers,
`nearest: 3`, no fine-tuning). Needs the `embeddings` and `mpnet` extras.

Usage: python benchmarks/banking77_crossfit.py [--data DIR] [--seeds 0,1,2] [--folds 5]
       [--target 0.99] [--threads 2] [--calibration temperature|weights] [--workdir DIR]
       [--in-scope-pass P] [--speed N (afterwards, same --workdir: the every-row chain's
       decisions/s, N passes)]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import banking77_models as bm
import numpy as np

from lockgate.decide.task import TaskSpec
from lockgate.evals.calibration import confident_errors, pick_threshold
from lockgate.evals.cross_fit import cross_fitted, trained_chain
from lockgate.evals.datasets import read_dataset
from lockgate.evals.runner import scoring_context
from lockgate.providers.base import BatchProvider, PreparedRequest, ProviderContext
from lockgate.providers.chain_training import train_chain
from lockgate.providers.combined import CombinedProvider, member_answers
from lockgate.providers.registry import ProviderRegistry
from lockgate.settings import Settings


def chain(threads: int, calibration: str, in_scope_pass: float | None) -> list[dict[str, Any]]:
    minilm: dict[str, Any] = {"provider": "embedding-classifier", "threads": threads, "nearest": 3}
    if in_scope_pass is not None:
        minilm["in_scope_pass"] = in_scope_pass
    mpnet = {**minilm, "model": "all-mpnet-base-v2"}
    return [
        {
            "provider": "combined",
            "combine": {
                "method": "geometric",
                "calibration": calibration,
                "models": [{"provider": "local-classifier"}, minilm, mpnet],
            },
        }
    ]


def task_of(args: argparse.Namespace) -> TaskSpec:
    categories = json.loads((args.data / "categories.json").read_text())
    return bm.task_for(categories, chain(args.threads, args.calibration, args.in_scope_pass))


def threshold_figures(scored: list[Any], task: Any, target: float) -> tuple[float | None, dict]:
    chosen, _ = pick_threshold(scored, scoring_context(task), target, 0.95)
    if chosen is None:
        return None, {"threshold": None}
    return chosen.threshold, {
        k: round(v, 4) if isinstance(v, float) else v for k, v in chosen.figures().items()
    }


def run_seed(
    args: argparse.Namespace,
    seed: int,
    root: Path,
    every_row: EveryRow,
) -> dict[str, Any]:
    task = task_of(args)
    # a fold: the chain trained, as `lockgate calibrate --cross-fit` trains it, in a folder
    fold = partial(
        trained_chain,
        settings=Settings(project_dir=root, database_url="sqlite://"),
        registry=ProviderRegistry.discover(),
        sealed={},
    )
    say = lambda message: print(f"[seed {seed}] {message}", file=sys.stderr, flush=True)  # noqa: E731
    rows = read_dataset(task, args.data / "train.csv")
    figures: dict[str, Any] = {"seed": seed, "folds": args.folds, "rows": len(rows)}

    # 1. the split: 80% trains, 20% calibrates
    train, calib = bm.split(bm.read(args.data / "train.csv"), seed, 0.8)
    started = time.perf_counter()
    part = fold(task, [_record(i, r) for i, r in enumerate(train)], root / f"part-{seed}", say)
    provider = part.models[0].provider
    assert isinstance(provider, BatchProvider)
    conf_c, right_c = bm.scored(
        bm.answers(provider, task, [r["text"] for r in calib]), [r["category"] for r in calib]
    )
    split_threshold = bm.pick(conf_c, right_c, args.target)
    figures["split"] = {
        "calibration_rows": len(calib),
        "calibration": bm.at(split_threshold, conf_c, right_c),
        "seconds": round(time.perf_counter() - started, 1),
    }

    # 2. cross-fitted on every row, as `lockgate calibrate --cross-fit` does
    started = time.perf_counter()
    scored = asyncio.run(
        cross_fitted(task, rows, args.folds, fold, dataset="train.csv", seed=seed, say=say)
    )
    crossed, crossed_figures = threshold_figures(scored, task, args.target)
    figures["cross_fit"] = {**crossed_figures, "seconds": round(time.perf_counter() - started, 1)}

    # 3. both thresholds on test.csv, decided by the chain trained on every row
    conf_t, right_t, agreed_t = every_row.confidence, every_row.right, every_row.agreed
    figures["test_at_split_threshold"] = bm.at(split_threshold, conf_t, right_t)
    figures["test_at_cross_fit_threshold"] = bm.at(crossed, conf_t, right_t)
    if crossed is None:
        return figures

    # 4. the out-of-scope bar, on the same chain and threshold
    figures["off_topic_automated_at_cross_fit_threshold"] = {
        "n": int((every_row.off_topic >= crossed).sum()),
        "of": len(every_row.off_topic),
    }

    # 5. the errors above the cross-fitted threshold
    wrong_t = (conf_t >= crossed) & ~right_t
    automated = [i for i in scored if i.automated_at(crossed)]
    wrong = confident_errors(automated, scoring_context(task))
    figures["cross_fit"]["wrong"] = len(wrong)
    figures["test_at_cross_fit_threshold"]["wrong"] = int(wrong_t.sum())
    figures["test_at_cross_fit_threshold"]["wrong_every_member_agrees"] = int(
        (wrong_t & agreed_t).sum()
    )
    return figures


def every_row_chain(
    args: argparse.Namespace, root: Path, *, train: bool
) -> tuple[TaskSpec, BatchProvider]:
    """The chain trained on every row of train.csv, kept in `root`/all (`train`: trained
    there first when missing; else a missing one is an error)."""
    task = task_of(args)
    settings = Settings(project_dir=root / "all", database_url="sqlite://")
    if not (settings.artifact_dir / task.name / "combined" / "latest.json").exists():
        if not train:
            sys.exit(f"no chain trained on every row in {root}: run without --speed first")
        say = lambda message: print(f"[every row] {message}", file=sys.stderr, flush=True)  # noqa: E731
        train_chain(task, args.data / "train.csv", settings, progress=say)
    built = ProviderRegistry.discover().build(task.models[0], ProviderContext(task, settings))
    assert isinstance(built, BatchProvider)
    return task, built


@dataclass(frozen=True)
class EveryRow:
    """test.csv decided by the chain trained on every row of train.csv: the confidences,
    whether each answer is right, whether every member's most probable value is the chain's
    answer, whether the chain judged the input out of scope; and the confidences on the demo's
    off-topic tickets (the out-of-scope bar's set)."""

    confidence: np.ndarray
    right: np.ndarray
    agreed: np.ndarray
    flagged: np.ndarray
    off_topic: np.ndarray


def every_row_answers(args: argparse.Namespace, root: Path) -> EveryRow:
    """The chain trained on every row (trained once: the seeds move only the split and the
    folds) on test.csv and on the off-topic tickets."""
    task, built = every_row_chain(args, root, train=True)
    test = bm.read(args.data / "test.csv")
    texts = [r["text"] for r in test]
    answers = bm.answers(built, task, texts)
    conf, right = bm.scored(answers, [r["category"] for r in test])
    off_topic = bm.answers(built, task, bm.off_topic_tickets(0))
    return EveryRow(
        confidence=conf,
        right=right,
        agreed=every_member_agrees(built, task, texts, answers),
        flagged=np.asarray([a.out_of_scope is not None for a in answers]),
        off_topic=np.asarray([a.confidence or 0.0 for a in off_topic]),
    )


def every_member_agrees(
    built: BatchProvider, task: TaskSpec, texts: list[str], answers: list[Any]
) -> np.ndarray:
    """Per text: does each member of the combined chain give the chain's answer the highest
    probability?"""
    assert isinstance(built, CombinedProvider)
    values = {"category": task.enum_values("category")}
    index = {v: j for j, v in enumerate(values["category"])}
    chosen = [index[a.output["category"]] for a in answers]
    agree = np.ones(len(texts), dtype=bool)
    requests = [PreparedRequest(task, {"text": t}) for t in texts]
    for label, member in zip(built.labels, built.members[: built.first], strict=False):
        rows = member_answers(label, member, requests, values).probabilities["category"]
        agree &= np.array(
            [r is not None and int(np.argmax(r)) == c for r, c in zip(rows, chosen, strict=True)]
        )
    return agree


def speed(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Decisions per second of the chain trained on every row (train it first: a run without
    --speed), test.csv through the pipeline in `lockgate run`'s batches, empty caches."""
    task, built = every_row_chain(args, root, train=False)
    texts = [r["text"] for r in bm.read(args.data / "test.csv")]
    bm.answers(built, task, texts[:64])  # loads what a session's first call loads; not timed
    rates = []
    for _ in range(args.speed):
        bm.clear_caches(built)
        rates.append(asyncio.run(bm.pipeline_rate(task, built, texts)))
    return {
        "calibration": args.calibration,
        "pipeline_decisions_per_s": round(float(np.median(rates)), 1),
        "runs": [round(r, 1) for r in rates],
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }


def _record(i: int, row: dict[str, str]) -> Any:
    from lockgate.decide.records import Record

    return Record(str(i + 1), i + 1, {"text": row["text"], "category": row["category"]})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=bm.DATA)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calibration", default="temperature")
    parser.add_argument("--workdir", type=Path, help="keep the folds' artifacts here")
    parser.add_argument(
        "--in-scope-pass", type=float, default=None,
        help="the embedding members' in_scope_pass (default: the provider's, 0.95): the share "
        "of held-out in-scope rows their out-of-scope similarity threshold lets through",
    )  # fmt: skip
    parser.add_argument(
        "--speed", type=int, default=0,
        help="only time the every-row chain: this many passes over test.csv through the "
        "decision pipeline, each from empty embedding caches (median reported)",
    )  # fmt: skip
    args = parser.parse_args()
    args.data = args.data.resolve()
    if not (args.data / "train.csv").exists():
        sys.exit(f"banking77 not found in {args.data}; pass --data DIR")
    bm.HOLDOUT_SHARE = 0.1
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        if args.speed:
            print(json.dumps(speed(args, root)))
            return
        every_row = every_row_answers(args, root)
        accuracy = round(float(every_row.right.mean()), 4)
        agreed = round(float(every_row.agreed.mean()), 4)
        flagged = round(float(every_row.flagged.mean()), 4)
        print(json.dumps({"test_accuracy": accuracy, "every_member_agrees": agreed,
                          "test_flagged_out_of_scope": flagged}),
              file=sys.stderr, flush=True)  # fmt: skip
        for seed in (int(s) for s in args.seeds.split(",")):
            results.append(run_seed(args, seed, root, every_row))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    thresholds = {
        "split": [r["split"]["calibration"]["threshold"] for r in results],
        "cross_fit": [r["cross_fit"]["threshold"] for r in results],
    }
    print(
        json.dumps(
            {
                "target": args.target,
                "calibration": args.calibration,
                "test_accuracy": accuracy,
                "test_every_member_agrees": agreed,
                "test_flagged_out_of_scope": flagged,
                "in_scope_pass": args.in_scope_pass,
                "seeds": results,
                "threshold_range": {
                    k: round(float(np.ptp([x for x in v if x is not None])), 4)
                    for k, v in thresholds.items()
                    if any(x is not None for x in v)
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
