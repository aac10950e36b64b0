"""The curated public API stays sorted, importable and free of private names."""

from __future__ import annotations

import lockgate


def test_all_is_sorted_and_every_name_exists() -> None:
    assert lockgate.__all__ == sorted(lockgate.__all__)
    for name in lockgate.__all__:
        assert hasattr(lockgate, name), name
        assert not name.startswith("_")


def test_no_public_name_is_left_out_of_all() -> None:
    exported = {n for n in vars(lockgate) if not n.startswith("_")}
    modules = {n for n, v in vars(lockgate).items() if type(v).__name__ == "module"}
    assert exported - modules == set(lockgate.__all__)
