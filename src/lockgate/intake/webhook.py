"""The webhook source: systems that push (a CRM, a ticketing tool) POST JSON to
`/v1/intake/{source}`, signed like Lockgate's own webhooks: `X-Lockgate-Timestamp` (Unix
seconds) and `X-Lockgate-Signature: sha256=HEX`, an HMAC-SHA256 with the shared secret over
"{timestamp}.{body}". A request older (or newer) than `tolerance_s` is refused: a captured
request cannot be replayed later, and one replayed within the window is a duplicate by its key.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from lockgate.decide.sources import WebhookSource
from lockgate.delivery.sinks.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from lockgate.errors import InputError, Unauthorized, Unavailable
from lockgate.intake.runner import Incoming

DELIVERY_HEADER = "Idempotency-Key"
_DELIVERY = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


def verify(
    spec: WebhookSource,
    env: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> None:
    """Raise unless the request is signed with the source's secret within the window."""
    secret = env.get(spec.secret_env, "")
    if not secret:
        raise Unavailable(
            f"source {spec.name} cannot check signatures: its secret is not configured",
            hint=f"set the environment variable {spec.secret_env} on the server",
            retry_after_seconds=60,
        )
    timestamp = headers.get(TIMESTAMP_HEADER.lower(), "")
    signature = headers.get(SIGNATURE_HEADER.lower(), "")
    if not timestamp or not signature:
        raise Unauthorized(
            "the push is not signed",
            hint=f"send {TIMESTAMP_HEADER} (Unix seconds) and {SIGNATURE_HEADER}: "
            'sha256=HMAC-SHA256(secret, "{timestamp}.{body}") in hex',
        )
    current = time.time() if now is None else now
    if not verify_signature(
        secret, timestamp, body, signature, tolerance_s=spec.tolerance_s, now=current
    ):
        raise Unauthorized(
            "the signature does not match, or the timestamp is outside the replay window",
            hint="sign the exact body with the shared secret; the replay window is "
            f"{spec.tolerance_s:g} s",
        )


def records(headers: Mapping[str, str], body: bytes, max_items: int) -> list[Incoming]:
    """The pushed records: one JSON object, or an array of at most `max_items` objects. The
    delivery id is the `Idempotency-Key` header, else the body's hash."""
    delivery = headers.get(DELIVERY_HEADER.lower()) or hashlib.sha256(body).hexdigest()[:32]
    if not _DELIVERY.match(delivery):
        raise InputError(f"{DELIVERY_HEADER} must be 1-200 printable characters")
    try:
        value: Any = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise InputError(
            "the body is not valid JSON, or nested too deeply",
            hint="send one JSON object or an array of objects",
        ) from None
    items = value if isinstance(value, list) else [value]
    if not items:
        raise InputError("the array is empty", hint="send at least one record")
    if len(items) > max_items:
        raise InputError(f"{len(items)} records in one push; at most {max_items} allowed")
    single = not isinstance(value, list)
    out = []
    for n, item in enumerate(items, start=1):
        key = delivery if single else f"{delivery}:{n}"
        position = f"delivery {delivery}" if single else f"delivery {delivery} item {n}"
        context = {"delivery": key}
        if isinstance(item, dict):
            out.append(Incoming(position, item, context=context))
        else:
            out.append(
                Incoming(position, None, f"item {n} is not a JSON object", context, unreadable=item)
            )
    return out
