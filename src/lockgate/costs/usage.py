"""How much of each budget limit is in use now: spent and held over the limit, per period and
unit. The budget alerts measure the highest share (`highest_share`); a source asks whether a
refusing limit is reached before it reads on (`reached`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from lockgate.costs.periods import period_end, period_name
from lockgate.costs.types import Ledger
from lockgate.decide.limits import PERIODS, BudgetSpec, Period

Unit = Literal["usd", "calls"]


class LedgerReader(Protocol):
    """Ledger rows by (scope, period) (`Store.costs`)."""

    def ledgers(self, keys: Iterable[tuple[str, str]]) -> list[Ledger]: ...


@dataclass(frozen=True)
class Share:
    """One limit of one scope in the current period, and how much of it is in use."""

    scope: str
    period: Period
    unit: Unit
    used: float
    """Spent and held: US dollars or calls."""
    limit: float
    resets_at: datetime

    @property
    def ratio(self) -> float:
        return self.used / self.limit

    @property
    def full(self) -> bool:
        """No further call fits: the calls are all used, or the dollars are."""
        return self.used + 1 > self.limit if self.unit == "calls" else self.used >= self.limit


def shares(ledgers: Sequence[Ledger], scope: str, spec: BudgetSpec, now: datetime) -> list[Share]:
    """Each limit of `spec` with its use in `ledgers` (the scope's rows for this day and month;
    a missing row reads as zero)."""
    by_period = {ledger.period: ledger for ledger in ledgers if ledger.scope == scope}
    found: list[Share] = []
    for period in PERIODS:
        limit = spec.limit(period)
        if limit is None:
            continue
        name = period_name(period, now)
        ledger = by_period.get(name, Ledger(scope, name))
        resets = period_end(period, now)
        if limit.usd is not None:
            used = (ledger.spent_nano + ledger.reserved_nano) / 1_000_000_000
            found.append(Share(scope, period, "usd", used, limit.usd, resets))
        if limit.calls is not None:
            calls = ledger.spent_calls + ledger.reserved_calls
            found.append(Share(scope, period, "calls", float(calls), float(limit.calls), resets))
    return found


def keys(scope: str, now: datetime) -> list[tuple[str, str]]:
    return [(scope, period_name(p, now)) for p in PERIODS]


def highest_share(
    store: LedgerReader, scope: str, spec: BudgetSpec | None, now: datetime
) -> float | None:
    """The largest share of any of `spec`'s limits in use now; None without a budget."""
    if spec is None:
        return None
    found = shares(store.ledgers(keys(scope, now)), scope, spec, now)
    return max((s.ratio for s in found), default=None)


def reached(found: Sequence[Share]) -> Share | None:
    """The full limit that frees up last (a month outlasts a day), if any is full."""
    full = [s for s in found if s.full]
    return max(full, key=lambda s: s.resets_at) if full else None
