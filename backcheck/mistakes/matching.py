"""Matching the code's gradient to the catalog: which known mistake, at which layer, explains it.

``explain`` walks the layers from the loss down, each time keeping the mistakes already found, so
layers that are wrong only because of a layer above are not blamed; a scale common to every
gradient is tested first; when no entry fits, the finding is ``unknown`` with the pattern of the
wrong entries.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from backcheck import reference
from backcheck.mistakes.catalog import (_LAYER_SEARCH, _PRIORITY, CATALOG, LayerScaled, Scaled)
from backcheck.reference import ACTIVATIONS
from backcheck.results import WRONG, Finding
from backcheck.spec import NetworkSpec


# ---------------------------------------------------------------- explain


@dataclass
class Evidence:
    """What the check measured, in the canonical layout (keys are (layer, "W"|"b"))."""

    net: NetworkSpec
    params: list
    X: np.ndarray
    Y: np.ndarray
    loss: float
    analytic: dict
    numeric: dict  # NaN where an entry was not probed
    status: dict
    tolerance: float
    forward_matches: bool
    layout: str = "rows"
    code_names: dict = field(default_factory=dict)

    @property
    def match_tolerance(self) -> float:
        return min(max(1e-5, 10 * self.tolerance), 0.05)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    mask = np.isfinite(a) & np.isfinite(b)
    a, b = a[mask], b[mask]
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


def _layer_rel(ev: Evidence, grads, k: int) -> float:
    dW, db = grads[k - 1]
    ab = ev.analytic.get((k, "b"))  # None for a layer without a bias
    return max(_rel(ev.analytic[(k, "W")], dW), _rel(ab, db) if ab is not None else 0.0)


def explain(ev: Evidence, findings: list) -> list:
    """Findings for every wrong layer, most likely cause first. Correct programs get none."""
    return ordered(findings + [f for f, _ in explain_variants(ev)])


def explain_variants(ev: Evidence) -> list:
    """[(finding, variant or None)]: each named mistake with the variant of the reference backward
    that reproduces it (None for an unknown one), for the line pointer."""
    wrong_layers = sorted({k for (k, _), st in ev.status.items() if st == WRONG}, reverse=True)
    if not wrong_layers:
        return []
    cache = reference.forward(ev.net, ev.params, ev.X)
    scale = _global_scale(ev, cache)
    if scale:
        return [(f, _scale_variant(f, ev)) for f in scale]
    found, mistakes = _layer_search(ev, cache, wrong_layers[0])
    pairs = list(zip(found, _variants_of(found, mistakes)))
    merged = _merge_global(ev, found)
    if len(merged) != len(found):  # every layer's missing L2 became one finding for the network
        l2 = tuple(v for f, v in pairs if f.id == "regularization/missing" and v is not None)
        pairs = [(f, v) for f, v in pairs if f in merged] + [(f, l2 or None) for f in merged if f not in found]
    return pairs


def _variants_of(found: list, mistakes: list) -> list:
    """The variant behind each finding of a layer search (unknown ones have none)."""
    out, left = [], list(mistakes)
    for f in found:
        match = next((v for v in left if v.id == f.id and getattr(v, "layer", None) in (f.layer, None)), None)
        if match is None and f.id.startswith("scale/") or f.id == "loss-derivative/scale":
            match = next((v for v in left if isinstance(v, (LayerScaled, Scaled))), None)
        if match is not None:
            left.remove(match)
        out.append(match)
    return out


def _scale_variant(f: Finding, ev: Evidence):
    """A variant for a global scale finding (the factor is in its evidence)."""
    import re

    m = re.search(r"gradients are ([-0-9.e+]+) times", f.detail)
    return Scaled(f.id, float(m.group(1))) if m else None


def ordered(findings: list) -> list:
    """Errors first, the layer closest to the loss first, the most confident first."""
    rank = {"error": 0, "warning": 1, "note": 2}
    return sorted(findings, key=lambda f: (rank.get(f.severity, 3), -(f.layer or 10**6), -f.confidence))


def _global_scale(ev: Evidence, cache) -> list | None:
    """Every gradient the same multiple c of the right one: batch sum, sign, or another constant."""
    right = reference.backward(ev.net, ev.params, ev.X, ev.Y, cache=cache)
    keys = [(k, r) for k in range(1, len(right) + 1) for r in "Wb" if (k, r) in ev.analytic]
    a = np.concatenate([ev.analytic[key].ravel() for key in keys])
    t = np.concatenate([right[k - 1]["Wb".index(r)].ravel() for k, r in keys])
    if not np.any(t):
        return None
    c = float(a @ t / (t @ t))
    resid = _rel(a, c * t)
    # Stricter than a layer match: a per-example factor that is nearly constant (a sigmoid output
    # near 0.5 times a(1-a)) must not pass for a global constant.
    if resid > ev.match_tolerance / 100 or abs(c - 1) < 1e-3:
        return None
    return _scale_findings(ev, c, resid, _rel(a, t), layer=None)


def _near(x: float, target: float) -> bool:
    return abs(x - target) <= 1e-3 * max(abs(target), 1e-12)


def _scale_findings(ev: Evidence, c: float, resid: float, rel_right: float, layer: int | None) -> list:
    n = len(ev.X)
    L = len(ev.net.layers)
    evidence = (f"the code's gradients are {c:.6g} times the right ones (to {resid:.1e}); "
                f"they differ from the right gradients by {rel_right:.1e}")
    out = []
    sign = -1.0 if c < 0 else 1.0
    mag = abs(c)
    if sign < 0:
        out.append(Finding("scale/sign", layer, "error", "every gradient has the wrong sign", evidence,
                           "the output delta is p - y (prediction minus target), not y - p; the update then "
                           "subtracts lr * gradient", 0.97))
        if _near(mag, 1):
            return out
    if _near(mag, n):
        out.append(Finding(
            "scale/batch-sum", None, "error",
            f"every gradient is {n} times too large: summed, not averaged, over the {n} examples",
            evidence, f"the loss is a mean over the batch, so its gradient is too: divide the output delta by "
            f"N = X.shape[{0 if ev.layout == 'rows' else 1}] once, e.g. delta_out = (p - y) / N", 0.97))
    elif _near(mag * n, 1):
        out.append(Finding(
            "scale/batch-sum", None, "error",
            f"every gradient is {n} times too small: divided by the batch size N = {n} twice", evidence,
            "divide by N once only: either the output delta or the weight gradients, not both", 0.95))
    elif ev.net.loss == "mse" and (_near(mag, 2) or _near(mag, 0.5)):
        out.append(Finding(
            "loss-derivative/scale", L, "error",
            f"the output delta is {mag:g} times the right one: the 2 of the squared error "
            + ("is missing" if mag < 1 else "is counted twice"), evidence,
            "the derivative of sum((a - y)**2) / N is 2 * (a - y) / N (network.loss mse has no 1/2)", 0.9))
    else:
        hint = _count_hint(ev, mag, layer)
        out.append(Finding("scale/constant", layer, "error",
                           f"{'every gradient' if layer is None else f'layer {layer} gradients'} "
                           f"{mag:.4g} times the right one{hint}", evidence,
                           "find the factor: the batch size is N = "
                           f"{n}, the widths are {', '.join(map(str, ev.net.widths))}", 0.85))
    return out


def _count_hint(ev: Evidence, c: float, layer: int | None) -> str:
    n = len(ev.X)
    for w in sorted(set(ev.net.widths)):
        if _near(c, 1 / w):
            return f" (divided by {w}, a layer width, instead of averaging over the batch?)"
        if _near(c, n / w):
            return f" (divided by {w}, a layer width, instead of the batch size {n}?)"
    return ""


def _candidates(ev: Evidence, k: int, right) -> list:
    out = []
    for ident in _LAYER_SEARCH + ["regularization/missing"]:
        out += CATALOG[ident].variants(ev.net, k)
    # Fitted scales: the output delta (flows down) or this layer's gradients alone.
    roles = [r for r in "Wb" if (k, r) in ev.analytic]  # a layer without a bias has W only
    a = np.concatenate([ev.analytic[(k, r)].ravel() for r in roles])
    t = np.concatenate([right[k - 1]["Wb".index(r)].ravel() for r in roles])
    if np.any(t):
        c = float(a @ t / (t @ t))
        if abs(c - 1) > 1e-3 and np.isfinite(c) and c != 0:
            out.append(LayerScaled(k, c))
            if k == len(ev.net.layers):
                out.append(Scaled("loss-derivative/scale", c, output_only=True, form=f"delta_out x{c:.4g}"))
    return out


def _layer_search(ev: Evidence, cache, top: int):
    """From the top wrong layer down: at each layer that the mistakes found so far do not explain,
    find the mistake (or two) that reproduces the code's gradient there."""
    mistakes: list = []
    found: list = []
    tol = ev.match_tolerance
    for k in range(top, 0, -1):
        right = reference.backward(ev.net, ev.params, ev.X, ev.Y, tuple(mistakes), cache=cache)
        base = _layer_rel(ev, right, k)
        if base <= tol:
            continue
        cands = _candidates(ev, k, right)
        scored = []
        for v in cands:
            g = reference.backward(ev.net, ev.params, ev.X, ev.Y, tuple(mistakes) + (v,), cache=cache)
            scored.append((_layer_rel(ev, g, k), (v,)))
        best = min(scored, key=lambda s: s[0]) if scored else (np.inf, ())
        if best[0] > tol:
            for v1, v2 in itertools.combinations(cands, 2):
                if v1.id == v2.id:
                    continue
                g = reference.backward(ev.net, ev.params, ev.X, ev.Y, tuple(mistakes) + (v1, v2), cache=cache)
                scored.append((_layer_rel(ev, g, k), (v1, v2)))
            best = min(scored, key=lambda s: s[0]) if scored else best
        if best[0] > tol:
            found.append(_unknown_finding(ev, k, right, base))
            return found, mistakes
        matching = [s for s in scored if s[0] <= max(tol, 10 * best[0]) and len(s[1]) == len(best[1])]
        chosen = min(matching, key=lambda s: tuple(_rank(v) for v in s[1]))
        others = sorted({v.id for s in matching for v in s[1]} - {v.id for v in chosen[1]})
        for v in chosen[1]:
            found.append(_finding(ev, v, k, chosen[0], base, others, len(matching)))
        mistakes += list(chosen[1])
    return found, mistakes


def _rank(v) -> int:
    return _PRIORITY.index(v.id) if v.id in _PRIORITY else len(_PRIORITY)


def _merge_global(ev: Evidence, found: list) -> list:
    """One regularization finding for the whole network when every layer lacks its L2 term."""
    reg = [f for f in found if f.id == "regularization/missing"]
    if len(reg) > 1 and len(reg) == len(ev.net.layers):
        rest = [f for f in found if f.id != "regularization/missing"]
        f = reg[0]
        return rest + [Finding(f.id, None, f.severity,
                               "no weight gradient has the L2 term of the loss",
                               f.detail, f.fix, min(x.confidence for x in reg))]
    return found


def _finding(ev: Evidence, v, k: int, score: float, base: float, others: list, n_matching: int) -> Finding:
    net, L = ev.net, len(ev.net.layers)
    layer = net.layers[k - 1]
    act = ACTIVATIONS[layer.activation]
    form = getattr(v, "form", "")
    evidence = (f"the code's gradient at layer {k} matches this mistake to {score:.1e} and the correct "
                f"gradient only to {base:.1e}")
    if others:
        evidence += f"; equally consistent with: {', '.join(others)}"
    confidence = (0.98 if score < ev.match_tolerance / 100 else 0.9) / max(1, len({*others}) + 1) ** 0.5
    where = f"layer {k} ({layer.activation})"
    rows = ev.layout == "rows"
    if v.id == "activation-derivative/of-output":
        title = f"{where}: derivative taken of the activated output: {form} where a = {act.name}(z) already"
        fix = f"a is already {act.name}(z): use {act.formula} (times the upstream gradient)"
    elif v.id == "activation-derivative/of-upstream":
        title = f"{where}: activation derivative evaluated at the upstream gradient: {form}"
        fix = (f"multiply the upstream gradient by the derivative at this layer's own input: dz = dA * f'(z), "
               f"for {act.name} dz = dA * {act.formula}")
    elif v.id == "activation-derivative/missing":
        title = f"{where}: the activation derivative is missing (dz = dA)"
        fix = f"multiply by the {act.name} derivative: dz = dA * {act.formula}"
    elif v.id == "activation-derivative/wrong-layer":
        title = f"{where}: another layer's activation in the derivative: {form}"
        fix = f"use layer {k}'s own cached values: dz{k} = dA{k} * {act.formula.replace('a', f'a{k}')}"
    elif v.id == "activation-derivative/formula":
        title = f"{where}: wrong derivative formula: {form}"
        fix = f"the derivative of {act.name} is {act.formula}, with a = {act.name}(z) the layer's output"
    elif v.id == "bias-gradient/before-activation":
        title = f"{where}: bias gradient taken before the activation derivative"
        fix = ("db = dz.sum(axis=0)" if rows else "db = dz.sum(axis=1, keepdims=True)") + \
              " with dz = dA * f'(z), not dA"
    elif v.id == "weight-gradient/transposed":
        title = f"{where}: weight gradient transposed"
        fix = "dW = a_prev.T @ dz" if rows else "dW = dz @ a_prev.T"
    elif v.id == "loss-derivative/softmax-twice":
        title = (f"layer {k} ({layer.activation} output): {layer.activation} derivative applied on top of p - y: "
                 f"{form}")
        fix = (f"with {net.loss.replace('_', '-')} the gradient at the output's pre-activation is already "
               "(p - y) / N; drop the extra derivative factor")
    elif v.id == "regularization/missing":
        title = f"{where}: the weight gradient lacks the L2 term l2 * W"
        fix = f"add {net.l2:g} * W to dW (the derivative of l2/2 * sum(W**2))"
    elif v.id == "loss-derivative/scale" or isinstance(v, LayerScaled):
        c = v.c
        scaled = _scale_findings(ev, c, score, base, layer=k if isinstance(v, LayerScaled) else None)
        f = scaled[0]
        if isinstance(v, Scaled) and f.id == "scale/constant":
            return Finding("loss-derivative/scale", L, "error",
                           f"layer {L} (output): the output delta is {c:.4g} times the right one", evidence,
                           "check the constant factors of the loss derivative", confidence)
        return Finding(f.id, f.layer if f.id != "loss-derivative/scale" else L, f.severity, f.title,
                       evidence, f.fix, confidence)
    elif v.id == "step/stale-weights":
        title = f"{where}: gradient passed down through already-updated weights"
        fix = "compute the gradient for the layer below before updating W"
    else:
        title, fix = f"{where}: {CATALOG[v.id].title}", CATALOG[v.id].right
    return Finding(v.id, k, "error", title, evidence, fix, confidence)


def _unknown_finding(ev: Evidence, k: int, right, base: float) -> Finding:
    dW, db = right[k - 1]
    aW, ab = ev.analytic[(k, "W")], ev.analytic.get((k, "b"), db)
    tol = ev.match_tolerance
    bad_W = np.abs(aW - dW) > tol * (np.abs(aW) + np.abs(dW)) + 1e-12 * (np.abs(dW).max() + 1e-300)
    bad_b = np.abs(ab - db) > tol * (np.abs(ab) + np.abs(db)) + 1e-12 * (np.abs(db).max() + 1e-300)
    pattern = _pattern(bad_W, bad_b, ev.layout)
    factor = ""
    for name, a, r, bad in (("weight", aW, dW, bad_W), ("bias", ab, db, bad_b)):
        if bad.any() and np.any(r):
            c = float(np.vdot(a, r) / np.vdot(r, r))
            if _rel(a, c * r) <= tol / 10:
                n = len(ev.X)
                why = f" (the batch size {n})" if _near(abs(c), n) or _near(abs(c), 1 / n) else ""
                factor += f"; the {name} gradient is exactly {c:.4g} times the right one{why}"
    return Finding(
        "unknown", k, "error",
        f"layer {k} ({ev.net.layers[k - 1].activation}): wrong, and no known mistake reproduces it; "
        f"wrong entries: {pattern}{factor}",
        f"relative error {base:.1e} against the right gradient of this layer (the layers above are right or "
        "explained)", "compare this layer's backward step by step with the forward it inverts: "
                      "dz = dA * f'(z), dW from the layer's input and dz, db = dz summed over the batch", 0.5)


def _pattern(bad_W: np.ndarray, bad_b: np.ndarray, layout: str) -> str:
    """Which entries are wrong, in words (W canonical (in, out): rows are inputs, columns units)."""
    if not bad_W.any() and bad_b.any():
        return "only the bias" + ("" if bad_b.all() else f" (units {_list(np.flatnonzero(bad_b.ravel()))})")
    if bad_W.any() and not bad_b.any():
        part = "only the weights"
    else:
        part = "weights and bias"
    if bad_W.all():
        return f"{part}, every weight entry"
    units = np.flatnonzero(bad_W.any(axis=0))
    inputs = np.flatnonzero(bad_W.any(axis=1))
    if bad_W[:, units].all() and len(units) < bad_W.shape[1]:
        return f"{part}: those of units {_list(units)} of this layer"
    if bad_W[inputs, :].all() and len(inputs) < bad_W.shape[0]:
        return f"{part}: those from inputs {_list(inputs)}"
    return f"{part}: {int(bad_W.sum())} of {bad_W.size} weight entries"


def param_pattern(bad: np.ndarray, role: str) -> str:
    """Which entries of one parameter are wrong, in words; ``bad`` in canonical shape (W is (in, out),
    b is (out,) or (N, out) per example)."""
    if role == "b":
        units = bad.any(axis=0) if bad.ndim == 2 else bad.ravel()
        return "every entry" if units.all() else f"units {_list(np.flatnonzero(units))}"
    text = _pattern(bad, np.zeros(bad.shape[1], dtype=bool), "rows").removeprefix("only the weights").lstrip(",: ")
    if text.startswith("those of units "):
        return f"units {text.removeprefix('those of units ').removesuffix(' of this layer')} (their weights from every input)"
    if text.startswith("those from inputs "):
        return f"inputs {text.removeprefix('those from inputs ')} (their weights to every unit)"
    return text.replace("every weight entry", "every entry")


def _list(ix) -> str:
    ix = [int(i) for i in ix]
    return ", ".join(map(str, ix[:8])) + (", ..." if len(ix) > 8 else "")
