"""The garbage collector of a `lockgate serve` process, set for a long-running server.

Deciding allocates and frees thousands of small objects per request, nearly all freed by
reference counting. With CPython's default thresholds the cyclic collector still ran every
700 net allocations, and each run of the older generations walked the 200,000 objects made at
start-up (modules, the app, loaded models) that live as long as the process: measured
in-process at 64 concurrent requests, collections took about a third of the event loop's
time per decision.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Net allocations between collections of the youngest generation (CPython's default: 700)."""


def settle() -> None:
    """Collect once, then freeze every object alive now (the collector never scans them
    again; they stay in memory, as they would anyway) and collect the youngest generation
    less often. For a process that only serves: call it once start-up is over."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
