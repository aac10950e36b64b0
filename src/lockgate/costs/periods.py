"""Budget periods: UTC calendar days and months, named by their date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lockgate.decide.limits import Period


def day_of(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%d")


def month_of(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m")


def period_name(period: Period, now: datetime) -> str:
    return day_of(now) if period == "day" else month_of(now)


def period_start(period: Period, now: datetime) -> datetime:
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


def period_end(period: Period, now: datetime) -> datetime:
    """When the period holding `now` ends (the next one starts)."""
    start = period_start(period, now)
    if period == "day":
        return start + timedelta(days=1)
    return (start + timedelta(days=32)).replace(day=1)
