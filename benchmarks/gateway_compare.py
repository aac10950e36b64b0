"""Lockgate against the Portkey gateway and the LiteLLM proxy, in one run, on one machine.

Usage (from the repository root, with the venv active; `wrk` and `npm` on PATH):

    python benchmarks/gateway_compare.py --seconds 10

It installs LiteLLM proxy (`litellm[proxy]<1.109` in its own venv) and the Portkey gateway
(`npm install @portkey-ai/gateway@1.15.2`) under `--cache` (default
~/.cache/lockgate-bench) unless they are there already (`--skip-install`: never install).
Then it starts one fast OpenAI-compatible upstream (`UPSTREAM_PROGRAM` below, a minimal
aiohttp server answering a fixed completion and recording nothing; or `--upstream
fault-server`, the package's fault server) and, one at a time, each system in front of it:

- Portkey (`node .../start-server.js --headless`), headers `x-portkey-provider: openai` and
  `x-portkey-custom-host`;
- LiteLLM proxy (one worker, no database, `LITELLM_LOCAL_MODEL_COST_MAP=True`);
- `lockgate serve` (one worker, SQLite: WAL, synchronous=FULL, both fixed in the store) on
  the project of benchmarks/server_load.py (model = the upstream, live release, API key);
- `lockgate serve` on the project of benchmarks/batch_run.py (the local classifier, no
  upstream call).

Every system gets the same load generator, `wrk` (one thread) with a Lua script that sets a
fresh `Idempotency-Key` on every request: the upstream alone at concurrency 1 (the baseline
for the added p50), the system's warm-up (`--warmup-seconds` at `--warmup-concurrency`), the
system at concurrency 1, then at 64, each for `--seconds`. The upstream alone is also loaded
at 64 first, which bounds what wrk and the upstream can do together. All traffic is on
127.0.0.1; every wait and run is bounded; every process started is stopped. Progress goes to
stderr; the table, then one JSON line, to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from batch_run import make_project as make_classifier_project
from bench_common import fresh_database, machine
from server_load import TASK, TEXT, free_port, lockgate, make_project, stop, upstream_body

import lockgate as lockgate_package
from lockgate.demo.tour import TASK as CLASSIFIER_TASK

PORTKEY = "@portkey-ai/gateway@1.15.2"
PORTKEY_START = Path("node_modules/@portkey-ai/gateway/build/start-server.js")
LITELLM = ["litellm[proxy]<1.109", "certifi<=2026.10.18"]
UPSTREAM_KEY = "sk-bench"
START_TIMEOUT_S = 180.0
SYSTEMS = ("portkey", "litellm", "lockgate", "lockgate-classifier")
STARTED = time.perf_counter()


UPSTREAM_PROGRAM = """
import json, sys
from aiohttp import web

content = json.dumps({"queue": "cards"})
choice = {"index": 0, "message": {"role": "assistant", "content": content},
          "finish_reason": "stop", "logprobs": None}
body = json.dumps({"id": "chatcmpl-bench", "object": "chat.completion", "created": 0,
                   "model": "bench-model", "choices": [choice],
                   "usage": {"prompt_tokens": 300, "completion_tokens": 5, "total_tokens": 305}})

async def complete(request):
    await request.read()
    return web.Response(body=body.encode(), content_type="application/json")

app = web.Application()
app.router.add_post("/v1/chat/completions", complete)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""
"""A minimal OpenAI-compatible upstream, run as `python -c UPSTREAM_PROGRAM PORT`: it reads the
body and answers one fixed completion (valid for the bench task), recording nothing."""


def say(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def install(cache: Path) -> None:
    venv = cache / "litellm-venv"
    if not (venv / "bin" / "litellm").exists():
        say(f"installing LiteLLM proxy into {venv} (a few minutes)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        pip = [str(venv / "bin" / "pip"), "install", "--quiet", *LITELLM]
        subprocess.run(pip, check=True, timeout=1800)
    portkey = cache / "portkey"
    if not (portkey / PORTKEY_START).exists():
        say(f"installing {PORTKEY} into {portkey}")
        portkey.mkdir(parents=True, exist_ok=True)
        npm = ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(portkey), PORTKEY]
        subprocess.run(npm, check=True, timeout=900)


def versions(cache: Path) -> dict[str, str]:
    def out(*args: str) -> str:
        return subprocess.run(args, capture_output=True, text=True, timeout=60).stdout.strip()

    python = str(cache / "litellm-venv" / "bin" / "python")
    package = cache / "portkey" / "node_modules/@portkey-ai/gateway/package.json"
    return {
        "wrk": out("wrk", "-v").splitlines()[0] if out("wrk", "-v") else "?",
        "node": out("node", "--version"),
        "portkey": json.loads(package.read_text())["version"] if package.exists() else "-",
        "litellm": out(python, "-c", "import importlib.metadata as m; print(m.version('litellm'))"),
        "sqlite": sqlite3.sqlite_version,
        "lockgate_source": str(Path(lockgate_package.__file__).parent.parent),
        "repository_head": out("git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"),
    }


def lua(body: bytes, headers: dict[str, str]) -> str:
    """A wrk script: fixed body and headers, a new Idempotency-Key per request, a JSON summary."""
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{body.decode()}]==]"]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    lines += [
        f'local prefix = "{uuid.uuid4().hex}"',
        "local made, count = 0, 0",
        'function setup(thread) made = made + 1; thread:set("tid", made) end',
        "function request()",
        "  count = count + 1",
        '  wrk.headers["Idempotency-Key"] = prefix .. "-" .. (tid or 0) .. "-" .. count',
        "  return wrk.format()",
        "end",
        "function done(s, latency, requests)",
        '  io.write(string.format("WRK {\\"requests\\":%d,\\"us\\":%d,\\"p50_us\\":%d,'
        '\\"p99_us\\":%d,\\"non2xx\\":%d,\\"socket\\":%d}\\n", s.requests, s.duration,'
        " latency:percentile(50), latency:percentile(99), s.errors.status,"
        " s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout))",
        "end",
    ]
    return "\n".join(lines) + "\n"


class Target:
    """One URL with its request, loaded by wrk."""

    def __init__(self, name: str, url: str, body: bytes, headers: dict[str, str], folder: Path):
        self.name, self.url, self.body = name, url, body
        self.headers = {"Content-Type": "application/json", **headers}
        self.script = folder / f"{name}.lua"
        self.ok_total = 0

    def smoke(self) -> str:
        """One request through the system; raises unless it answers 2xx."""
        headers = {**self.headers, "Idempotency-Key": uuid.uuid4().hex}
        request = urllib.request.Request(self.url, self.body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                self.ok_total += 1
                return f"{response.status} {response.read()[:160].decode(errors='replace')}"
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{self.name}: {exc.code} {exc.read()[:300]!r}") from None

    def load(self, concurrency: int, seconds: float, watch: dict[str, int]) -> dict[str, Any]:
        self.script.write_text(lua(self.body, self.headers))  # a new key prefix every run
        command = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout", "30s"]
        command += ["-s", str(self.script), self.url]
        cpu = {name: tree_cpu_s(pid) for name, pid in watch.items()}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_1m = os.getloadavg()[0]
        run = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 90)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        line = next((x for x in run.stdout.splitlines() if x.startswith("WRK ")), None)
        if run.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed on {self.name}: {run.stdout}{run.stderr}")
        raw = json.loads(line[4:])
        elapsed = raw["us"] / 1e6
        ok = raw["requests"] - raw["non2xx"]
        self.ok_total += ok
        wrk_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
        result = {
            "concurrency": concurrency,
            "seconds": round(elapsed, 2),
            "answers": raw["requests"],
            "ok_per_s": round(ok / elapsed, 1),
            "errors": raw["non2xx"] + raw["socket"],
            "non2xx": raw["non2xx"],
            "socket_errors": raw["socket"],
            "p50_ms": raw["p50_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000,
            "load_1m_before": round(load_1m, 2),
            "cpu_percent": {"wrk": round(100 * wrk_cpu / elapsed)}
            | {n: round(100 * (tree_cpu_s(p) - cpu[n]) / elapsed) for n, p in watch.items()},
        }
        say(f"  {self.name} c={concurrency}: {json.dumps(result)}")
        time.sleep(1.0)  # let requests wrk abandoned at its deadline finish
        return result


def fsync_p50_ms(folder: Path, samples: int = 100) -> float:
    """Median time of one fsync after a 4 KiB append in `folder`: the floor under a durable
    commit on this disk (SQLite with synchronous=FULL syncs the WAL once per transaction)."""
    path = folder / f".fsync-probe-{uuid.uuid4().hex}"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(samples):
            os.write(fd, b"x" * 4096)
            started = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return round(sorted(times)[len(times) // 2], 3)


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of a process and its live descendants."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
            ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    stop_at = time.perf_counter() + START_TIMEOUT_S
    while time.perf_counter() < stop_at:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited; log tail: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up in {START_TIMEOUT_S:.0f} s")


class Processes:
    """Subprocesses started by this run, each logging to a file; all stopped on exit."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.running: list[subprocess.Popen[bytes]] = []
        self.on_exit: list[Callable[[], None]] = []
        """Clean-ups run after every process stopped (dropping a benchmark database)."""

    def start(self, name: str, args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        self.running.append(process)
        return process

    def log(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        stop(process)
        self.running.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.running)):
            self.stop(process)
        for clean_up in self.on_exit:
            clean_up()


def start_system(name: str, env: dict[str, Any], procs: Processes) -> tuple[Any, Target]:
    """Start one system in front of the upstream; returns its process and its target."""
    port, folder, upstream = free_port(), procs.folder, env["upstream"]
    base = f"http://127.0.0.1:{port}"
    chat = json.dumps(env["chat_body"]).encode()
    if name == "portkey":
        args = ["node", str(PORTKEY_START), f"--port={port}", "--headless"]
        process = procs.start(name, args, cwd=env["cache"] / "portkey")
        ready = f"{base}/"
        headers = {
            "Authorization": f"Bearer {UPSTREAM_KEY}",
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": f"{upstream}/v1",
        }
        target = Target(name, f"{base}/v1/chat/completions", chat, headers, folder)
    elif name == "litellm":
        config = folder / "litellm.yaml"
        model = {"model": "openai/bench-model", "api_base": f"{upstream}/v1"}
        entry = {"model_name": "bench-model", "litellm_params": {**model, "api_key": UPSTREAM_KEY}}
        config.write_text(json.dumps({"model_list": [entry]}))  # JSON is YAML
        master = f"sk-{uuid.uuid4().hex}{uuid.uuid4().hex}"
        extra = {"LITELLM_MASTER_KEY": master, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        litellm = str(env["cache"] / "litellm-venv" / "bin" / "litellm")
        args = [litellm, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
        args += ["--num_workers", "1"]
        clean = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # no database
        process = procs.start(name, args, env={**clean, **extra}, cwd=folder)
        ready = f"{base}/health/liveliness"
        headers = {"Authorization": f"Bearer {master}"}
        target = Target(name, f"{base}/v1/chat/completions", chat, headers, folder)
    else:
        root, key, task = env[name]
        extra = {"OPENAI_BASE_URL": f"{upstream}/v1", "OPENAI_API_KEY": UPSTREAM_KEY}
        listen = ["--host", "127.0.0.1", "--port", str(port)]
        args = [sys.executable, "-m", "lockgate", "serve", "--project", str(root), *listen]
        args += ["--workers", str(env["workers"])]
        if env["cpus"]:
            args += ["--cpus", env["cpus"]]
        clean = {k: v for k, v in os.environ.items() if k != "LOCKGATE_DATABASE_URL"}
        if env["database"]:
            extra["LOCKGATE_DATABASE_URL"] = env["database"][name]
        # Without --postgres-admin: the project's own SQLite file.
        process = procs.start(name, args, env={**clean, **extra})
        ready = f"{base}/readyz"
        body = json.dumps({"input": {"text": TEXT}}).encode()
        headers = {"Authorization": f"Bearer {key}"}
        target = Target(name, f"{base}/v1/tasks/{task}/decisions", body, headers, folder)
    wait_ready(ready, process, procs.log(name))
    return process, target


@contextlib.contextmanager
def database_env(url: str | None) -> Iterator[None]:
    """LOCKGATE_DATABASE_URL set to `url` for the CLI calls inside (nothing when None)."""
    if url is None:
        yield
        return
    os.environ["LOCKGATE_DATABASE_URL"] = url
    try:
        yield
    finally:
        del os.environ["LOCKGATE_DATABASE_URL"]


def stored_decisions(root: Path, database: str | None) -> int:
    if database:
        import sqlalchemy as sa

        engine = sa.create_engine(database, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                return int(conn.execute(sa.text("SELECT count(*) FROM decisions")).scalar_one())
        finally:
            engine.dispose()
    db = root / ".lockgate" / "lockgate.db"
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(connection.execute("SELECT count(*) FROM decisions").fetchone()[0])
    finally:
        connection.close()


def bench(options: argparse.Namespace, folder: Path, procs: Processes) -> dict[str, Any]:
    seconds, warmup = options.seconds, options.warmup_seconds
    report: dict[str, Any] = {"systems": {}}
    up_port = free_port()
    if options.upstream == "fault-server":
        args = [sys.executable, "-m", "lockgate.testing.fault_server", "--port", str(up_port)]
    else:
        args = [sys.executable, "-c", UPSTREAM_PROGRAM, str(up_port)]
    upstream_process = procs.start("upstream", args)
    env: dict[str, Any] = {"cache": options.cache, "upstream": f"http://127.0.0.1:{up_port}"}
    env["workers"] = options.workers
    env["cpus"] = options.lockgate_cpus
    env["database"] = {}
    if options.postgres_admin:
        databases = contextlib.ExitStack()  # dropped when every process has stopped
        procs.on_exit.append(databases.close)
        env["database"] = {
            name: databases.enter_context(fresh_database(options.postgres_admin, folder))
            for name in ("lockgate", "lockgate-classifier")
        }
    say("making the Lockgate projects (release, key; the classifier project trains a model)")
    with database_env(env["database"].get("lockgate")):
        env["lockgate"] = (folder / "p", make_project(folder / "p"), TASK)
    env["chat_body"] = upstream_body(folder / "p")
    if "lockgate-classifier" in options.systems:
        database = env["database"].get("lockgate-classifier")
        root = make_classifier_project(folder / "c", 10, database)
        with database_env(database):
            key = lockgate(root, "keys", "create", "--name", "bench", "--role", "submitter")
        env["lockgate-classifier"] = (root, key.strip().splitlines()[-1], CLASSIFIER_TASK)
    chat = json.dumps(env["chat_body"]).encode()
    direct = Target("upstream", f"{env['upstream']}/v1/chat/completions", chat, {}, folder)
    wait_ready(f"{env['upstream']}/v1/models", upstream_process, procs.log("upstream"))
    say(f"upstream alone ({options.upstream}): {direct.smoke()[:60]}")
    direct.load(8, warmup, {})
    watch_up = {"upstream": upstream_process.pid}
    report["upstream_alone"] = {
        "c1": direct.load(1, seconds, watch_up),
        "c64": direct.load(64, seconds, watch_up),
    }
    for name in options.systems:
        say(f"{name}: starting")
        process, target = start_system(name, env, procs)
        say(f"{name}: ready; one request: {target.smoke()}")
        watch = {name: process.pid, **watch_up}
        # The upstream's own c=1 first, then the system's warm-up, so that nothing leaves the
        # system idle between its warm-up and its c=1 point.
        row: dict[str, Any] = {"upstream_c1": direct.load(1, seconds, watch_up)}
        if name.startswith("lockgate"):
            row["fsync_p50_ms"] = fsync_p50_ms(env[name][0])
            say(f"  fsync p50 on the project's disk: {row['fsync_p50_ms']} ms")
        target.load(options.warmup_concurrency, warmup, {})
        row["c1"] = target.load(1, seconds, watch)
        row["c64"] = target.load(64, seconds, watch)
        if name.startswith("lockgate"):
            database = env["database"][name] if env["database"] else None
            row["stored_decisions"] = stored_decisions(env[name][0], database)
            row["acknowledged_2xx"] = target.ok_total
        base = 0.0 if name == "lockgate-classifier" else row["upstream_c1"]["p50_ms"]
        row["added_p50_ms"] = round(row["c1"]["p50_ms"] - base, 3)
        report["systems"][name] = row
        procs.stop(process)
        say(f"{name}: stopped")
    return report


def per_cpu_s(point: dict[str, Any], name: str) -> str:
    """Answers per CPU-second the process tree used: less sensitive to other load than ok/s."""
    share = point["cpu_percent"][name] / 100
    return f"{point['ok_per_s'] / share:,.0f}" if share else "-"


def table(report: dict[str, Any]) -> str:
    up = report["upstream_alone"]
    lines = [
        "| | added p50 at c=1 | p50 at c=1 (upstream alone) | ok/s at c=64 | p50 / p99 at c=64 "
        "| errors c=1 + c=64 | CPU at c=64 (system, upstream, wrk) | ok per CPU-second |",
        "|---|---|---|---|---|---|---|---|",
        f"| upstream alone | - | {up['c1']['p50_ms']:.2f} ms | {up['c64']['ok_per_s']:,.0f} "
        f"| {up['c64']['p50_ms']:.2f} / {up['c64']['p99_ms']:.2f} ms "
        f"| {up['c1']['errors']} + {up['c64']['errors']} "
        f"| -, {up['c64']['cpu_percent']['upstream']}%, {up['c64']['cpu_percent']['wrk']}% "
        f"| {per_cpu_s(up['c64'], 'upstream')} |",
    ]
    for name, row in report["systems"].items():
        c1, c64, cpu = row["c1"], row["c64"], row["c64"]["cpu_percent"]
        lines.append(
            f"| {name} | {row['added_p50_ms']:.2f} ms | {c1['p50_ms']:.2f} ms "
            f"({row['upstream_c1']['p50_ms']:.2f}) | {c64['ok_per_s']:,.0f} "
            f"| {c64['p50_ms']:.1f} / {c64['p99_ms']:.1f} ms | {c1['errors']} + {c64['errors']} "
            f"| {cpu[name]}%, {cpu['upstream']}%, {cpu['wrk']}% | {per_cpu_s(c64, name)} |"
        )
    for name, row in report["systems"].items():
        if "stored_decisions" in row:
            lines.append(
                f"\n{name}: {row['acknowledged_2xx']:,} answers 2xx, {row['stored_decisions']:,} "
                "decisions in its database (at least as many expected); fsync p50 on its disk "
                f"{row['fsync_p50_ms']} ms"
            )
    rate = {name: row["c64"]["ok_per_s"] for name, row in report["systems"].items()}
    for other in ("portkey", "litellm"):
        if "lockgate" in rate and rate.get(other):
            lines.append(f"\nLockgate / {other} at c=64: {rate['lockgate'] / rate[other]:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load point")
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument(
        "--warmup-concurrency", type=int, default=8, help="wrk connections during the warm-up"
    )
    parser.add_argument("--systems", nargs="*", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--upstream", choices=["minimal", "fault-server"], default="minimal")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "lockgate-bench")
    parser.add_argument("--skip-install", action="store_true", help="use --cache as it is")
    parser.add_argument(
        "--workers", type=int, default=1, help="`lockgate serve --workers` (processes)"
    )
    parser.add_argument("--lockgate-cpus", help="`lockgate serve --cpus` (e.g. 0)")
    parser.add_argument(
        "--postgres-admin",
        help="a PostgreSQL URL allowed to create databases: Lockgate runs on a fresh database "
        "there (dropped afterwards) instead of its SQLite file",
    )
    options = parser.parse_args()
    report: dict[str, Any] = {"command": " ".join(["python", *sys.argv]), "machine": machine()}
    say(report["machine"])
    if not options.skip_install:
        install(options.cache)
    report["versions"] = versions(options.cache)
    report["lockgate_setup"] = {
        "workers": options.workers,
        "cpus": options.lockgate_cpus or "any",
        "database": "postgresql (fresh database)" if options.postgres_admin else "sqlite",
    }
    say(f"versions: {report['versions']}")
    with tempfile.TemporaryDirectory(prefix="gateway-compare-") as tmp:
        procs = Processes(Path(tmp))
        try:
            report.update(bench(options, Path(tmp), procs))
        finally:
            procs.stop_all()
    print(table(report))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
