"""What fitting and storing the local classifier costs: the logistic regression's solver, and the
artifact's format.

Usage (from the repository root, with the venv active; run it under `flock /tmp/bench.lock`):

    lockgate init /tmp/demo-fit >/dev/null    # the demo's 800 labeled tickets
    python benchmarks/classifier_fit.py --data /tmp/demo-fit/data/routing-train.csv --label queue
    python benchmarks/classifier_fit.py --data ../shared/datasets/banking77/train.csv \\
        --label category --test ../shared/datasets/banking77/test.csv --no-artifact

1. The features `lockgate train` builds (`classifier_training._features`), then one fit per
   solver with `lockgate train`'s other settings: CPU and wall time, iterations, accuracy on the
   training rows (and on `--test`), and how often the solvers agree.
2. The fitted model (`classifier_training._fit`) written and read back as joblib did it
   (`joblib.dump(compress=3)`) and as the current format does (a zlib-compressed protocol-5
   pickle, at several zlib levels): CPU median of `--repeats`, and size.
"""

from __future__ import annotations

import argparse
import csv
import io
import pickle
import statistics
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from bench_common import machine
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from lockgate.providers import classifier_training


def read(path: Path, label: str) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r["text"] for r in rows], [r[label] for r in rows]


def cpu(work: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        started = time.process_time()
        result = work()
        times.append(time.process_time() - started)
    return statistics.median(times), result


def solvers(args: argparse.Namespace) -> None:
    texts, labels = read(args.data, args.label)
    test = read(args.test, args.label) if args.test else None
    features = classifier_training._features()
    matrix = features.fit_transform(texts)
    test_matrix = features.transform(test[0]) if test else None
    print(f"{args.data}: {matrix.shape[0]} rows, {matrix.shape[1]} features")
    fitted = {}
    for solver in args.solvers:
        model = LogisticRegression(C=10.0, solver=solver, max_iter=2000, random_state=0)
        started, wall = time.process_time(), time.perf_counter()
        model.fit(matrix, labels)
        used, wall = time.process_time() - started, time.perf_counter() - wall
        fitted[solver] = model
        line = (
            f"{solver:>10}: fit {used:.2f} s CPU ({wall:.2f} s wall), {int(model.n_iter_[0])} "
            f"iterations, training accuracy {accuracy_score(labels, model.predict(matrix)):.4f}"
        )
        if test:
            line += f", test accuracy {accuracy_score(test[1], model.predict(test_matrix)):.4f}"
        print(line, flush=True)
    if len(fitted) == 2:
        a, b = fitted.values()
        same = np.mean(a.predict(matrix) == b.predict(matrix))
        print(f"same prediction on {same:.2%} of the training rows", end="")
        if test:
            print(f", {np.mean(a.predict(test_matrix) == b.predict(test_matrix)):.2%} of test")
        else:
            print()


def artifacts(args: argparse.Namespace) -> None:
    texts, labels = read(args.data, args.label)
    model = classifier_training._fit(
        "bench", ("text",), texts, {args.label: labels}, 0, frozenset()
    )

    def joblib_bytes() -> bytes:
        buffer = io.BytesIO()
        joblib.dump(model, buffer, compress=3)
        return buffer.getvalue()

    written, data = cpu(joblib_bytes, args.repeats)
    read_back, _ = cpu(lambda: joblib.load(io.BytesIO(data)), args.repeats)
    print(f"joblib compress=3: write {written:.3f} s, read {read_back:.3f} s, {len(data):,} bytes")
    for level in (None, 1, 3, 6):

        def pickled(level: int | None = level) -> bytes:
            raw = pickle.dumps(model, protocol=5)
            return raw if level is None else zlib.compress(raw, level)

        def unpickled(data: bytes, level: int | None = level) -> Any:
            return pickle.loads(data if level is None else zlib.decompress(data))

        written, data = cpu(pickled, args.repeats)
        read_back, _ = cpu(lambda data=data: unpickled(data), args.repeats)
        print(
            f"pickle 5, zlib {level}: write {written:.3f} s, read {read_back:.3f} s, "
            f"{len(data):,} bytes"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="CSV with `text` and a label")
    parser.add_argument("--label", default="queue", help="the label column")
    parser.add_argument("--test", type=Path, help="a CSV to score the fits on")
    parser.add_argument("--solvers", nargs="+", default=["lbfgs", "newton-cg"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-artifact", action="store_true", help="skip the artifact formats")
    args = parser.parse_args()
    print(machine())
    solvers(args)
    if not args.no_artifact:
        artifacts(args)


if __name__ == "__main__":
    main()
