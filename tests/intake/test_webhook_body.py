"""A pushed body nested deeper than the JSON parser goes is refused as bad input, not a 500."""

from __future__ import annotations

import pytest

from lockgate.errors import InputError
from lockgate.intake.webhook import records


def test_a_body_nested_too_deeply_is_bad_input() -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(InputError, match="nested too deeply"):
        records({}, body, max_items=10)


def test_an_object_and_an_array_of_objects_become_records() -> None:
    (one,) = records({"idempotency-key": "d-1"}, b'{"text": "hi"}', max_items=10)
    assert one.context == {"delivery": "d-1"}
    two = records({"idempotency-key": "d-2"}, b'[{"text": "a"}, 5]', max_items=10)
    assert [r.context["delivery"] for r in two] == ["d-2:1", "d-2:2"]
