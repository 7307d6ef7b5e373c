"""Charts as inline SVG computed on the server: stacked bars and lines over time buckets, with round axis
ticks. No script draws them (the CSP allows none but the console's own), and each chart's numbers are also
given as a table, for screen readers and for copying.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

WIDTH, HEIGHT = 720.0, 240.0
LEFT, RIGHT, TOP, BOTTOM = 56.0, 12.0, 12.0, 34.0
MAX_X_LABELS = 12
PALETTE = 6  # series classes s0 .. s5 in the stylesheet


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float | None, ...]  # one per bucket; None: no value (a gap in a line)
    css: str = "s0"


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    unit: str
    labels: tuple[str, ...]  # one per bucket
    series: tuple[Series, ...]
    kind: Literal["bars", "lines"] = "bars"


@dataclass
class Drawn:
    """What the template draws: rectangles, polylines, ticks and labels, in the SVG's own units."""

    chart: Chart
    width: float = WIDTH
    height: float = HEIGHT
    rects: list[tuple[float, float, float, float, str, str]] = field(default_factory=list)  # x, y, w, h, css, title
    lines: list[tuple[str, str]] = field(default_factory=list)  # points, css
    dots: list[tuple[float, float, str, str]] = field(default_factory=list)  # x, y, css, title
    y_ticks: list[tuple[float, str]] = field(default_factory=list)  # y, label
    x_labels: list[tuple[float, str]] = field(default_factory=list)  # x, label
    top: float = 0.0

    @property
    def plot(self) -> tuple[float, float, float, float]:
        return LEFT, TOP, self.width - LEFT - RIGHT, self.height - TOP - BOTTOM


def nice_top(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at least ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value)


def short(value: float) -> str:
    """A tick's label: 1.5k, 2M, 0.25."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:g}{suffix}"
    return f"{value:g}"


def _y(top: float, value: float) -> float:
    return round(TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top), 1)


def draw(chart: Chart) -> Drawn:
    out = Drawn(chart)
    n = len(chart.labels)
    if n == 0:
        return out
    _, _, plot_w, _ = out.plot
    slot = plot_w / n
    if chart.kind == "bars":
        totals = [sum(s.values[i] or 0.0 for s in chart.series) for i in range(n)]
        out.top = nice_top(max(totals, default=0.0))
    else:
        out.top = nice_top(max((v for s in chart.series for v in s.values if v is not None), default=0.0))
    out.y_ticks = [(_y(out.top, out.top * k / 4), short(out.top * k / 4)) for k in range(5)]
    every = max(1, math.ceil(n / MAX_X_LABELS))
    out.x_labels = [(round(LEFT + (i + 0.5) * slot, 1), chart.labels[i]) for i in range(0, n, every)]
    if chart.kind == "bars":
        base = [0.0] * n
        bar_w = round(max(slot * 0.7, 1.0), 1)
        for s in chart.series:
            for i, v in enumerate(s.values):
                if not v:
                    continue
                y_top, y_base = _y(out.top, base[i] + v), _y(out.top, base[i])
                out.rects.append((round(LEFT + i * slot + slot * 0.15, 1), y_top, bar_w, round(y_base - y_top, 1),
                                  s.css, f"{chart.labels[i]} {s.name}: {v:g} {chart.unit}"))
                base[i] += v
        return out
    for s in chart.series:
        run: list[str] = []
        for i, v in enumerate([*s.values, None]):
            if v is None:
                if len(run) > 1:
                    out.lines.append((" ".join(run), s.css))
                run = []
                continue
            x, y = round(LEFT + (i + 0.5) * slot, 1), _y(out.top, v)
            run.append(f"{x},{y}")
            out.dots.append((x, y, s.css, f"{chart.labels[i]} {s.name}: {v:g} {chart.unit}"))
    return out
