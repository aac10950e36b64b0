"""`lockgate serve`: the HTTP API on uvicorn."""

import logging
import os
import secrets
import sys
from typing import Annotated, Any

import typer

from lockgate.cli.common import DatabaseOption, ProjectOption

FACTORY = "lockgate.server:create_app_from_environment"


def serve(
    project: ProjectOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port.")] = 8000,
    database: DatabaseOption = None,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Worker processes.")] = 1,
    cpus: Annotated[
        str | None,
        typer.Option(
            "--cpus",
            help="Run the server on these CPUs only, e.g. 0 or 0,2-3 (Linux). One worker on "
            "one CPU spends less time handing Python's lock between cores.",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API under /v1/ and the review pages under /ui/ (sign in with a
    reviewer's API key). SIGTERM stops taking new requests and lets running ones finish.

    Example: lockgate serve --project support --host 0.0.0.0 --port 8000 --workers 2
    """
    if cpus is not None:
        _run_on(cpus)
    # Imported here so that other commands start without loading the web stack.
    import uvicorn

    from lockgate.server import PROJECT_ENV, create_app, protocol
    from lockgate.server.logs import configure_server_logging
    from lockgate.settings import load_settings
    from lockgate.store import Store

    settings = load_settings(project, database_url=database)
    # Every line, uvicorn's included, is redacted JSON on stderr; the access log has no query
    # strings. (`log_config=None`: uvicorn installs no handlers of its own.)
    configure_server_logging(settings, sys.stderr)
    # Migrate once, before any worker starts.
    Store(settings.database_url, project_dir=settings.project_dir).close()
    logging.getLogger("lockgate.serve").info(_where(host, port))
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        # uvicorn's httptools protocol, with decision requests answered without the ASGI
        # stack where the installed uvicorn allows it (`server.protocol`).
        "http": protocol.PATH if protocol.supported() else "httptools",
        "timeout_graceful_shutdown": int(settings.shutdown_timeout_seconds),
        "proxy_headers": True,
        "server_header": False,
        "log_config": None,
    }
    if workers == 1:
        uvicorn.run(create_app(settings, whole_process=True), **options)
        return
    # Worker processes build their own app from the same settings, passed by environment.
    os.environ[PROJECT_ENV] = str(settings.project_dir)
    os.environ["LOCKGATE_DATABASE_URL"] = settings.database_url
    # Review-page sessions must verify on every worker: share one signing secret among them
    # (an operator's own LOCKGATE_SESSION_SECRET wins, and survives restarts).
    os.environ.setdefault("LOCKGATE_SESSION_SECRET", secrets.token_urlsafe(32))
    uvicorn.run(FACTORY, factory=True, workers=workers, **options)


def _run_on(cpus: str) -> None:
    """Keep this process, its threads and its worker processes on `cpus` (a list such as
    `0,2-3`); a one-line error for a list that is not one or names CPUs it may not use."""
    from lockgate.errors import InputError

    chosen = _cpu_list(cpus)
    if chosen is None:
        raise InputError(
            f"--cpus: {cpus!r} is not a list of CPUs",
            hint="give CPU numbers and ranges, e.g. --cpus 0 or --cpus 0,2-3",
        )
    if not hasattr(os, "sched_setaffinity"):
        raise InputError("--cpus works on Linux only", hint="leave --cpus out on this system")
    allowed = os.sched_getaffinity(0)
    if not chosen <= allowed:
        outside = ",".join(str(c) for c in sorted(chosen - allowed))
        usable = ",".join(str(c) for c in sorted(allowed))
        raise InputError(
            f"--cpus: CPU {outside} is not one this process may use",
            hint=f"choose among {usable}",
        )
    os.sched_setaffinity(0, chosen)


def _cpu_list(text: str) -> set[int] | None:
    """`0,2-3` as {0, 2, 3}; None if it is not such a list."""
    chosen: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            return None
        low, high = int(first), int(last) if dash else int(first)
        if high < low or high > 4095:
            return None
        chosen.update(range(low, high + 1))
    return chosen


def _where(host: str, port: int) -> str:
    """Where a person finds the API and the review pages once the server runs."""
    if port == 0:
        return "serving the API under /v1/ and the review pages under /ui/ (port: see below)"
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
    return f"serving the API at {base}/v1/ and the review pages at {base}/ui/"
