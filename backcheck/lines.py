"""Pointing at the line: which statement of the code first computes a value its mistake changed.

The naming engine found each mistake as a variant of backcheck's reference backward pass that
reproduces the code's gradients. With all of them planted, the reference computes what the code
computes (every dL/dA, dL/dZ, dW and db, layer by layer); with one of them taken out, what the
code would compute without that mistake. The values the two differ in are the ones that mistake
changes. The code's own backward pass, recorded statement by statement (``binding.trace``), is
then read in the order it ran: the first statement whose value is one of those changed values,
in the code's layout and scale, is the line of that mistake.

A mistake that is a scale of every gradient (summed instead of averaged, a sign) changes no value
but its scale: its line is the first statement whose value is a right one times that factor while
what it read was at the right scale. When no statement can be matched, no line is given: never a
guess.
"""

from __future__ import annotations

import numpy as np

from backcheck import reference

KINDS = ("dA", "dZ", "dW", "db")


def shapes_of(net, n: int, layout: str) -> set:
    """The shapes of the values worth recording (both orientations are kept by the recorder)."""
    out = set()
    for k, layer in enumerate(net.layers, start=1):
        units, inputs = layer.units, net.widths[k - 1]
        out |= {(n, units), (units, n), (inputs, units), (units, inputs), (units,), (1, units), (units, 1)}
    return out


def intermediates(net, params, X, Y, variants=()) -> dict:
    """(layer, kind) -> the canonical value the reference computes with ``variants`` planted."""
    trace: dict = {}
    with np.errstate(all="ignore"):
        reference.backward(net, params, X, Y, tuple(v for v in variants if v is not None), trace=trace)
    return trace


def _candidates(value: np.ndarray, n: int) -> list:
    """The recorded value in the canonical layout: as it is, transposed, a bias as a vector."""
    out = [value]
    if value.ndim == 2:
        out.append(value.T)
        if 1 in value.shape:
            out.append(value.reshape(-1))
    return out


def _match(value: np.ndarray, target: np.ndarray, scales, tol: float):
    """The scale c with value = c * target (to within tol), or None."""
    best = None
    for v in _candidates(value, len(target) if target.ndim else 0):
        if v.shape != target.shape:
            continue
        tn = float(np.linalg.norm(target))
        if tn == 0:
            continue
        for c in scales:
            err = float(np.linalg.norm(v - c * target))
            if err <= tol * (float(np.linalg.norm(v)) + abs(c) * tn):
                best = c if best is None or abs(c - 1) < abs(best - 1) else best
    return best


def point(events: list, pairs: list, net, params, X, Y, tolerance: float) -> dict:
    """{index of the finding in ``pairs``: line} for the findings a statement can be blamed for.

    ``pairs``: [(finding, variant or None)] from the naming engine; ``events``: the recorded
    statements; line = {"file", "line", "where", "source"}."""
    n = len(X)
    variants = [v for _, v in pairs if v is not None]
    if not events or not variants:
        return {}
    tol = max(10 * tolerance, 1e-9)
    everything = intermediates(net, params, X, Y, variants)
    right = intermediates(net, params, X, Y)
    cache = reference.forward(net, params, X)
    for k in range(1, len(net.layers) + 1):  # forward values are right at scale 1 too
        right[(k, "Z")], right[(k, "A")] = cache.Z[k], cache.A[k]
    out = {}
    for i, (finding, variant) in enumerate(pairs):
        if variant is None:
            continue
        if finding.id.startswith("scale/") or finding.id == "loss-derivative/scale" and finding.layer is None:
            line = _scale_line(events, right, n, tol)
        else:
            without = intermediates(net, params, X, Y, [v for v in variants if v is not variant])
            changed = {key: val for key, val in everything.items()
                       if key in without and not _same(val, without[key], tol)}
            line = _first(events, changed, n, tol)
        if line is not None:
            out[i] = line
    return out


def _same(a, b, tol) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and float(np.linalg.norm(a - b)) <= tol * (float(np.linalg.norm(a)) +
                                                                         float(np.linalg.norm(b)) + 1e-300)


def _first(events, changed: dict, n: int, tol: float):
    """The first statement whose value is one the mistake changed (in the code's layout, at any of
    the usual scales: the batch size moved between the delta and the weight gradients)."""
    scales = (1.0, float(n), 1.0 / n, -1.0)
    for e in events:
        if e.kind != "line":
            continue
        for key, target in sorted(changed.items(), key=lambda kv: (-kv[0][0], KINDS.index(kv[0][1]))):
            if _match(e.value, np.asarray(target, dtype=np.float64), scales, tol) is not None:
                return _line(e)
    return None


def _scale_line(events, right: dict, n: int, tol: float):
    """The first statement whose value is a right one times a factor other than 1 while the values it
    read were right at scale 1 (or were the code's inputs)."""
    factors = (float(n), 1.0 / n, -1.0, -float(n), 2.0, 0.5)
    scale_of: dict = {}
    for e in events:
        found = None
        for target in right.values():
            c = _match(e.value, np.asarray(target, dtype=np.float64), (1.0,) + factors, tol)
            if c is not None:
                found = c
                break
        scale_of[e.index] = found
        if e.kind == "line" and found is not None and found != 1.0:
            if all(scale_of.get(d) in (1.0, None) for d in e.deps):
                return _line(e)
    return None


def _line(e) -> dict:
    return {"file": e.file, "line": e.line, "where": e.where, "source": e.source}
