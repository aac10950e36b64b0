"""The `webhook` sink: POST the decision as signed JSON."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from lockgate.delivery.sinks.base import DeliveryFailed, SinkContext
from lockgate.delivery.sinks.signature import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    payload_body,
    sign,
)
from lockgate.delivery.types import OutboxRow

if TYPE_CHECKING:
    # The task-file spec types pull pydantic and YAML; here they are only annotations.
    from lockgate.decide.task import WebhookSinkSpec

RETRYABLE_4XX = frozenset({408, 409, 429})


class WebhookSink:
    """POST the payload as JSON, signed; 2xx delivers, 4xx (but 408/409/429) is permanent."""

    def __init__(self, spec: WebhookSinkSpec, context: SinkContext) -> None:
        self.spec = spec
        self._environ = context.environ
        self._http = context.http

    @classmethod
    def from_spec(cls, spec: WebhookSinkSpec, context: SinkContext) -> WebhookSink:
        return cls(spec, context)

    async def send(self, row: OutboxRow) -> None:
        secret = self._environ.get(self.spec.secret_env, "")
        if not secret:
            raise DeliveryFailed(
                f"the environment variable {self.spec.secret_env} (the webhook's signing secret) "
                "is not set for the delivery worker"
            )
        import aiohttp

        body = payload_body(row.payload)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: row.decision_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        }
        try:
            async with self._http.session().post(
                self.spec.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.spec.timeout_s),
                allow_redirects=False,
            ) as response:
                status = response.status
                await response.read()
        except TimeoutError:
            raise DeliveryFailed(f"no answer within {self.spec.timeout_s:g}s") from None
        except aiohttp.ClientError as exc:
            raise DeliveryFailed(f"connection failed: {type(exc).__name__}") from None
        if 200 <= status < 300:
            return
        permanent = 400 <= status < 500 and status not in RETRYABLE_4XX
        raise DeliveryFailed(f"HTTP {status}", permanent=permanent)

    async def aclose(self) -> None:
        """The pool belongs to the worker, which closes it."""
