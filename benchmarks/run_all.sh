#!/usr/bin/env bash
# Runs every benchmark. SQLite always; PostgreSQL when BENCH_POSTGRES_URL names a server
# (use a server with its default, durable settings: fsync and synchronous_commit on; the
# review-queue, delivery and rollout benchmarks create and drop their own databases on it).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=(--repeats "${BENCH_REPEATS:-3}")
pg=()
if [[ -n "${BENCH_POSTGRES_URL:-}" ]]; then
  pg=(--postgres "$BENCH_POSTGRES_URL")
fi
python benchmarks/batch_run.py --records "${BENCH_RECORDS:-20000}" "${repeats[@]}" ${pg[@]+"${pg[@]}"}
python benchmarks/review_queue.py --decisions 100000 --calls 200 "${repeats[@]}" ${pg[@]+"${pg[@]}"}
python benchmarks/delivery.py --deliveries 5000 "${repeats[@]}" ${pg[@]+"${pg[@]}"}
python benchmarks/rollout.py --decisions 20000 "${repeats[@]}" ${pg[@]+"${pg[@]}"}
