"""Where `tests/test_readme.py`'s time goes: the README's `sh` blocks run as that test runs
them (one shell, an empty folder, the venv's `lockgate` first on the PATH), with each `lockgate`
command timed (wall, user and sys CPU, from `/usr/bin/time`) through a small wrapper.

Usage (from the repository root, with the venv active):

    python benchmarks/readme_steps.py [--log FILE]

Prints every command with its times, slowest last, and the totals. Nothing asserts a time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_common import machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_readme import README, blocks  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", type=Path, default=None, help="keep the timings in this file")
    args = parser.parse_args()
    print(machine())
    shell = [
        body for lang, body, runnable in blocks(README.read_text()) if lang == "sh" and runnable
    ]
    script = "set -euo pipefail\n" + "".join(shell)
    wrapper_dir = Path(tempfile.mkdtemp(prefix="lg-readme-bin-"))
    log = args.log or wrapper_dir / "times.log"
    log.write_text("")
    real = Path(sys.executable).parent / "lockgate"
    wrapper = wrapper_dir / "lockgate"
    wrapper.write_text(
        f'#!/bin/bash\nexec /usr/bin/time -a -o {log} -f "%e %U %S :: $*" {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCKGATE_", "OPENAI_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PATH"] = f"{wrapper_dir}{os.pathsep}{real.parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "100"
    work = Path(tempfile.mkdtemp(prefix="lg-readme-"))
    done = subprocess.run(
        ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the README failed in {work}:\n{done.stderr[-3000:]}")
    rows = []
    for line in log.read_text().splitlines():
        times, _, command = line.partition(" :: ")
        wall, user, sys_ = (float(x) for x in times.split())
        rows.append((wall, user + sys_, command))
    for wall, cpu, command in sorted(rows):
        print(f"{wall:6.2f} s wall {cpu:6.2f} s CPU  lockgate {command}")
    print(
        f"{len(rows)} commands: {sum(r[0] for r in rows):.1f} s wall, "
        f"{sum(r[1] for r in rows):.1f} s CPU; load average {Path('/proc/loadavg').read_text()}"
    )


if __name__ == "__main__":
    main()
