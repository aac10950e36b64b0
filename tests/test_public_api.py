"""The curated public API stays sorted, importable, free of private names, and light to import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import lockgate

HEAVY = ("sqlalchemy", "numpy", "scipy", "sklearn")


def test_all_is_sorted_and_every_name_exists() -> None:
    assert lockgate.__all__ == sorted(lockgate.__all__)
    for name in lockgate.__all__:
        assert hasattr(lockgate, name), name
        assert not name.startswith("_")


def test_no_public_name_is_left_out_of_all() -> None:
    for name in lockgate.__all__:
        getattr(lockgate, name)  # a lazy name is in vars() only once it has been used
    exported = {n for n in vars(lockgate) if not n.startswith("_")}
    modules = {n for n, v in vars(lockgate).items() if type(v).__name__ == "module"}
    assert exported - modules == set(lockgate.__all__)


def test_dir_lists_every_public_name_before_first_use() -> None:
    assert set(lockgate.__all__) <= set(dir(lockgate))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        lockgate.no_such_name  # noqa: B018


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("import lockgate", id="import-lockgate"),
        pytest.param(
            "from lockgate import verify_signature, Undeliverable", id="webhook-receiver-names"
        ),
    ],
)
def test_the_public_api_loads_no_storage_or_numeric_library(statement: str) -> None:
    # A fresh interpreter: in this one the other tests have imported everything already.
    check = f"{statement}\nimport sys\nprint(sorted(set({HEAVY!r}) & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout
