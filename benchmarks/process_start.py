"""CPU a `lockgate` process spends before it does its work: two commands of the demo project
run to the end, and `lockgate serve` until it answers `/healthz` (the demo's, and a task with a
deterministic provider as most tests serve), for two source trees.

Usage (from the repository root, with the venv active):

    python benchmarks/process_start.py --before-src /tmp/old-checkout/src [--repeats 5]

The tests start real `lockgate` processes where the process is the point (`serve`, kill -9,
signals) and the README test runs about 35 commands in a shell; what each one imports before it
works is paid every time. For each case the two trees take turns (`PYTHONPATH` set to
`--before-src`, then the installed package), and the median CPU time (user + sys of the child,
from `resource.getrusage`) of each is printed with their ratio. A warm-up run of each tree
first writes its `.pyc` files. Nothing asserts a time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_common import machine

PYTHON = sys.executable
#: The task most of the tests serve: a deterministic provider, no model to load.
DETERMINISTIC_TASK = """\
name: routing
input:
  text: {type: string, max_length: 4000}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
models:
  - provider: deterministic
    confidence: 0.9
    answers:
      - {if_contains: "stolen", output: {queue: fraud}}
"""


def child_cpu(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def serve_cpu(project: Path, env: dict[str, str]) -> float:
    """CPU of `lockgate serve` from its start until `/healthz` answers."""
    log = project / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [PYTHON, "-m", "lockgate", "serve", "--port", "0"],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if "Uvicorn running on " in text:
                base = text.split("Uvicorn running on ", 1)[1].split()[0]
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        else:
            raise SystemExit(f"serve did not start:\n{log.read_text()}")
        ticks = os.sysconf("SC_CLK_TCK")
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before-src", required=True, type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    work = Path(tempfile.mkdtemp(prefix="lg-process-start-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    base_env.pop("PYTHONDONTWRITEBYTECODE", None)
    trees = {
        "before": {**base_env, "PYTHONPATH": str(args.before_src.resolve())},
        "after": base_env,
    }
    lockgate = [PYTHON, "-m", "lockgate"]
    subprocess.run([*lockgate, "init", "demo"], cwd=work, env=base_env, check=True)
    project = work / "demo"
    for step in (
        ["train", "routing", "--data", "data/routing-train.csv"],
        ["release", "create", "routing"],
        ["release", "promote", "routing@1"],
    ):
        subprocess.run([*lockgate, *step], cwd=project, env=base_env, check=True)
    plain = work / "plain"
    (plain / "tasks").mkdir(parents=True)
    (plain / "tasks" / "routing.yaml").write_text(DETERMINISTIC_TASK)
    for step in (["release", "create", "routing"], ["release", "promote", "routing@1"]):
        subprocess.run([*lockgate, *step], cwd=plain, env=base_env, check=True)
    cases = {
        "lockgate audit verify": lambda env: child_cpu(
            [*lockgate, "audit", "verify"], project, env
        ),
        "lockgate release list routing": lambda env: child_cpu(
            [*lockgate, "release", "list", "routing"], project, env
        ),
        "lockgate serve, the demo (a local classifier), until /healthz answers": lambda env: (
            serve_cpu(project, env)
        ),
        "lockgate serve, a deterministic task, until /healthz answers": lambda env: serve_cpu(
            plain, env
        ),
    }
    for name, case in cases.items():
        for env in trees.values():
            case(env)  # warm-up: writes the tree's .pyc files
        times: dict[str, list[float]] = {tree: [] for tree in trees}
        for _ in range(args.repeats):
            for tree, env in trees.items():
                times[tree].append(case(env))
        before, after = (statistics.median(times[t]) for t in ("before", "after"))
        print(
            f"{name}: CPU median of {args.repeats}, before {before:.2f} s, after {after:.2f} s, "
            f"after/before {after / before:.2f}"
        )
    print(f"load average at the end: {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
