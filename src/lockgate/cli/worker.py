"""`lockgate worker`: the delivery worker in a process of its own."""

import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from lockgate.cli.common import DatabaseOption, ProjectOption

if TYPE_CHECKING:
    import asyncio

    from lockgate.delivery.worker import DeliveryReport, DeliveryWorker


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=1,
            max=1000,
            help="Deliveries sent at the same time; default: the delivery_concurrency setting.",
            show_default=False,
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Deliver what is due now, then exit.")
    ] = False,
    project: ProjectOption = None,
    database: DatabaseOption = None,
) -> None:
    """Deliver final decisions from the outbox to the tasks' sinks (webhook, file, python).

    Run as many as you like against one database; they share the work. SIGTERM or Ctrl-C
    lets the batch in flight finish and be recorded, then the worker exits.

    Example: lockgate worker --project support --concurrency 32
    """
    import asyncio

    from lockgate.delivery.worker import DeliveryWorker
    from lockgate.monitor.logging import logging_configured
    from lockgate.monitor.metrics import Metrics
    from lockgate.settings import load_settings
    from lockgate.store import Store

    settings = load_settings(project, database_url=database)
    store = Store(settings.database_url, project_dir=settings.project_dir)
    delivery = DeliveryWorker(
        store.outbox, store.releases, settings, metrics=Metrics(), concurrency=concurrency
    )
    try:
        with logging_configured(settings, sys.stderr):
            report = asyncio.run(_work(delivery, once))
    finally:
        store.close()
    typer.echo(
        f"delivered {report.delivered}, retries scheduled {report.retried}, "
        f"dead-lettered {report.dead} (worker {delivery.worker_id})"
    )


async def _work(delivery: "DeliveryWorker", once: bool) -> "DeliveryReport":
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Put back whatever handled these signals before, not Python's defaults: a caller that
    # runs the command in-process (tests, a supervisor in Python) keeps its own handlers.
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    for signum in previous:
        loop.add_signal_handler(signum, _stopper(stop, signum))
    try:
        if once:
            return await delivery.drain(stop)
        return await delivery.run(stop)
    finally:
        for signum, handler in previous.items():
            loop.remove_signal_handler(signum)
            signal.signal(signum, handler)
        await delivery.aclose()


def _stopper(stop: "asyncio.Event", signum: int) -> Callable[[], None]:
    def handle() -> None:
        if stop.is_set():  # a second signal: leave now; the leases hand the rows back later
            os._exit(128 + signum)
        stop.set()
        typer.echo("stopping: finishing the batch in flight (again to quit now)", err=True)

    return handle
