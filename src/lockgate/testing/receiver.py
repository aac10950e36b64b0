"""A webhook receiver on loopback that does what a careful receiver must, for tests and demos.

It checks each request's signature, applies each `Idempotency-Key` once (a repeated key is
counted as a duplicate and answered 200 without being applied again) and can be told to fail::

    with Receiver(secret="s3cret") as receiver:
        receiver.fail_next(5, status=503)   # the next 5 requests get a 503
        ...                                 # point a webhook sink at receiver.url
        assert len(receiver.applied) == 1000 and receiver.bad_signatures == 0

Run it standalone: `python -m lockgate.testing.receiver --port 9000 --secret-env HOOK_SECRET`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
from collections import Counter
from typing import Any

from aiohttp import web

from lockgate.delivery.sinks.signature import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_signature,
)

_START_TIMEOUT_S = 10.0


class Receiver:
    """An aiohttp server in a background thread; every attribute read is thread-safe."""

    def __init__(
        self,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/hooks/decisions",
        delay_s: float = 0.0,
    ) -> None:
        self.secret = secret
        self.path = path
        self.delay_s = delay_s
        """Each request waits this long before it is answered (and applied)."""
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._applied: dict[str, dict[str, Any]] = {}
        self._seen: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._failures: list[int] = []
        self._always: int | None = None
        self.requests = 0
        self.duplicates = 0
        self.overlaps = 0
        """Requests that arrived while another with the same key was still being handled."""
        self.bad_signatures = 0
        self.failed = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._bound_port = 0

    # ---- behaviour

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next `count` requests with `status` (nothing applied)."""
        with self._lock:
            self._failures.extend([status] * count)

    def fail_always(self, status: int | None = 503) -> None:
        """Answer every request with `status` until called with None."""
        with self._lock:
            self._always = status

    # ---- what it saw

    @property
    def applied(self) -> dict[str, dict[str, Any]]:
        """Payloads applied, by idempotency key (each key once)."""
        with self._lock:
            return dict(self._applied)

    @property
    def seen(self) -> dict[str, int]:
        """How many requests came with each key (retries and duplicates included)."""
        with self._lock:
            return dict(self._seen)

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._bound_port}{self.path}"

    # ---- serving

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        with self._lock:
            self.requests += 1
            self._seen[key] += 1
            if self._in_flight[key]:
                self.overlaps += 1
            self._in_flight[key] += 1
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return self._answer(request, key, body)
        finally:
            with self._lock:
                self._in_flight[key] -= 1

    def _answer(self, request: web.Request, key: str, body: bytes) -> web.Response:
        signed = verify_signature(
            self.secret,
            request.headers.get(TIMESTAMP_HEADER, ""),
            body,
            request.headers.get(SIGNATURE_HEADER, ""),
        )
        with self._lock:
            if not signed:
                self.bad_signatures += 1
                return web.json_response({"error": "bad signature"}, status=401)
            status = self._failures.pop(0) if self._failures else self._always
            if status is not None:
                self.failed += 1
                return web.json_response({"error": "failing on purpose"}, status=status)
            if not key:
                return web.json_response({"error": "no Idempotency-Key"}, status=400)
            if key in self._applied:
                self.duplicates += 1
                return web.json_response({"status": "duplicate"})
            self._applied[key] = json.loads(body)
        return web.json_response({"status": "applied"})

    def start(self) -> Receiver:
        """Start serving in a background thread; returns once the port is bound."""
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        problem: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            runner: web.AppRunner | None = None
            try:
                runner = loop.run_until_complete(self._open())
            except BaseException as exc:
                problem.append(exc)
            finally:
                ready.set()
            if runner is not None:
                loop.run_forever()
                loop.run_until_complete(runner.cleanup())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="lockgate-receiver", daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT_S) or problem:
            raise RuntimeError(f"the receiver did not start: {problem[:1]}")
        return self

    async def _open(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, self._host, self._port).start()
        self._bound_port = int(runner.addresses[0][1])
        return runner

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._loop = self._thread = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="A de-duplicating webhook receiver.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--path", default="/hooks/decisions")
    parser.add_argument("--secret-env", default="HOOK_SECRET", help="variable with the secret")
    args = parser.parse_args()
    receiver = Receiver(
        os.environ.get(args.secret_env, ""), host=args.host, port=args.port, path=args.path
    )
    with receiver:
        print(f"receiving on {receiver.url}; Ctrl-C to stop", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print(f"applied {len(receiver.applied)}, duplicates {receiver.duplicates}")


if __name__ == "__main__":
    main()
