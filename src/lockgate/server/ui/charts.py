"""Server-side SVG charts for the dashboard: a line over time, gaps where a bucket has no value,
and release changes as marked vertical lines. No script: the page shows the same numbers in a
table beside each chart, and each SVG has a title and a description for screen readers."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

WIDTH = 260
HEIGHT = 110
LEFT = 40
RIGHT = 6
TOP = 8
BOTTOM = 18

MARKS = {
    "release.promote": ("P", "promoted"),
    "release.rollback": ("R", "rolled back to"),
    "release.canary_started": ("C", "canary started"),
    "release.canary_changed": ("C", "canary changed"),
    "release.canary_stopped": ("C", "canary stopped"),
    "release.canary_rollback": ("R", "canary rolled back"),
    "release.shadow_started": ("S", "shadow started"),
    "release.shadow_stopped": ("S", "shadow stopped"),
}
"""Audit actions marked on the time axis: a letter and the words of its tooltip."""


@dataclass(frozen=True)
class Point:
    start: datetime
    value: float | None


@dataclass(frozen=True)
class Mark:
    at: datetime
    letter: str
    text: str


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten at or above `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= value * (1 - 1e-9):
            return factor * power
    return 10 * power


def svg(
    chart_id: str,
    title: str,
    summary: str,
    points: Sequence[Point],
    start: datetime,
    end: datetime,
    marks: Sequence[Mark],
    shown: Callable[[float], str],
    *,
    top: float | None = None,
    time_format: str = "%H:%M",
) -> Markup:
    """One chart as inline SVG; `top` fixes the y axis's top (1.0 for a rate), else a round
    number above the largest value."""
    span = max((end - start).total_seconds(), 1.0)
    inner_w = WIDTH - LEFT - RIGHT
    inner_h = HEIGHT - TOP - BOTTOM
    values = [p.value for p in points if p.value is not None]
    ceiling = top if top is not None else nice_ceiling(max(values, default=0.0))

    def x(at: datetime) -> float:
        return LEFT + inner_w * min(max((at - start).total_seconds() / span, 0.0), 1.0)

    def y(value: float) -> float:
        return TOP + inner_h * (1 - min(max(value / ceiling, 0.0), 1.0))

    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{escape(chart_id)}-t {escape(chart_id)}-d" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-t">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-d">{escape(summary)}</desc>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        level = TOP + inner_h * (1 - fraction)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{level:.1f}" '
            f'y2="{level:.1f}"/>'
        )
        parts.append(
            f'<text class="axis" x="{LEFT - 4}" y="{level + 3:.1f}" text-anchor="end">'
            f"{escape(shown(ceiling * fraction))}</text>"
        )
    for at, anchor in ((start, "start"), (end, "end")):
        parts.append(
            f'<text class="axis" x="{x(at):.1f}" y="{HEIGHT - 5}" text-anchor="{anchor}">'
            f"{escape(at.strftime(time_format))}</text>"
        )
    for mark in marks:
        if not start <= mark.at <= end:
            continue
        mx = x(mark.at)
        near_end = mx > WIDTH - RIGHT - 12
        parts.append(
            f'<g class="mark"><title>{escape(mark.text)}</title>'
            f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{TOP}" y2="{TOP + inner_h}"/>'
            f'<text x="{mx - 2 if near_end else mx + 2:.1f}" y="{TOP + 9}" '
            f'text-anchor="{"end" if near_end else "start"}">{escape(mark.letter)}</text></g>'
        )
    # One polyline per run of buckets with a value; a lone bucket is a dot.
    runs: list[list[tuple[float, float]]] = [[]]
    for point in points:
        if point.value is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((x(point.start), y(point.value)))
    for run in runs:
        if len(run) == 1:
            parts.append(f'<circle class="line" cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="2"/>')
        elif run:
            coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
            parts.append(f'<polyline class="line" points="{coords}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
