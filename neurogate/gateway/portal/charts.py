"""Server-rendered SVG charts for the portal: no script, no inline style.

Each chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` (its short text
alternative; the page puts a table of the same figures beside it), colours from classes
in ``data.css`` (``series-0`` ... ``series-7``), and every drawn value carries its own
``<title>`` so that hovering or a screen reader's object navigation reads the figure.
Callers pass already-translated words: this module formats nothing for a locale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import count

import numpy as np
from markupsafe import Markup, escape
from numpy.typing import NDArray

SERIES_CLASSES = 8  # series-0 .. series-7 in data.css; later series reuse them
_ids = count()


@dataclass(frozen=True)
class LinearScale:
    """Maps values in ``domain`` linearly onto ``extent`` (pixels; may run downwards)."""

    domain: tuple[float, float]
    extent: tuple[float, float]

    def __call__(self, value: float) -> float:
        lo, hi = self.domain
        a, b = self.extent
        if hi == lo:
            return (a + b) / 2
        return a + (value - lo) * (b - a) / (hi - lo)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 or 10 times a power of ten that is >= ``value`` (> 0)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-12):
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if abs(x - round(x)) > 1e-9 else str(round(x))


def _open(width: int, height: int, title: str, desc: str, css: str) -> tuple[str, list[str]]:
    ident = f"chart-{next(_ids)}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {css}" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="{ident}-title {ident}-desc" focusable="false">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(desc)}</desc>',
    ]
    return ident, parts


def daily_bars(*, days: Sequence[date], series: Sequence[tuple[str, Sequence[int]]],
               title: str, desc: str, empty_message: str,
               day_label: Callable[[date], str], value_label: Callable[[str, date, int], str],
               number: Callable[[int], str] = str, width: int = 720, height: int = 300
               ) -> Markup:
    """Grouped bars: one series (``<g class="series">``) per app, one bar per day.

    ``series`` pairs a name with one value per day of ``days``. With no series, or only
    zeros, the chart shows ``empty_message`` instead of bars. ``value_label(name, day, n)``
    is the words of one bar's ``<title>``; ``day_label`` and ``number`` format the axes.
    """
    _, parts = _open(width, height, title, desc, "chart-bars")
    total = sum(sum(values) for _, values in series)
    if not days or not series or total == 0:
        parts.append(f'<text class="chart-empty" x="{width // 2}" y="{height // 2}" '
                     f'text-anchor="middle">{escape(empty_message)}</text></svg>')
        return Markup("".join(parts))
    left, right, top, bottom = 64, 12, 12, 64
    legend_h = 20 * math.ceil(len(series) / 3)
    plot_bottom = height - bottom - legend_h
    # Counts: an axis of at least 5 in five steps keeps every tick a whole number.
    top_value = max(5.0, nice_ceiling(max(max(values) for _, values in series)))
    y = LinearScale((0.0, top_value), (float(plot_bottom), float(top)))
    slot = (width - left - right) / len(days)
    bar = max(1.0, (slot * 0.8) / len(series))
    parts.append('<g class="axis">')
    for i in range(6):
        value = top_value * i / 5
        py = y(value)
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" '
                     f'y1="{_f(py)}" y2="{_f(py)}"/>')
        parts.append(f'<text class="tick" x="{left - 6}" y="{_f(py + 4)}" '
                     f'text-anchor="end">{escape(number(round(value)))}</text>')
    every = max(1, math.ceil(len(days) / 10))
    for i, day in enumerate(days):
        if i % every == 0:
            px = left + slot * (i + 0.5)
            parts.append(f'<text class="tick" x="{_f(px)}" y="{plot_bottom + 18}" '
                         f'text-anchor="middle">{escape(day_label(day))}</text>')
    parts.append("</g>")
    for k, (name, values) in enumerate(series):
        parts.append(f'<g class="series series-{k % SERIES_CLASSES}" '
                     f'data-series="{escape(name)}">')
        for i, (day, value) in enumerate(zip(days, values, strict=True)):
            px = left + slot * i + slot * 0.1 + bar * k
            py = y(value)
            parts.append(
                f'<rect x="{_f(px)}" y="{_f(py)}" width="{_f(bar)}" '
                f'height="{_f(plot_bottom - py)}" data-day="{day.isoformat()}" '
                f'data-value="{value}"><title>{escape(value_label(name, day, value))}</title>'
                "</rect>")
        parts.append("</g>")
    parts.append('<g class="legend">')
    for k, (name, _) in enumerate(series):
        lx = left + (k % 3) * ((width - left) / 3)
        ly = height - legend_h - 8 + 20 * (k // 3) + 20
        parts.append(f'<rect class="swatch series-{k % SERIES_CLASSES}" x="{_f(lx)}" '
                     f'y="{ly - 11}" width="12" height="12"/>'
                     f'<text x="{_f(lx + 18)}" y="{ly}">{escape(name)}</text>')
    parts.append("</g></svg>")
    return Markup("".join(parts))


def _decimate(t: NDArray[np.float64], v: NDArray[np.float64], points: int
              ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    if t.size <= points:
        return t, v
    step = math.ceil(t.size / points)
    return t[::step], v[::step]


def traces(*, t: NDArray[np.float64], rows: Sequence[tuple[str, NDArray[np.float64]]],
           t_range: tuple[float, float], title: str, desc: str, empty_message: str,
           stacked: bool = True, markers: bool = False, x_label: str = "",
           width: int = 720, height: int = 300, max_points: int = 600) -> Markup:
    """Lines over time: stacked traces (EEG channels, each in its own band on one common
    amplitude scale), or lines sharing one y axis (an index), with dots when ``markers``.

    ``t`` (seconds) is shared by every row of ``rows`` (label, values of the same length).
    """
    _, parts = _open(width, height, title, desc, "chart-traces")
    if t.size == 0 or not rows:
        parts.append(f'<text class="chart-empty" x="{width // 2}" y="{height // 2}" '
                     f'text-anchor="middle">{escape(empty_message)}</text></svg>')
        return Markup("".join(parts))
    left, right, top, bottom = 64, 12, 8, 36
    x = LinearScale(t_range, (float(left), float(width - right)))
    parts.append('<g class="axis">')
    first, last = t_range
    for second in range(math.ceil(first), math.floor(last) + 1):
        px = x(second)
        parts.append(f'<line class="grid" x1="{_f(px)}" x2="{_f(px)}" y1="{top}" '
                     f'y2="{height - bottom}"/><text class="tick" x="{_f(px)}" '
                     f'y="{height - bottom + 16}" text-anchor="middle">'
                     f'{second - math.ceil(first)}</text>')
    if x_label:
        parts.append(f'<text class="axis-label" x="{(left + width - right) // 2}" '
                     f'y="{height - 4}" text-anchor="middle">{escape(x_label)}</text>')
    parts.append("</g>")
    values = np.concatenate([np.asarray(v, dtype=float).ravel() for _, v in rows])
    if stacked:
        band = (height - top - bottom) / len(rows)
        amplitude = float(np.percentile(np.abs(values), 99.5)) or 1.0
    else:
        lo, hi = float(values.min()), float(values.max())
        pad = (hi - lo) * 0.1 or max(abs(hi), 1.0) * 0.1
        y = LinearScale((lo - pad, hi + pad), (float(height - bottom), float(top)))
    for k, (label, row) in enumerate(rows):
        row = np.asarray(row, dtype=float)
        if stacked:
            centre = top + band * (k + 0.5)
            y = LinearScale((-amplitude, amplitude), (centre + band / 2, centre - band / 2))
            parts.append(f'<text class="row-label" x="{left - 6}" y="{_f(centre + 4)}" '
                         f'text-anchor="end">{escape(label)}</text>')
        tt, vv = _decimate(t, row, max_points)
        points = " ".join(f"{_f(x(a))},{_f(y(b))}" for a, b in zip(tt, vv, strict=True))
        parts.append(f'<g class="series series-{k % SERIES_CLASSES}" '
                     f'data-series="{escape(label)}" data-points="{row.size}">'
                     f'<polyline class="line" points="{points}"/>')
        if markers:
            for a, b in zip(tt, vv, strict=True):
                parts.append(f'<circle class="dot" cx="{_f(x(a))}" cy="{_f(y(b))}" r="3">'
                             f"<title>{escape(label)}: {b:.3g}</title></circle>")
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))


__all__ = ["SERIES_CLASSES", "LinearScale", "daily_bars", "nice_ceiling", "traces"]
