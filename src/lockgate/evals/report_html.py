"""A self-contained HTML report of an eval run: headline figures, the confusion matrix, the
coverage-versus-accuracy curve and the reliability diagram, drawn as inline SVG (no scripts,
no external assets)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:70rem}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table.figures td,table.figures th{padding:.2rem .8rem;text-align:left;border-bottom:1px solid #ddd}
svg text{font-size:10px;fill:#333}.note{color:#666;font-size:.9rem}
"""


def render(
    *,
    title: str,
    metrics: Mapping[str, Any],
    report: Mapping[str, Any],
    threshold: float | None = None,
) -> str:
    """The report as one HTML document."""
    rows = "".join(
        f"<tr><th>{escape(key)}</th><td>{escape(_fmt(metrics.get(key)))}</td></tr>"
        for key in (
            "n",
            "accuracy",
            "macro_f1",
            "coverage",
            "auto_accuracy",
            "review_share",
            "failed",
            "cost",
            "cost_per_decision",
            "latency_p50_ms",
            "latency_p95_ms",
            "schema_validity",
            "calibration_error",
        )
        if key in metrics
    )
    confusion = report.get("confusion")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p class='note'>Scored field: {escape(str(report.get('field', '')))}; dataset hash "
        f"{escape(str(report.get('dataset_hash', ''))[:12])}; repeats: "
        f"{len(report.get('runs', [])) or 1} (the worst value of each figure is shown).</p>",
        f"<table class='figures'>{rows}</table>",
        "<h2>Confusion matrix</h2>",
        "<p class='note'>Rows: the expected label; columns: the decided label. Green cells are "
        "right, red cells wrong; the darker, the larger the share of the row.</p>",
        confusion_svg(confusion)
        if confusion
        else "<p class='note'>Not a categorical field: no confusion matrix.</p>",
        "<h2>Coverage versus accuracy</h2>",
        "<p class='note'>Each point is a confidence threshold: the share of inputs it automates "
        "and the accuracy on those.</p>",
        coverage_svg(report.get("coverage_curve", []), threshold),
        "<h2>Reliability diagram</h2>",
        "<p class='note'>Accuracy per confidence bin; a calibrated model's bars touch the "
        "diagonal.</p>",
        reliability_svg(report.get("reliability", [])),
        "</body></html>",
    ]
    return "\n".join(parts)


def confusion_svg(confusion: Mapping[str, Any]) -> str:
    labels: Sequence[str] = confusion["labels"]
    matrix: Sequence[Sequence[int]] = confusion["matrix"]
    n = max(len(labels), 1)
    cell = max(6, min(28, 640 // n))
    named = n <= 40
    margin = 120 if named else 20
    size = margin + cell * n
    out = [
        f"<svg id='confusion-matrix' xmlns='http://www.w3.org/2000/svg' width='{size + 10}' "
        f"height='{size + 10}' role='img' aria-label='confusion matrix'>"
    ]
    for i, truth in enumerate(labels):
        total = sum(matrix[i]) or 1
        if named:
            y = margin + cell * i + cell * 0.7
            out.append(
                f"<text x='{margin - 4}' y='{y:.1f}' text-anchor='end'>{escape(truth)}</text>"
            )
            x = margin + cell * i + cell * 0.7
            out.append(
                f"<text x='{x:.1f}' y='{margin - 4}' transform='rotate(-60 {x:.1f} {margin - 4})'>"
                f"{escape(truth)}</text>"
            )
        for j, decided in enumerate(labels):
            count = matrix[i][j]
            share = count / total
            colour = "46,125,50" if i == j else "198,40,40"
            out.append(
                f"<rect x='{margin + cell * j}' y='{margin + cell * i}' width='{cell}' "
                f"height='{cell}' fill='rgba({colour},{0.08 + 0.92 * share if count else 0:.3f})' "
                f"stroke='#eee'><title>expected {escape(truth)}, decided {escape(decided)}: "
                f"{count}</title></rect>"
            )
    out.append("</svg>")
    return "".join(out)


def _axes(out: list[str], x0: int, y0: int, w: int, h: int, x_label: str, y_label: str) -> None:
    out.append(f"<rect x='{x0}' y='{y0 - h}' width='{w}' height='{h}' fill='none' stroke='#999'/>")
    for k in range(6):
        share = k / 5
        out.append(
            f"<text x='{x0 + w * share:.0f}' y='{y0 + 14}' text-anchor='middle'>{share:.1f}</text>"
        )
        out.append(
            f"<text x='{x0 - 6}' y='{y0 - h * share + 3:.0f}' text-anchor='end'>{share:.1f}</text>"
        )
    out.append(f"<text x='{x0 + w / 2:.0f}' y='{y0 + 30}' text-anchor='middle'>{x_label}</text>")
    out.append(
        f"<text x='{x0 - 34}' y='{y0 - h / 2:.0f}' text-anchor='middle' "
        f"transform='rotate(-90 {x0 - 34} {y0 - h / 2:.0f})'>{y_label}</text>"
    )


def coverage_svg(curve: Sequence[Sequence[Any]], threshold: float | None = None) -> str:
    x0, y0, w, h = 50, 330, 480, 300
    out = [
        "<svg id='coverage-curve' xmlns='http://www.w3.org/2000/svg' width='560' height='370' "
        "role='img' aria-label='coverage versus accuracy'>"
    ]
    _axes(out, x0, y0, w, h, "coverage (share automated)", "accuracy on automated")
    points = [(t, c, a) for t, c, a in curve if c and a is not None]
    path = " ".join(f"{x0 + w * c:.1f},{y0 - h * a:.1f}" for _, c, a in points)
    if path:
        out.append(f"<polyline points='{path}' fill='none' stroke='#1565c0' stroke-width='2'/>")
    for t, c, a in points:
        mark = threshold is not None and abs(t - threshold) < 0.01
        out.append(
            f"<circle cx='{x0 + w * c:.1f}' cy='{y0 - h * a:.1f}' r='{5 if mark else 2.5}' "
            f"fill='{'#c62828' if mark else '#1565c0'}'><title>threshold {t:.2f}: coverage "
            f"{c:.1%}, accuracy {a:.1%}</title></circle>"
        )
    out.append("</svg>")
    return "".join(out)


def reliability_svg(bins: Sequence[Mapping[str, Any]]) -> str:
    x0, y0, w, h = 50, 330, 480, 300
    out = [
        "<svg id='reliability-diagram' xmlns='http://www.w3.org/2000/svg' width='560' "
        "height='370' role='img' aria-label='reliability diagram'>"
    ]
    _axes(out, x0, y0, w, h, "confidence", "accuracy")
    out.append(
        f"<line x1='{x0}' y1='{y0}' x2='{x0 + w}' y2='{y0 - h}' stroke='#999' "
        "stroke-dasharray='4 3'/>"
    )
    for b in bins:
        if not b.get("count") or b.get("accuracy") is None:
            continue
        x = x0 + w * float(b["lower"])
        width = w * (float(b["upper"]) - float(b["lower"]))
        height = h * float(b["accuracy"])
        out.append(
            f"<rect x='{x + 1:.1f}' y='{y0 - height:.1f}' width='{width - 2:.1f}' "
            f"height='{height:.1f}' fill='rgba(21,101,192,.6)'><title>confidence "
            f"{b['lower']:.1f}-{b['upper']:.1f}: {b['count']} decisions, accuracy "
            f"{b['accuracy']:.1%}, mean confidence {b['confidence']:.1%}</title></rect>"
        )
    out.append("</svg>")
    return "".join(out)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
