"""The pictures of ``backcheck diagnose`` as inline SVG: the loss at every step of training, and the
line search's losses after one step of each size along -gradient.

A y axis is logarithmic by the text report's rule (render.sparkline): no value below 0 and the
largest at least render.LOG_SCALE times the smallest above 0; a loss of exactly 0 then sits on the
bottom edge.
"""

from __future__ import annotations

import math
from html import escape

from backcheck.render import short, sparkline

GREEN, RED, GREY, BLUE = "#1a7f37", "#cf222e", "#8c959f", "#0969da"


class Scale:
    """Maps values in [lo, hi] onto pixels [a, b], linearly or by log10."""

    def __init__(self, lo: float, hi: float, a: float, b: float, log: bool = False):
        self.log = log
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        if hi - lo <= 1e-12 * max(abs(lo), abs(hi), 1e-300):
            pad = abs(lo) * 0.1 or 1.0
            lo, hi = lo - pad, hi + pad
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, v: float) -> float:
        if self.log:
            v = math.log10(v) if v > 0 else self.lo
        return self.a + (v - self.lo) / (self.hi - self.lo) * (self.b - self.a)

    def ticks(self, count: int = 5) -> list[float]:
        if self.log:
            first, last = math.floor(self.lo), math.ceil(self.hi)
            mults = (1, 2, 5) if last - first <= 2 else (1,)
            step = max(1, math.ceil((last - first) / 8))
            out = [m * 10.0 ** e for e in range(first, last + 1, step) for m in mults]
            return [t for t in out if self.lo - 1e-9 <= math.log10(t) <= self.hi + 1e-9]
        raw = (self.hi - self.lo) / max(1, count)
        mag = 10.0 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
        first = math.ceil(self.lo / step - 1e-9)
        return [k * step for k in range(first, int(math.floor(self.hi / step + 1e-9)) + 1)]


def log_scale(values) -> bool:
    """The text report's rule for a log axis (render.sparkline's)."""
    return sparkline([v for v in values if math.isfinite(v)])[1]


def _bounds(values, log: bool) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if log:
        positive = [v for v in finite if v > 0]
        lo, hi = min(positive), max(positive)
        return lo / 10 ** (0.04 * math.log10(hi / lo)), hi * 10 ** (0.04 * math.log10(hi / lo))
    lo, hi = min(finite), max(finite)
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def _frame(x: Scale, y: Scale, xlabel: str, ylabel: str, xticks, xfmt, top: float, bottom: float,
           left: float, right: float) -> list:
    out = [f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="#fff" '
           'stroke="#d0d7de"/>']
    for t in y.ticks():
        py = y(t)
        out.append(f'<line x1="{left}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}" stroke="#eaeef2"/>'
                   f'<text class="tick" x="{left - 6}" y="{py + 4:.1f}" text-anchor="end">{short(t)}</text>')
    for t in xticks:
        px = x(t)
        out.append(f'<line x1="{px:.1f}" y1="{bottom}" x2="{px:.1f}" y2="{bottom + 4}" stroke="#666"/>'
                   f'<text class="tick" x="{px:.1f}" y="{bottom + 16}" text-anchor="middle">{xfmt(t)}</text>')
    out.append(f'<text class="axis" x="{(left + right) / 2:.1f}" y="{bottom + 34}" '
               f'text-anchor="middle">{escape(xlabel)}</text>')
    cy = (top + bottom) / 2
    out.append(f'<text class="axis" x="14" y="{cy:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {cy:.1f})">{escape(ylabel)}</text>')
    return out


def loss_curve(losses: list, broke: bool = False, width: int = 1040, height: int = 340) -> str:
    """The loss before every step (losses[i]: after i steps), one point per step; ``broke``: the next
    loss (or the gradient at the last) was not finite, marked one step further."""
    losses = [float(v) for v in losses]
    log = log_scale(losses)
    left, right, top, bottom = 70, width - 16, 14, height - 46
    n = len(losses)
    x = Scale(0, max(1, n - 1 + broke), left, right)
    y = Scale(*_bounds(losses, log), bottom, top, log=log)
    xticks = [t for t in x.ticks(8) if t == int(t)]
    out = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="loss at every step">']
    out += _frame(x, y, "steps taken", "loss" + (" (log scale)" if log else ""), xticks, lambda t: f"{t:g}",
                  top, bottom, left, right)
    first_y = y(losses[0])
    out.append(f'<line x1="{left}" y1="{first_y:.1f}" x2="{right}" y2="{first_y:.1f}" stroke="{GREY}" '
               'stroke-dasharray="4 3"><title>the first loss</title></line>')
    points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(losses))
    out.append(f'<polyline points="{points}" fill="none" stroke="{BLUE}" stroke-width="1.5" '
               'stroke-linejoin="round"/>')
    r = 2.5 if n <= 120 else 1.5
    if n <= 600:  # a point with its number for every step; beyond, the line alone still passes every step
        out += [f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="{r}" fill="{BLUE}"><title>after {i} '
                f'step{"s" if i != 1 else ""}: {v:.6g}</title></circle>' for i, v in enumerate(losses)]
    if broke:
        out.append(f'<line x1="{x(n):.1f}" y1="{top}" x2="{x(n):.1f}" y2="{bottom}" stroke="{RED}" '
                   f'stroke-dasharray="4 3"/><text class="mark bad" x="{x(n) - 6:.1f}" y="{top + 14}" '
                   'text-anchor="end">not finite</text>')
    # min and max as the text report gives them: when they lie beyond both ends and read differently
    lo, hi = losses.index(min(losses)), losses.index(max(losses))
    ends = {short(losses[0]), short(losses[-1])}
    marks = [(0, "first"), (n - 1, "last")] + [(k, name) for k, name in ((lo, "min"), (hi, "max"))
                                               if k not in (0, n - 1) and short(losses[k]) not in ends]
    for k, name in marks:
        v = losses[k]
        px, py = x(k), y(v)
        anchor = "start" if px < (left + right) / 2 else "end"
        dx = 6 if anchor == "start" else -6
        dy = 14 if name == "min" else -7
        out.append(f'<text class="mark" x="{px + dx:.1f}" y="{min(bottom - 4, max(top + 12, py + dy)):.1f}" '
                   f'text-anchor="{anchor}">{name} {short(v)}</text>')
    out.append("</svg>")
    return "".join(out)


def line_search(search: dict, lr: float, width: int = 560, height: int = 280) -> str:
    """The loss after one step of each size the search tried, against the loss before the step."""
    steps = [float(s) for s in search["steps"]]
    losses = [math.inf if v is None else float(v) for v in search["losses"]]
    f0 = float(search["loss"])
    finite = [v for v in losses if math.isfinite(v)] + [f0]
    log = log_scale(finite)
    left, right, top, bottom = 70, width - 16, 26, height - 46
    x = Scale(min(steps), max(steps), left, right, log=True)
    y = Scale(*_bounds(finite, log), bottom, top, log=log)
    decades = range(math.floor(math.log10(min(steps))), math.ceil(math.log10(max(steps))) + 1)
    xticks = [10.0 ** e for e in decades if min(steps) <= 10.0 ** e <= max(steps)] or [min(steps), max(steps)]
    out = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           'aria-label="loss after one step of each size along -gradient">']
    out += _frame(x, y, "step along -gradient (log scale)", "loss after one step" + (" (log)" if log else ""),
                  xticks, short, top, bottom, left, right)
    py0 = y(f0)
    out.append(f'<line x1="{left}" y1="{py0:.1f}" x2="{right}" y2="{py0:.1f}" stroke="#24292f" '
               f'stroke-dasharray="5 3"/><text class="mark" x="{left + 6}" y="{py0 - 6:.1f}">before the step: '
               f'{f0:.6g}</text>')
    lowering = [s for s, v in zip(steps, losses) if v < f0]
    best = max(lowering) if lowering else None
    for s, v in zip(steps, losses):
        px = x(s)
        said = f"a step of {s:.3g}: the loss is " + (f"{v:.6g}" if math.isfinite(v) else "not finite")
        if not math.isfinite(v):
            out.append(f'<path d="M{px - 5:.1f},{top + 2} L{px + 5:.1f},{top + 2} L{px:.1f},{top + 10} Z" '
                       f'fill="{RED}"><title>{escape(said)}</title></path>')
            continue
        fill = GREEN if v < f0 else RED
        out.append(f'<line x1="{px:.1f}" y1="{py0:.1f}" x2="{px:.1f}" y2="{y(v):.1f}" stroke="{fill}" '
                   f'stroke-opacity="0.35"/><circle cx="{px:.1f}" cy="{y(v):.1f}" r="4" fill="{fill}">'
                   f'<title>{escape(said)}</title></circle>')
    for s, name in ((lr, f"lr {lr:g}"), (best, None)):
        if s is None or s not in steps:
            continue
        v = losses[steps.index(s)]
        py = y(v) if math.isfinite(v) else top + 10
        text = name or f"{s:.3g}: {v:.6g}"
        anchor = "end" if x(s) > (left + right) / 2 else "start"
        dx = -8 if anchor == "end" else 8
        out.append(f'<text class="mark" x="{x(s) + dx:.1f}" y="{py + (14 if name is None else -6):.1f}" '
                   f'text-anchor="{anchor}">{escape(text)}</text>')
    out.append("</svg>")
    return "".join(out)
