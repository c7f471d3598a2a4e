"""Inline SVG charts for the HTML reports: scatter, bars, line and heatmap, all on log axes where
errors span decades. No script: every mark carries a <title> tooltip, and every chart says in
words (aria-label, captions in the pages) what it shows. Values are drawn, never computed here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

from .page import esc, num

PASS, FAIL, SKIP, BLUE = "#1a7f37", "#cf222e", "#8c959f", "#0969da"
# one colour and one marker shape per series (formats), so series read without colour too
SERIES = (("#0969da", "circle"), ("#bc4c00", "square"), ("#8250df", "triangle"), ("#1a7f37", "diamond"),
          ("#57606a", "circle"))


def _finite_pos(vals: Iterable[float | None]) -> list[float]:
    return [v for v in vals if v is not None and math.isfinite(v) and v > 0]


@dataclass(frozen=True)
class LogAxis:
    """Maps positive values to pixels on a log10 axis from ``lo`` (decade) to ``hi`` (decade);
    0 is drawn on a floor line below ``lo`` and labelled "0"."""

    lo: int
    hi: int
    start: float   # pixel of lo
    end: float     # pixel of hi

    @staticmethod
    def fit(values: Iterable[float | None], start: float, end: float, extra: Iterable[float] = ()) -> "LogAxis":
        vals = _finite_pos(list(values) + list(extra))
        if not vals:
            return LogAxis(-1, 0, start, end)
        lo, hi = math.floor(math.log10(min(vals))), math.ceil(math.log10(max(vals)))
        if hi <= lo:
            hi = lo + 1
        return LogAxis(lo, hi, start, end)

    def __call__(self, v: float | None) -> float:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return self.floor
        if v == math.inf or v > 10 ** self.hi:
            return self.end
        if v <= 0:
            return self.floor
        t = (math.log10(max(v, 10 ** self.lo)) - self.lo) / (self.hi - self.lo)
        return self.start + t * (self.end - self.start)

    @property
    def floor(self) -> float:
        return self.start + 0.06 * (self.start - self.end)

    def ticks(self) -> list[tuple[float, str]]:
        step = max(1, math.ceil((self.hi - self.lo) / 7))
        return [(self(10.0 ** k), f"1e{k}" if k not in (0, 1) else ("1" if k == 0 else "10"))
                for k in range(self.lo, self.hi + 1, step)]


def _open(width: int, height: int, label: str) -> list[str]:
    # max-width: never drawn larger than designed (text stays at its size on wide screens)
    return [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'style="max-width:{width}px" role="img" aria-label="{esc(label)}">']


_HALO = 'paint-order="stroke" stroke="#fff" stroke-width="3"'  # text stays readable over marks


def _marker(shape: str, x: float, y: float, r: float, color: str, title: str) -> str:
    t = f"<title>{esc(title)}</title>"
    if shape == "square":
        return (f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r:.1f}" height="{2 * r:.1f}" fill="{color}" '
                f'fill-opacity=".85">{t}</rect>')
    if shape == "triangle":
        return (f'<polygon points="{x:.1f},{y - r * 1.2:.1f} {x - r * 1.1:.1f},{y + r * .8:.1f} '
                f'{x + r * 1.1:.1f},{y + r * .8:.1f}" fill="{color}" fill-opacity=".85">{t}</polygon>')
    if shape == "diamond":
        return (f'<polygon points="{x:.1f},{y - r * 1.3:.1f} {x + r * 1.1:.1f},{y:.1f} {x:.1f},{y + r * 1.3:.1f} '
                f'{x - r * 1.1:.1f},{y:.1f}" fill="{color}" fill-opacity=".85">{t}</polygon>')
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{color}" fill-opacity=".85">{t}</circle>'


def _y_grid(parts: list[str], ax: LogAxis, x0: float, x1: float, zero: bool) -> None:
    for y, lab in ax.ticks():
        parts.append(f'<line x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>'
                     f'<text x="{x0 - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#57606a">{lab}</text>')
    if zero:
        y = ax.floor
        parts.append(f'<line x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d7de" stroke-dasharray="2 3"/>'
                     f'<text x="{x0 - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#57606a">0</text>')


@dataclass(frozen=True)
class Point:
    x: float
    y: float | None
    label: str
    series: str
    failed: bool = False


def scatter(points: Sequence[Point], x_label: str, y_label: str, label: str, width: int = 640,
            height: int = 340) -> str:
    """Points on a log2 x axis (bits per weight) and a log10 y axis; failing points ringed red."""
    pts = [p for p in points if p.x and p.x > 0]
    if not pts:
        return '<p class="muted">no measured points</p>'
    x0, x1, y0, y1 = 64, width - 16, height - 44, 34
    lx = [math.log2(p.x) for p in pts]
    xlo, xhi = math.floor(min(lx)) - 0.3, math.ceil(max(lx)) + 0.3
    ax = LogAxis.fit([p.y for p in pts], y0 - 20, y1)
    has_zero = any(p.y is not None and p.y <= 0 for p in pts)

    def X(v: float) -> float:
        return x0 + (math.log2(v) - xlo) / (xhi - xlo) * (x1 - x0)

    parts = _open(width, height, label)
    _y_grid(parts, ax, x0, x1, has_zero)
    for k in range(math.ceil(xlo), math.floor(xhi) + 1):
        x = X(2.0 ** k)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y1}" y2="{y0}" stroke="#f3f4f6"/>'
                     f'<text x="{x:.1f}" y="{y0 + 16}" font-size="11" text-anchor="middle" fill="#57606a">{2 ** k:g}</text>')
    parts.append(f'<text x="{(x0 + x1) / 2:.0f}" y="{height - 6}" font-size="12" text-anchor="middle">{esc(x_label)}</text>'
                 f'<text x="14" y="{(y0 + y1) / 2:.0f}" font-size="12" text-anchor="middle" '
                 f'transform="rotate(-90 14 {(y0 + y1) / 2:.0f})">{esc(y_label)}</text>')
    series = list(dict.fromkeys(p.series for p in pts))
    placed: list[tuple[float, float, str]] = []
    for p in pts:
        k = series.index(p.series)
        color, shape = SERIES[k % len(SERIES)]
        # series side by side (6 px apart) so equal points of different formats stay visible
        x, y = X(p.x) + (k - (len(series) - 1) / 2) * 6, ax(p.y)
        if p.failed:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="10" fill="none" stroke="{FAIL}" stroke-width="2"/>')
        parts.append(_marker(shape, x, y, 5.5, color, f"{p.series} {p.label}: {y_label} {num(p.y)}, "
                                                      f"{num(p.x)} bits/weight"))
        if any(abs(x - a) < 24 and abs(y - b) < 12 and lab == p.label for a, b, lab in placed):
            continue  # the same label drawn next to a point at the same spot
        dy = -9 if not any(abs(x - a) < 40 and abs(y - 9 - b) < 11 for a, b, _l in placed) else 17
        placed.append((x, y + dy, p.label))
        parts.append(f'<text x="{x + 8:.1f}" y="{y + dy:.1f}" font-size="11" {_HALO}>{esc(p.label)}</text>')
    lx0 = x0
    for i, s in enumerate(series):  # legend above the plot: marker + name
        color, shape = SERIES[i % len(SERIES)]
        parts.append(_marker(shape, lx0 + 6, 12, 5, color, s)
                     + f'<text x="{lx0 + 15}" y="16" font-size="12">{esc(s)}</text>')
        lx0 += 30 + 7 * len(s)
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    status: str = "pass"   # pass / fail / skip: colour, and a mark under failing bars
    title: str = ""


def bars(items: Sequence[Bar], y_label: str, label: str, limit: float | None = None, limit_text: str = "",
         width: int = 640, height: int = 240, every: int = 0) -> str:
    """Bars on a log10 y axis, an optional dashed limit line; failing bars red and marked ✗."""
    if not items:
        return '<p class="muted">nothing to draw</p>'
    x0, x1, y0, y1 = 64, width - 12, height - 40, 12
    ax = LogAxis.fit([b.value for b in items], y0 - 14, y1, extra=[limit] if limit else [])
    parts = _open(width, height, label)
    _y_grid(parts, ax, x0, x1, any(b.value is not None and b.value <= 0 for b in items))
    w = (x1 - x0) / len(items)
    every = every or max(1, math.ceil(6.5 * max(len(b.label) for b in items) / w))
    for i, b in enumerate(items):
        color = {"pass": PASS, "fail": FAIL, "info": BLUE}.get(b.status, SKIP)
        top = ax(b.value)
        x = x0 + i * w
        hgt = max(1.0, y0 - top)
        parts.append(f'<rect x="{x + w * .12:.1f}" y="{y0 - hgt:.1f}" width="{max(w * .76, 1):.1f}" height="{hgt:.1f}" '
                     f'fill="{color}"><title>{esc(b.title or f"{b.label}: {num(b.value)}")}</title></rect>')
        if b.status == "fail":
            parts.append(f'<text x="{x + w / 2:.1f}" y="{y0 - hgt - 3:.1f}" font-size="11" text-anchor="middle" '
                         f'fill="{FAIL}">✗</text>')
        if i % every == 0:
            parts.append(f'<text x="{x + w / 2:.1f}" y="{y0 + 14}" font-size="10" text-anchor="middle" '
                         f'fill="#57606a">{esc(b.label)}</text>')
    if limit:
        y = ax(limit)
        parts.append(f'<line x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="{FAIL}" stroke-dasharray="5 3">'
                     f'<title>{esc(limit_text or f"limit {num(limit)}")}</title></line>'
                     f'<text x="{x1}" y="{y - 4:.1f}" font-size="11" text-anchor="end" fill="{FAIL}" {_HALO}>'
                     f'{esc(limit_text or f"limit {num(limit)}")}</text>')
    parts.append(f'<text x="14" y="{(y0 + y1) / 2:.0f}" font-size="12" text-anchor="middle" '
                 f'transform="rotate(-90 14 {(y0 + y1) / 2:.0f})">{esc(y_label)}</text></svg>')
    return "".join(parts)


def strip(flags: Sequence[bool | None], label: str, width: int = 640, title_of=None) -> str:
    """One square per position: green ✓ where both sides agree, red ✗ where they do not."""
    if not flags:
        return ""
    x0, x1 = 64, width - 12
    w = (x1 - x0) / len(flags)
    parts = _open(width, 34, label)
    parts.append('<text x="58" y="20" font-size="11" text-anchor="end" fill="#57606a">top-1</text>')
    for i, f in enumerate(flags):
        color = PASS if f else (SKIP if f is None else FAIL)
        t = title_of(i) if title_of else f"position {i}: {'same' if f else 'different'} top-1"
        parts.append(f'<rect x="{x0 + i * w + 1:.1f}" y="4" width="{max(w - 2, 1):.1f}" height="20" fill="{color}" '
                     f'fill-opacity=".8"><title>{esc(t)}</title></rect>')
        if w >= 9:
            parts.append(f'<text x="{x0 + i * w + w / 2:.1f}" y="18" font-size="11" text-anchor="middle" '
                         f'fill="#fff">{"✓" if f else "✗"}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line(values: Sequence[float], labels: Sequence[str], ticks: Sequence[str | None], label: str,
         limit: float | None = None, limit_text: str = "", mark: int | None = None, width: int = 1300,
         height: int = 280) -> str:
    """A polyline on a log10 y axis (the locate curve); ``mark`` rings one point red."""
    if not values:
        return '<p class="muted">nothing to draw</p>'
    x0, x1, y0, y1 = 64, width - 12, height - 34, 12
    ax = LogAxis.fit(values, y0 - 14, y1, extra=[limit] if limit else [])
    parts = _open(width, height, label)
    _y_grid(parts, ax, x0, x1, any(v <= 0 for v in values if not math.isnan(v)))
    step = (x1 - x0) / max(len(values) - 1, 1)
    pts = " ".join(f"{x0 + i * step:.1f},{ax(v):.1f}" for i, v in enumerate(values))
    if limit:
        y = ax(limit)
        parts.append(f'<line x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="{FAIL}" stroke-dasharray="5 3"/>'
                     f'<text x="{x1}" y="{y - 4:.1f}" font-size="11" text-anchor="end" fill="{FAIL}" {_HALO}>'
                     f'{esc(limit_text or f"limit {num(limit)}")}</text>')
    parts.append(f'<polyline points="{pts}" fill="none" stroke="{BLUE}" stroke-width="1.6"/>')
    for i, (v, lab) in enumerate(zip(values, labels)):
        bad = i == mark
        x, y = x0 + i * step, ax(v)
        if bad:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="9" fill="none" stroke="{FAIL}" stroke-width="2"/>'
                         f'<text x="{x + 12:.1f}" y="{y + 4:.1f}" font-size="12" fill="{FAIL}" {_HALO}>✗ {esc(lab)}</text>')
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{4 if bad else 3}" fill="{FAIL if bad else BLUE}">'
                     f'<title>{esc(lab)}: {num(v)}</title></circle>')
        if ticks[i]:
            parts.append(f'<text x="{x:.1f}" y="{y0 + 16}" font-size="10" text-anchor="middle" fill="#57606a">'
                         f'{esc(ticks[i])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _heat(v: float | None, ax: LogAxis) -> str:
    """White (0) through yellow to deep orange-brown on the log scale of ``ax``."""
    if v is None:
        return "#ffffff"
    if v <= 0:
        return "#f6f8fa"
    t = 1.0 if not math.isfinite(v) else max(0.0, min(1.0, (math.log10(v) - ax.lo) / (ax.hi - ax.lo)))
    stops = ((255, 247, 188), (254, 196, 79), (236, 112, 20), (140, 45, 4))
    seg = min(int(t * 3), 2)
    f = t * 3 - seg
    a, b = stops[seg], stops[seg + 1]
    return "#%02x%02x%02x" % tuple(round(a[i] + (b[i] - a[i]) * f) for i in range(3))


def heatmap(rows: Sequence[str], cols: Sequence[str], value: dict[tuple[str, str], tuple[float | None, bool, str]],
            label: str, width: int = 1300, scale: Iterable[float | None] = ()) -> str:
    """Rows x columns of cells coloured by a value (log scale); a failing cell is outlined red and
    marked ✗. ``value[(row, col)] = (value, passed, tooltip)``; absent cells stay blank. ``scale``:
    values the colour scale must also span (so that two heatmaps share one scale)."""
    if not rows or not cols:
        return '<p class="muted">nothing to draw</p>'
    longest = max(len(c) for c in cols)
    x0, top = 16 + 7 * max(len(r) for r in rows), 20 + int(longest * 6.5 * 0.65)
    cw = max(30.0, min(90.0, (width - x0 - 10 - longest * 4) / len(cols)))
    ch = 22
    width = int(x0 + cw * len(cols) + 10 + longest * 5)
    height = top + ch * len(rows) + 30
    ax = LogAxis.fit([v for v, _ok, _t in value.values()] + list(scale), 0, 1)
    if ax.hi - ax.lo <= 1:  # one decade: widen below so its values take the warm end of the scale
        ax = LogAxis(ax.lo - 2, ax.hi, 0, 1)
    parts = _open(width, height, label)
    for j, c in enumerate(cols):
        x = x0 + j * cw + cw / 2
        parts.append(f'<text x="{x:.1f}" y="{top - 6}" font-size="11" text-anchor="start" '
                     f'transform="rotate(-40 {x:.1f} {top - 6})">{esc(c)}</text>')
    for i, r in enumerate(rows):
        y = top + i * ch
        parts.append(f'<text x="{x0 - 6}" y="{y + 15}" font-size="11" text-anchor="end">{esc(r)}</text>')
        for j, c in enumerate(cols):
            cell = value.get((r, c))
            if cell is None:
                continue
            v, ok, tip = cell
            x = x0 + j * cw
            stroke = f' stroke="{FAIL}" stroke-width="2.5"' if not ok else ' stroke="#fff"'
            parts.append(f'<rect x="{x + 1:.1f}" y="{y + 1}" width="{cw - 2:.1f}" height="{ch - 2}" '
                         f'fill="{_heat(v, ax)}"{stroke}><title>{esc(tip)}</title></rect>')
            if not ok:
                parts.append(f'<text x="{x + cw / 2:.1f}" y="{y + 15}" font-size="12" text-anchor="middle" '
                             f'fill="{FAIL}" font-weight="700">✗</text>')
    # colour scale
    ly = top + ch * len(rows) + 10
    n = 40
    sw = min(300.0, width - x0 - 120) / n
    for k in range(n):
        v = 10 ** (ax.lo + (ax.hi - ax.lo) * (k + .5) / n)
        parts.append(f'<rect x="{x0 + 30 + k * sw:.1f}" y="{ly}" width="{sw + .3:.1f}" height="10" fill="{_heat(v, ax)}"/>')
    parts.append(f'<rect x="{x0}" y="{ly}" width="20" height="10" fill="#f6f8fa" stroke="#d0d7de"/>'
                 f'<text x="{x0 + 10}" y="{ly + 20}" font-size="10" text-anchor="middle">0</text>'
                 f'<text x="{x0 + 30}" y="{ly + 20}" font-size="10">1e{ax.lo}</text>'
                 f'<text x="{x0 + 30 + n * sw:.1f}" y="{ly + 20}" font-size="10" text-anchor="end">1e{ax.hi}</text>')
    parts.append("</svg>")
    return "".join(parts)
