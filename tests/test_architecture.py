"""The import directions of docs/architecture.md hold: every import of every module under
src/lockgate (at module level, inside functions and under TYPE_CHECKING alike) is read from
the source with `ast` and checked against the rules below."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

DOMAIN = (
    "decide",
    "providers",
    "rollout",
    "review",
    "delivery",
    "evals",
    "monitor",
    "intake",
    "watch",
    "costs",
)
"""The domain packages: each keeps its own rules and reaches storage through Protocols."""

STORE_MAY_IMPORT = (
    "lockgate.store",
    "lockgate.errors",
    "lockgate.security",
    "lockgate.waits",
    "lockgate.jsontext",
    "lockgate.files",
    # The domain types the store persists, and nothing else of the domains: the decision and
    # release records, and each domain's `types` module.
    "lockgate.decide.decision",
    "lockgate.rollout.release",
    *(f"lockgate.{name}.types" for name in DOMAIN),
)


@dataclass(frozen=True)
class Rule:
    name: str
    applies_to: tuple[str, ...]
    """Module prefixes the rule constrains (`lockgate.store` covers the package and below)."""
    forbidden: tuple[str, ...] = ()
    only: tuple[str, ...] | None = None
    """When set, every `lockgate.*` import must fall under one of these prefixes."""
    exempt: tuple[str, ...] = ()


RULES = (
    Rule(
        "store imports no domain package but the types it persists",
        applies_to=("lockgate.store",),
        only=STORE_MAY_IMPORT,
    ),
    Rule(
        "providers import nothing from store, server, cli or the runtime",
        applies_to=("lockgate.providers",),
        forbidden=("lockgate.store", "lockgate.server", "lockgate.cli", "lockgate.runtime"),
    ),
    Rule(
        "nothing below server imports server or cli",
        applies_to=("lockgate",),
        forbidden=("lockgate.server", "lockgate.cli"),
        exempt=("lockgate.server", "lockgate.cli", "lockgate.__main__"),
    ),
    Rule(
        "domain packages reach storage through Protocols, not the store or the runtime",
        applies_to=tuple(f"lockgate.{name}" for name in DOMAIN),
        forbidden=("lockgate.store", "lockgate.runtime"),
    ),
    Rule(
        "decide is the innermost domain: it imports no other domain but providers and monitor",
        applies_to=("lockgate.decide",),
        forbidden=tuple(
            f"lockgate.{name}"
            for name in (
                "rollout",
                "review",
                "delivery",
                "evals",
                "intake",
                "watch",
                "costs",
                "demo",
                "testing",
            )
        ),
    ),
)


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> Iterator[tuple[int, list[str]]]:
    """(line, modules) for every import statement in the file. `from X import y` names X and
    X.y, so `from lockgate import server` counts as importing lockgate.server."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, [alias.name]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, [base, *(f"{base}.{alias.name}" for alias in node.names)]


def _breaks(rule: Rule, names: list[str]) -> str | None:
    """The imported module that breaks `rule`, if any."""
    ours = [n for n in names if _under(n, ("lockgate",)) and n != "lockgate"]
    for name in ours:
        if _under(name, rule.forbidden):
            return name
    if rule.only is not None and ours and not any(_under(n, rule.only) for n in ours):
        return ours[0]
    return None


def violations(src: Path) -> list[str]:
    """Every import under `src/lockgate` that breaks a rule, as `path:line: rule (import)`."""
    found = []
    for path in sorted((src / "lockgate").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        module = _module_name(path, src)
        rules = [r for r in RULES if _under(module, r.applies_to) and not _under(module, r.exempt)]
        for line, names in _imports(path, module):
            for rule in rules:
                bad = _breaks(rule, names)
                if bad is not None:
                    where = path.relative_to(src.parent)
                    found.append(f"{where}:{line}: {rule.name} (imports {bad})")
    return found


def test_imports_point_inward() -> None:
    assert violations(SRC) == []


def test_every_package_is_on_the_map() -> None:
    text = (SRC.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    top = sorted(
        p.stem if p.is_file() else p.name
        for p in (SRC / "lockgate").iterdir()
        if (p.suffix == ".py" and not p.name.startswith("_")) or (p / "__init__.py").exists()
    )
    missing = [name for name in top if f"`{name}" not in text]
    assert missing == [], f"docs/architecture.md does not name {missing}"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "src"
    for name, text in {"lockgate/__init__.py": "", **files}.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return src


@pytest.mark.parametrize(
    ("files", "rule"),
    [
        pytest.param(
            {"lockgate/store/repo.py": "from lockgate.review.service import ReviewService\n"},
            "store imports no domain package",
            id="store-imports-a-domain-service",
        ),
        pytest.param(
            {"lockgate/providers/x.py": "def f():\n    from lockgate.store import Store\n"},
            "providers import nothing",
            id="provider-imports-store-inside-a-function",
        ),
        pytest.param(
            {"lockgate/review/x.py": "from lockgate import server\n"},
            "nothing below server",
            id="domain-imports-server",
        ),
        pytest.param(
            {"lockgate/evals/x.py": "from ..cli import main\n"},
            "nothing below server",
            id="relative-import-of-cli",
        ),
        pytest.param(
            {"lockgate/rollout/x.py": "import lockgate.runtime\n"},
            "domain packages reach storage through Protocols",
            id="domain-imports-runtime",
        ),
        pytest.param(
            {"lockgate/decide/x.py": "from lockgate.review.types import Verdict\n"},
            "decide is the innermost domain",
            id="decide-imports-review",
        ),
    ],
)
def test_a_forbidden_import_is_named(tmp_path: Path, files: dict[str, str], rule: str) -> None:
    found = violations(_tree(tmp_path, files))
    assert any(rule in line for line in found), found
    assert all(line.startswith(f"src/{next(iter(files))}:") for line in found), found


def test_allowed_imports_pass(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "lockgate/store/repo.py": "from lockgate.review.types import Verdict\n",
            "lockgate/server/app.py": "from lockgate.cli import main\n",
            "lockgate/review/x.py": "from lockgate.decide.decision import Decision\n",
        },
    )
    assert violations(src) == []
