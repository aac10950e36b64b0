"""`lockgate demo` as a first-time user reads it: honest figures and where to go next."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.kit import lockgate


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_demo_says_batch_latency_is_per_chunk_and_points_to_the_review_pages(
    tmp_path: Path,
) -> None:
    shown = lockgate("demo", "--dir", "d", "--tickets", "200", "--train", "400", cwd=tmp_path)
    text = shown.stdout
    assert "decisions/s; in a batch a chunk of records is decided at once" in text
    assert re.search(r"p50 [\d.]+ ms, p95 [\d.]+ ms per chunk", text)
    nxt = text[text.index("Next") :]
    assert "lockgate keys create --name alice --role reviewer" in nxt
    waiting = re.search(r"waiting review\s+(\d+)", text)
    assert waiting is not None
    assert (
        "lockgate serve   # then open http://127.0.0.1:8000/ui/, sign in with that key and "
        f"review the {waiting[1]} waiting tickets"
    ) in nxt
