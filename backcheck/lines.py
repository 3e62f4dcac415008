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


def point(events: list, pairs: list, net, params, X, Y, tolerance: float, wrong: dict | None = None,
          per_example: bool = False) -> dict:
    """{index of the finding in ``pairs``: line} for the findings a statement can be blamed for.

    ``pairs``: [(finding, variant, a tuple of variants, or None)] from the naming engine; ``events``:
    the recorded statements; ``wrong``: layer -> the code's gradients of that layer's wrong
    parameters (code shapes), for mistakes no variant reproduces; ``per_example``: the code is
    called one example at a time (the recording starts with the first). line = {"file", "line",
    "where", "source"}."""
    if not events:
        return {}
    if per_example:
        X, Y = X[:1], Y[:1]
    n = len(X)
    tol = max(10 * tolerance, 1e-9)
    planted = [v for _, group in pairs for v in _group(group)]
    everything = intermediates(net, params, X, Y, planted)
    right = intermediates(net, params, X, Y)
    cache = reference.forward(net, params, X)
    for k in range(1, len(net.layers) + 1):  # forward values are right at scale 1 too
        right[(k, "Z")], right[(k, "A")] = cache.Z[k], cache.A[k]
    out = {}
    for i, (finding, group) in enumerate(pairs):
        members = _group(group)
        line = None
        if members and all(_is_scale(v) for v in members):
            line = _scale_line(events, right, n, tol)
        elif members:
            without = intermediates(net, params, X, Y, [v for v in planted if all(v is not m for m in members)])
            changed = {key: val for key, val in everything.items()
                       if key in without and not _same(val, without[key], tol)}
            line = _first(events, changed, n, tol)
        if line is None and wrong and finding.layer in wrong:
            if finding.id == "weight-gradient/transposed":  # its value is right, read the other way round
                line = _final(events, wrong[finding.layer])
            else:
                line = _on_the_path(events, wrong[finding.layer], right, n, tol)
        if line is not None:
            out[i] = line
    return out


def _group(group) -> tuple:
    if group is None:
        return ()
    return tuple(group) if isinstance(group, (tuple, list)) else (group,)


def _is_scale(v) -> bool:
    """A mistake that scales every gradient at the end (not the output delta, which flows down)."""
    return type(v).__name__ in ("Scaled", "BatchScaled") and not getattr(v, "output_only", False)


def _on_the_path(events, grads: list, right: dict, n: int, tol: float):
    """For a mistake no variant reproduces: the first statement on the way to the code's wrong gradient
    whose own value matches no right value while everything it read did (or was the code's input)."""
    scales = (1.0, float(n), 1.0 / n, -1.0)
    ok = {e.index: any(_match(e.value, np.asarray(t, dtype=np.float64), scales, tol) is not None
                       for t in right.values()) for e in events}
    finals = [e for e in events if any(_equal(e.value, g) for g in grads)]
    if not finals:
        return None
    by = {e.index: e for e in events}
    seen, culprits, todo = set(), [], [finals[-1].index]
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        e = by[i]
        if ok[i]:
            continue
        bad = [d for d in e.deps if not ok.get(d, True)]
        if bad:
            todo += bad
        elif e.kind in ("line", "return"):
            culprits.append(e)
    return _line(min(culprits, key=lambda e: e.index)) if culprits else None


def _final(events, grads: list):
    finals = [e for e in events if e.kind == "line" and any(_equal(e.value, g) for g in grads)]
    return _line(finals[-1]) if finals else None


def _equal(value: np.ndarray, grad) -> bool:
    g = np.asarray(grad, dtype=np.float64)
    return any(v.shape == g.shape and np.allclose(v, g, rtol=1e-12, atol=0) for v in _candidates(value, 0))


def _same(a, b, tol) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and float(np.linalg.norm(a - b)) <= tol * (float(np.linalg.norm(a)) +
                                                                         float(np.linalg.norm(b)) + 1e-300)


def _first(events, changed: dict, n: int, tol: float):
    """The first statement whose value is one the mistake changed (in the code's layout, at any of
    the usual scales: the batch size moved between the delta and the weight gradients)."""
    scales = (1.0, float(n), 1.0 / n, -1.0)
    for j, e in enumerate(events):
        if e.kind == "arg":
            continue
        for key, target in sorted(changed.items(), key=lambda kv: (-kv[0][0], KINDS.index(kv[0][1]))):
            if _match(e.value, np.asarray(target, dtype=np.float64), scales, tol) is not None:
                return _line(_call_site(events, j) if e.helper else e)
    return None


def _call_site(events, j: int):
    """A one-statement helper returned the value: the line that called it (and kept its value) is
    where the code chose what to apply it to."""
    e = events[j]
    for later in events[j + 1:]:
        if later.kind == "line" and later.value.shape == e.value.shape and np.array_equal(later.value, e.value):
            return later
    return e


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
    """The contract's line object; in a notebook ``line`` counts within the code cell ``cell``."""
    if e.cell is not None:
        return {"file": e.file, "cell": e.cell[0], "line": e.cell[1], "where": e.where, "source": e.source}
    return {"file": e.file, "line": e.line, "where": e.where, "source": e.source}


def alias(events: list, line: dict, weights: list) -> dict | None:
    """The statement that made a name the blamed line reads into another name for the same array
    (``w = self.weights``, ``W = params["W2"]``: no copy) while it still held the weights the step
    started from (``weights``), when there is one: with stale weights it is why weights taken "before"
    the update are the updated ones. {"where", "source", "name", "of"}."""
    import ast

    blamed = next((e for e in events if e.where == line.get("where") and e.source == line.get("source")), None)
    if blamed is None:
        return None
    for d in blamed.deps:
        dep = events[d]
        try:
            tree = ast.parse(dep.source.strip())
        except SyntaxError:
            continue
        stmt = tree.body[0] if len(tree.body) == 1 else None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name) \
                and isinstance(stmt.value, (ast.Attribute, ast.Subscript, ast.Name)) \
                and any(w.shape == dep.value.shape and np.array_equal(w, dep.value) for w in weights):
            return {"where": dep.where, "source": dep.source.strip(), "name": stmt.targets[0].id,
                    "of": ast.unparse(stmt.value)}
    return None
