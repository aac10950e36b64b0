"""The router's sticky split: which idempotency keys a task's canary release decides.

A key's bucket is a stable hash of the task and the key (sha256 -> 0..9999), so the same key
always lands on the same release while the canary share stays the same, on every replica.
"""

from __future__ import annotations

import hashlib

BUCKETS = 10_000


def bucket(task: str, key: str) -> int:
    """The key's sticky bucket, 0..9999."""
    digest = hashlib.sha256(f"{task}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_canary(task: str, key: str, percent: float) -> bool:
    """True when the canary (deciding `percent` % of keys) decides this key."""
    return bucket(task, key) < round(percent * BUCKETS / 100)
