#!/usr/bin/env bash
# Runs every benchmark. SQLite always; PostgreSQL when BENCH_POSTGRES_URL names a database
# (use a server with its default, durable settings: fsync and synchronous_commit on).
set -euo pipefail
cd "$(dirname "$0")/.."
args=(--records "${BENCH_RECORDS:-20000}" --repeats "${BENCH_REPEATS:-3}")
if [[ -n "${BENCH_POSTGRES_URL:-}" ]]; then
  args+=(--postgres "$BENCH_POSTGRES_URL")
fi
python benchmarks/batch_run.py "${args[@]}"
