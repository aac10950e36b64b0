"""Start-up cost of `import lockgate` and of the CLI's help, in fresh interpreters.

Usage (from the repository root, with the venv active):

    python benchmarks/import_time.py [--repeats 5] [--top 10]

For each command: the median over `--repeats` runs of the child's CPU time (user + sys, as
`/usr/bin/time -f "%U %S"` reports it) and of its wall time; which heavy packages it loaded
(from `-X importtime`); and the `--top` imports by cumulative time (microseconds, one
`-X importtime` run). The interpreter alone (`python -c pass`), `import typer` and the help of
a two-command Typer app with one sub-group are measured too: they are the floor the CLI cannot
go below (Typer renders help with Rich, and from 0.29 a sub-command's help also loads pydantic,
which Typer uses to convert parameter values). Nothing asserts a time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_common import machine

PYTHON = sys.executable
LOCKGATE = str(Path(sys.executable).parent / "lockgate")
HEAVY = ("sqlalchemy", "alembic", "numpy", "scipy", "sklearn", "fastapi", "pydantic", "typer")

# The smallest Typer CLI with a sub-group: what `lockgate --help` would cost with no Lockgate.
TYPER_APP = """
import typer
app = typer.Typer(add_completion=False)
sub = typer.Typer()
@sub.command()
def one(x: int = 1) -> None: ...
@sub.command()
def two(y: str = "") -> None: ...
app.add_typer(sub, name="sub")
app()
"""
FLOORS = 4  # the first COMMANDS are floors, not Lockgate
COMMANDS: list[tuple[str, list[str]]] = [
    ("python -c pass", [PYTHON, "-c", "pass"]),
    ("python -c 'import typer'", [PYTHON, "-c", "import typer"]),
    ("minimal Typer app --help", [PYTHON, "-c", TYPER_APP, "--help"]),
    ("minimal Typer app sub --help", [PYTHON, "-c", TYPER_APP, "sub", "--help"]),
    ("python -c 'import lockgate'", [PYTHON, "-c", "import lockgate"]),
    (
        "python -c 'from lockgate import verify_signature, Undeliverable'",
        [PYTHON, "-c", "from lockgate import verify_signature, Undeliverable"],
    ),
    ("lockgate --help", [LOCKGATE, "--help"]),
    ("lockgate release --help", [LOCKGATE, "release", "--help"]),
]


def timed(argv: list[str]) -> tuple[float, float]:
    """One run: (CPU seconds of the child, user + sys; wall seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def importtime(argv: list[str]) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) for every import of one run under -X importtime."""
    if argv[0] == LOCKGATE:  # the console script is `python -m lockgate` in effect
        argv = [PYTHON, "-m", "lockgate", *argv[1:]]
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        rows.append((int(cumulative), name))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()

    print(f"Machine: {machine()}")
    print(f"Medians of {args.repeats} runs (CPU = user + sys of the child process)\n")
    print(f"{'command':<68} {'CPU s':>6} {'wall s':>6}  heavy packages loaded")
    imports: dict[str, list[tuple[int, str]]] = {}
    for label, argv in COMMANDS:
        runs = [timed(argv) for _ in range(args.repeats)]
        cpu = statistics.median(run[0] for run in runs)
        wall = statistics.median(run[1] for run in runs)
        imports[label] = importtime(argv)
        loaded = {name.split(".")[0] for _, name in imports[label]}
        heavy = ", ".join(name for name in HEAVY if name in loaded) or "none"
        print(f"{label:<68} {cpu:6.3f} {wall:6.3f}  {heavy}")

    for label, _ in COMMANDS[FLOORS:]:
        rows = sorted(imports[label], reverse=True)[: args.top]
        print(f"\nTop {args.top} cumulative imports (us), `{label}` under -X importtime:")
        for cumulative, name in rows:
            print(f"  {cumulative:>9,}  {name}")


if __name__ == "__main__":
    main()
