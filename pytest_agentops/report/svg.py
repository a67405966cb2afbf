"""Small inline SVG charts for the HTML report: a line chart (a rate's estimate and bound over the trials, with
the threshold) and a histogram (a distribution with vertical markers for the threshold, the bound, a quantile).

Written here rather than with a charting library because the report must be one self-contained file that works
offline from ``file://``, whose bytes are the same for the same seeds (a library would add hundreds of KB of
JavaScript, draw at load time and need a browser to be seen at all): these are a few hundred bytes of
markup each, drawn by the browser without a script, and every number is rounded to a fixed precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

W, H = 460, 200  # the drawing, in CSS pixels
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 12, 30  # margins: axis labels left and below


@dataclass(frozen=True, slots=True)
class Line:
    """A series of a line chart: (x, y) points, a CSS class (colour and dash) and a legend label."""

    points: Sequence[tuple[float, float]]
    css: str
    label: str


@dataclass(frozen=True, slots=True)
class Marker:
    """A vertical line at ``x`` (a histogram) or horizontal at ``y`` (a line chart), with a label."""

    at: float
    css: str
    label: str


def _n(value: float) -> str:
    """A coordinate with one decimal, the same text for the same value on every platform."""
    text = f"{value:.1f}"
    return "0" if text in ("0.0", "-0.0") else text.removesuffix(".0")


def tick_label(value: float) -> str:
    """A short label for an axis tick (``0.95``, ``1.2k``, ``2e-05``)."""
    if value == 0:
        return "0"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    if abs(value) >= 1:
        return f"{value:.3g}"
    return f"{value:.2g}"


def _ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    if hi <= lo:
        return [lo]
    step = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(step))
    nice = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= step)
    first = math.ceil(lo / nice) * nice
    out, v = [], first
    while v <= hi + nice * 1e-9:
        out.append(round(v, 12))
        v += nice
    return out


class _Frame:
    """The plotting area's scales: data (x, y) -> SVG pixels."""

    def __init__(self, x0: float, x1: float, y0: float, y1: float):
        self.x0, self.x1 = x0, x1 if x1 > x0 else x0 + 1
        self.y0, self.y1 = y0, y1 if y1 > y0 else y0 + 1

    def x(self, v: float) -> float:
        return LEFT + (v - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT)

    def y(self, v: float) -> float:
        return H - BOTTOM - (v - self.y0) / (self.y1 - self.y0) * (H - TOP - BOTTOM)

    def axes(self, xlabel: str) -> list[str]:
        out = [f'<line class="axis" x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}"/>',
               f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}"/>']
        for t in _ticks(self.y0, self.y1):
            y = _n(self.y(t))
            out.append(f'<line class="grid" x1="{LEFT}" y1="{y}" x2="{W - RIGHT}" y2="{y}"/>'
                       f'<text class="tick" x="{LEFT - 4}" y="{y}" text-anchor="end" dy="3">{tick_label(t)}</text>')
        for t in _ticks(self.x0, self.x1):
            x = _n(self.x(t))
            out.append(f'<text class="tick" x="{x}" y="{H - BOTTOM + 13}" text-anchor="middle">{tick_label(t)}</text>')
        out.append(f'<text class="axis-label" x="{(LEFT + W - RIGHT) // 2}" y="{H - 3}" text-anchor="middle">'
                   f'{escape(xlabel)}</text>')
        return out


def _svg(kind: str, title: str, body: list[str], legend: list[tuple[str, str]]) -> str:
    keys = "".join(f'<span class="key {css}">{escape(label)}</span>' for css, label in legend)
    return (f'<figure class="chart" data-chart="{escape(kind)}"><figcaption>{escape(title)}</figcaption>'
            f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{escape(title)}">'
            + "".join(body) + f'</svg><div class="legend">{keys}</div></figure>')


def line_chart(kind: str, title: str, xlabel: str, lines: Sequence[Line], markers: Sequence[Marker] = (),
               y_range: tuple[float, float] = (0.0, 1.0)) -> str:
    """A line chart of ``lines`` over x, with horizontal ``markers`` (a threshold), as an SVG figure."""
    xs = [p[0] for line in lines for p in line.points] or [0.0, 1.0]
    frame = _Frame(min(xs), max(xs), *y_range)
    body = frame.axes(xlabel)
    for m in markers:
        y = _n(frame.y(m.at))
        body.append(f'<line class="marker {m.css}" x1="{LEFT}" y1="{y}" x2="{W - RIGHT}" y2="{y}"/>')
    for line in lines:
        if not line.points:
            continue
        pts = " ".join(f"{_n(frame.x(x))},{_n(frame.y(y))}" for x, y in line.points)
        body.append(f'<polyline class="series {line.css}" points="{pts}"/>')
    legend = [(line.css, line.label) for line in lines] + [(m.css, m.label) for m in markers]
    return _svg(kind, title, body, legend)


def histogram(kind: str, title: str, xlabel: str, values: Sequence[float], markers: Sequence[Marker] = (),
              bins: int = 24) -> str:
    """A histogram of finite ``values`` with vertical ``markers`` (threshold, bound, quantile), as an SVG figure."""
    finite = [v for v in values if math.isfinite(v)]
    marks = [m for m in markers if math.isfinite(m.at)]
    lo = min(finite + [m.at for m in marks], default=0.0)
    hi = max(finite + [m.at for m in marks], default=1.0)
    if hi <= lo:
        lo, hi = lo - 0.5 * (abs(lo) or 1), hi + 0.5 * (abs(hi) or 1)
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in finite:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    frame = _Frame(lo, hi, 0, max(counts, default=1) or 1)
    body = frame.axes(xlabel)
    for i, c in enumerate(counts):
        if not c:
            continue
        x0, x1 = frame.x(lo + i * width), frame.x(lo + (i + 1) * width)
        y = frame.y(c)
        body.append(f'<rect class="bar" x="{_n(x0)}" y="{_n(y)}" width="{_n(max(x1 - x0 - 1, 1))}" '
                    f'height="{_n(H - BOTTOM - y)}"><title>{c} trial(s) in [{tick_label(lo + i * width)}, '
                    f'{tick_label(lo + (i + 1) * width)})</title></rect>')
    for m in marks:
        x = _n(frame.x(m.at))
        body.append(f'<line class="marker {m.css}" x1="{x}" y1="{TOP}" x2="{x}" y2="{H - BOTTOM}"/>')
    legend = [("bar", f"trials ({len(finite)})")] + [(m.css, m.label) for m in marks]
    return _svg(kind, title, body, legend)
