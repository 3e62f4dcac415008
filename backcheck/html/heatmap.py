"""Heat maps of one parameter's relative error per entry, as inline SVG.

An entry's relative error is |a - n| / (|a| + |n|) (0 where both are 0), drawn on a log colour
scale; entries that were not probed (numeric NaN) are hatched. W is drawn in the canonical
orientation, rows its inputs and columns the layer's units, whatever way the code stores it; b is
one row of units (one row per example for a bias with the batch in its shape). A parameter with
more than MAX_CELLS rows or columns is cut into blocks, each cell the largest error of its block.
"""

from __future__ import annotations

import math
import re
from html import escape

import numpy as np

MAX_CELLS = 64  # rows or columns drawn at most; more are grouped into blocks
FLOOR = 1e-12  # the bottom of the colour scale: agreement to rounding
_BELOW = ((0.0, (238, 242, 246)), (1.0, (160, 190, 216)))  # up to the tolerance: calm
_ABOVE = ((0.0, (254, 217, 118)), (0.45, (253, 141, 60)), (0.8, (227, 26, 28)), (1.0, (128, 0, 38)))  # beyond it


def rel_errors(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """|a - n| / (|a| + |n|) per entry, any shape; NaN where n is NaN (not probed), 0 where a = n = 0."""
    a, n = np.asarray(analytic, dtype=float), np.asarray(numeric, dtype=float)
    den = np.abs(a) + np.abs(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(den > 0, np.abs(a - n) / np.where(den > 0, den, 1.0), 0.0)
    return np.where(np.isnan(n), np.nan, rel)


def widths_of(label: str) -> tuple[int, int] | None:
    """(inputs, units) of a layer label such as 'dense 4->5 tanh'."""
    m = re.search(r"(\d+)->(\d+)", label)
    return (int(m.group(1)), int(m.group(2))) if m else None


def stored_transposed(layers) -> bool | None:
    """How the code stores its W, read off the non-square ones: True for (out, in), None when no W tells."""
    for layer in layers:
        widths = widths_of(layer.label)
        for p in layer.params:
            if p.name == "W" and widths and widths[0] != widths[1] and len(p.shape) == 2:
                return tuple(p.shape) == widths[::-1]
    return None


def canonical(p, label: str, layer: int, transposed_hint: bool | None):
    """(flat code indices in display order (R, C), row axis title, column axis title, a caveat or "").

    Displaying the grid of flat indices shows each entry where its canonical position is; the code's
    own index of a cell is np.unravel_index(flat, p.shape)."""
    shape = tuple(p.shape)
    flat = np.arange(int(np.prod(shape))).reshape(shape)
    widths = widths_of(label)
    units = f"units of layer {layer}"
    inputs = "inputs (features)" if layer == 1 else f"inputs (units of layer {layer - 1})"
    if p.name == "W" and len(shape) == 2 and widths:
        n_in, n_out = widths
        if shape == (n_out, n_in) and (n_in != n_out or transposed_hint):
            return flat.T, inputs, units, f"stored (units, inputs) = {n_out}x{n_in}, drawn transposed"
        if shape == (n_in, n_out):
            caveat = "" if n_in != n_out or transposed_hint is not None else \
                "square, and no other W says how the code stores it: drawn as stored, rows read as inputs"
            return flat, inputs, units, caveat
    if p.name == "b" and widths:
        n_out = widths[1]
        if flat.size == n_out:
            return flat.reshape(1, n_out), "", units, ""
        if len(shape) == 2 and n_out in shape:  # one bias per example
            grid = flat.T if shape[0] == n_out else flat
            return grid, "examples", units, ""
    grid = flat if flat.ndim == 2 else flat.reshape(1, -1)
    return grid, "rows as stored", "columns as stored", "drawn as the code stores it"


def blocks(n: int) -> int:
    """Entries per block along an axis of n entries."""
    return max(1, math.ceil(n / MAX_CELLS))


def colour(rel: float, tolerance: float) -> str:
    """The fill of a relative error: calm blues up to the tolerance, yellow to dark red beyond it."""
    pos = _position(rel)
    tpos = _position(tolerance)
    if rel <= tolerance:
        rgb = _mix(_BELOW, pos / tpos if tpos > 0 else 1.0)
    else:
        rgb = _mix(_ABOVE, (pos - tpos) / (1 - tpos) if tpos < 1 else 1.0)
    return "#%02x%02x%02x" % rgb


def _position(rel: float) -> float:
    """0 at FLOOR (or below), 1 at a relative error of 1, log in between."""
    if not rel > FLOOR:
        return 0.0
    return min(1.0, math.log10(rel / FLOOR) / -math.log10(FLOOR))


def _mix(stops, t: float) -> tuple[int, int, int]:
    t = min(1.0, max(0.0, t))
    for (p0, c0), (p1, c1) in zip(stops, stops[1:]):
        if t <= p1:
            f = (t - p0) / (p1 - p0) if p1 > p0 else 0.0
            return tuple(round(a + f * (b - a)) for a, b in zip(c0, c1))
    return stops[-1][1]


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def svg(p, label: str, layer: int, analytic: np.ndarray, numeric: np.ndarray, transposed_hint: bool | None,
        key: str) -> tuple[str, str]:
    """(the SVG of parameter ``p``'s heat map, a caption in HTML). ``key`` makes the SVG's ids unique."""
    a = np.asarray(analytic, dtype=float).reshape(p.shape)
    n = np.asarray(numeric, dtype=float).reshape(p.shape)
    rel = rel_errors(a, n).ravel()
    a, n = a.ravel(), n.ravel()
    grid, row_title, col_title, caveat = canonical(p, label, layer, transposed_hint)
    R, C = grid.shape
    br, bc = blocks(R), blocks(C)
    rows, cols = math.ceil(R / br), math.ceil(C / bc)
    cw = min(44, max(6, 640 // cols))
    ch = min(28, max(6, 520 // rows))
    left = 46 + (16 if row_title else 0)
    top = 40
    bar = min(300, max(200, cols * cw))
    width, height = max(left + cols * cw + 10, left + bar + 110), top + rows * ch + 56
    worst = None
    if p.worst is not None and len(p.worst.index) == len(p.shape):
        worst = int(np.ravel_multi_index(tuple(p.worst.index), p.shape))
    out = [f'<svg class="heat" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="relative error of {escape(p.code_name)} per entry">',
           _defs(key, p.tolerance)]
    outline = None
    for i in range(rows):
        for j in range(cols):
            cell = grid[i * br:(i + 1) * br, j * bc:(j + 1) * bc].ravel()
            probed = cell[~np.isnan(rel[cell])]
            x, y = left + j * cw, top + i * ch
            where = _where(i, j, br, bc, R, C, row_title, col_title)
            if probed.size == 0:
                out.append(f'<rect x="{x}" y="{y}" width="{cw}" height="{ch}" fill="url(#unprobed-{key})">'
                           f'<title>{escape(where)}: not probed</title></rect>')
                continue
            k = int(probed[np.argmax(rel[probed])])
            idx = ",".join(map(str, np.unravel_index(k, p.shape)))
            what = (f"{p.code_name}[{idx}]: analytic {_fmt(a[k])}, numeric {_fmt(n[k])}, relative error "
                    f"{_fmt(rel[k])}")
            if cell.size > 1:
                what = f"largest of {probed.size} probed of {cell.size}: " + what
            out.append(f'<rect x="{x}" y="{y}" width="{cw}" height="{ch}" fill="{colour(rel[k], p.tolerance)}">'
                       f'<title>{escape(where)}: {escape(what)}</title></rect>')
            if worst is not None and worst in cell:
                outline = (x, y)
    if outline is not None:
        # white under black: the outline shows on the palest and on the darkest cell
        for cls, inset in (("worst-halo", 1), ("worst", 1)):
            out.append(f'<rect class="{cls}" x="{outline[0] + inset}" y="{outline[1] + inset}" '
                       f'width="{cw - 2 * inset}" height="{ch - 2 * inset}"><title>the worst entry of the table'
                       '</title></rect>')
    out += _ticks(rows, cols, br, bc, cw, ch, left, top, row_title, col_title)
    out.append(_legend(key, p.tolerance, left, top + rows * ch + 26, bar))
    out.append("</svg>")
    caption = []
    if outline is not None:
        idx = ",".join(map(str, p.worst.index))
        caption.append(f"outlined: {p.code_name}[{idx}], the table's worst entry (the code's own indexing)")
    if br * bc > 1:
        along = [f"{k} {name}{'s' if k != 1 else ''}" for k, name in ((br, _singular(row_title) or "row"),
                                                                      (bc, _singular(col_title)))]
        caption.append(f"each cell is a block of {br * bc} entries ({' x '.join(along)}) and shows its largest "
                       "error")
    if caveat:
        caption.append(caveat)
    return "".join(out), "; ".join(caption)


def _singular(title: str) -> str:
    """What one row or column of an axis is: input, unit, example, row, column."""
    for word in ("input", "unit", "example", "row", "column"):
        if title.startswith(word):
            return word
    return ""


def _where(i, j, br, bc, R, C, row_title, col_title) -> str:
    def span(k, b, total, what):
        lo, hi = k * b, min(total, (k + 1) * b) - 1
        return f"{what} {lo}" if lo == hi else f"{what}s {lo}-{hi}"

    col = span(j, bc, C, _singular(col_title))
    if R == 1:
        return col
    return f"{span(i, br, R, _singular(row_title) or 'row')}, {col}"


def _ticks(rows, cols, br, bc, cw, ch, left, top, row_title, col_title) -> list:
    out = []
    every_c = max(1, math.ceil(24 / cw))
    for j in range(0, cols, every_c):
        out.append(f'<text class="tick" x="{left + j * cw + cw / 2:.1f}" y="{top - 6}" '
                   f'text-anchor="middle">{j * bc}</text>')
    out.append(f'<text class="axis" x="{left}" y="{top - 24}">{escape(col_title)} &#8594;</text>')
    if rows > 1:
        every_r = max(1, math.ceil(12 / ch))
        for i in range(0, rows, every_r):
            out.append(f'<text class="tick" x="{left - 5}" y="{top + i * ch + ch / 2 + 4:.1f}" '
                       f'text-anchor="end">{i * br}</text>')
        if row_title:
            cy = top + rows * ch / 2
            out.append(f'<text class="axis" x="12" y="{cy:.1f}" text-anchor="middle" '
                       f'transform="rotate(-90 12 {cy:.1f})">&#8592; {escape(row_title)}</text>')
    return out


def _defs(key: str, tolerance: float) -> str:
    tpos = _position(tolerance)
    stops = [(s * tpos, c) for s, c in _BELOW] + [(tpos + s * (1 - tpos), c) for s, c in _ABOVE]
    grad = "".join(f'<stop offset="{o:.4f}" stop-color="#%02x%02x%02x"/>' % c for o, c in stops)
    return (f'<defs><linearGradient id="scale-{key}">{grad}</linearGradient>'
            f'<pattern id="unprobed-{key}" width="6" height="6" patternUnits="userSpaceOnUse" '
            f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fafafa"/>'
            f'<line x1="0" y1="0" x2="0" y2="6" stroke="#c8c8c8" stroke-width="2"/></pattern></defs>')


def _legend(key: str, tolerance: float, x: int, y: int, w: int) -> str:
    """The colour bar from FLOOR to 1 with its decades, the tolerance marked, and the unprobed swatch."""
    out = [f'<rect x="{x}" y="{y}" width="{w}" height="10" fill="url(#scale-{key})" stroke="#999" '
           'stroke-width="0.5"/>']
    for e in range(-12, 1, 3):
        tx = x + w * _position(10.0 ** e)
        out.append(f'<line x1="{tx:.1f}" y1="{y + 10}" x2="{tx:.1f}" y2="{y + 14}" stroke="#666"/>'
                   f'<text class="tick" x="{tx:.1f}" y="{y + 25}" text-anchor="middle">'
                   f'{"1" if e == 0 else f"1e{e}"}</text>')
    tx = x + w * _position(tolerance)
    out.append(f'<line x1="{tx:.1f}" y1="{y - 4}" x2="{tx:.1f}" y2="{y + 10}" stroke="#111" stroke-width="1.5"/>'
               f'<text class="tick" x="{tx:.1f}" y="{y - 7}" text-anchor="middle">tolerance {tolerance:g}</text>')
    out.append(f'<rect x="{x + w + 16}" y="{y}" width="14" height="10" fill="url(#unprobed-{key})" stroke="#999" '
               f'stroke-width="0.5"/><text class="tick" x="{x + w + 34}" y="{y + 9}">not probed</text>')
    return "".join(out)
