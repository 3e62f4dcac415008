"""Name the mistake: rebuild known backprop mistakes in the reference network and see which one
the code's gradient matches.

The catalog is a registry: every entry has an id (contract section 4), what the mistake looks
like in code, the right formula, and a constructor of concrete ``Variant``s of the reference
backward pass at a layer. ``explain`` walks the layers from the loss down, each time keeping the
mistakes already found, so layers that are wrong only because of a layer above are not blamed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from backcheck import reference
from backcheck.errors import ConfigError
from backcheck.reference import ACTIVATIONS, Backprop, Variant
from backcheck.results import WRONG, Finding
from backcheck.spec import NetworkSpec

# ---------------------------------------------------------------- the catalog


@dataclass(frozen=True)
class Entry:
    id: str
    title: str  # the mistake, one line
    looks_like: str  # what it looks like in code
    right: str  # the right formula
    variants: Callable | None = None  # variants(net, k) -> list[Variant] at layer k (1-based)
    injectable: bool = True
    scope: str = "layer"  # layer | output | global


CATALOG: dict[str, Entry] = {}


def mistake(id: str, title: str, looks_like: str, right: str, scope: str = "layer", injectable: bool = True):
    def register(fn):
        CATALOG[id] = Entry(id, title, looks_like, right, fn, injectable, scope)
        return fn

    return register


def _upstream(bp: Backprop, G):
    """dL/dA at the current layer: G from above, or the loss's own derivative at the output."""
    return bp.output_grad() if G is None else G


class DeltaVariant(Variant):
    """delta_k computed by ``rule(bp, G) -> delta`` instead of G * f'(z_k)."""

    def __init__(self, id: str, layer: int, rule, form: str):
        self.id, self.layer, self.rule, self.form = id, layer, rule, form

    def delta(self, bp, G):
        return self.rule(bp, _upstream(bp, G))


def _act(net: NetworkSpec, k: int):
    layer = net.layers[k - 1]
    return ACTIVATIONS[layer.activation], layer.alpha


# Activations whose derivative, evaluated at the output a = f(z), differs from f'(z).
_OUTPUT_SENSITIVE = ("sigmoid", "tanh")


@mistake("activation-derivative/of-output",
         "derivative evaluated at the activation's output instead of its input",
         "a = sigmoid(z) ... delta = dA * sigmoid(a) * (1 - sigmoid(a))   # a is already activated",
         "sigmoid: dA * a * (1 - a); tanh: dA * (1 - a**2)")
def _of_output(net, k):
    act, alpha = _act(net, k)
    if act.name not in _OUTPUT_SENSITIVE:
        return []
    return [DeltaVariant("activation-derivative/of-output", k,
                         lambda bp, G: G * act.df(bp.cache.A[k], alpha), f"{act.name}'(a)")]


@mistake("activation-derivative/of-upstream",
         "activation derivative evaluated at the upstream gradient instead of the layer's input",
         "dz = dactivate(dA)    or    dz = dA * (dA > 0)",
         "dz = dA * f'(z): the derivative at this layer's pre-activation z, times dA")
def _of_upstream(net, k):
    act, alpha = _act(net, k)
    if act.name in ("identity", "softmax"):
        return []
    # Code that averages over the batch only in dW/db passes per-example gradients N * G down;
    # a nonlinear f' then sees N * G, so both scalings are candidates.
    return [
        DeltaVariant("activation-derivative/of-upstream", k, lambda bp, G: act.df(G, alpha), f"{act.name}'(dA)"),
        DeltaVariant("activation-derivative/of-upstream", k, lambda bp, G: G * act.df(G, alpha),
                     f"dA * {act.name}'(dA)"),
        DeltaVariant("activation-derivative/of-upstream", k,
                     lambda bp, G: act.df(len(G) * G, alpha) / len(G), f"{act.name}'(dA)"),
        DeltaVariant("activation-derivative/of-upstream", k,
                     lambda bp, G: G * act.df(len(G) * G, alpha), f"dA * {act.name}'(dA)"),
    ]


@mistake("activation-derivative/missing",
         "no activation derivative at this layer",
         "dz = dA    # the activation's derivative forgotten",
         "dz = dA * f'(z)")
def _missing(net, k):
    act, _ = _act(net, k)
    if act.name in ("identity", "softmax"):
        return []
    return [DeltaVariant("activation-derivative/missing", k, lambda bp, G: G, "dA")]


@mistake("activation-derivative/wrong-layer",
         "another layer's activation used in the derivative",
         "dz2 = dA2 * a1 * (1 - a1)    # layer 1's output in layer 2's derivative",
         "each layer's derivative at its own pre-activation: dz_k = dA_k * f'(z_k)")
def _wrong_layer(net, k):
    act, alpha = _act(net, k)
    if act.name in ("identity", "softmax"):
        return []
    out = []
    for j in range(1, len(net.layers) + 1):
        if j == k or net.layers[j - 1].units != net.layers[k - 1].units:
            continue
        other, other_alpha = _act(net, j)
        out.append(DeltaVariant("activation-derivative/wrong-layer", k,
                                lambda bp, G, j=j: G * act.df(bp.cache.Z[j], alpha), f"f'(z{j})"))
        if other.name != act.name and other.name != "softmax":
            out.append(DeltaVariant("activation-derivative/wrong-layer", k,
                                    lambda bp, G, j=j, o=other, oa=other_alpha: G * o.df(bp.cache.Z[j], oa),
                                    f"{other.name}'(z{j})"))
    return out


_FORMULAS = {
    "sigmoid": [("1 - sigmoid(a)", lambda z, a: 1 - reference._sigmoid(a)),
                ("1 - a", lambda z, a: 1 - a),
                ("1 - a**2", lambda z, a: 1 - a**2),
                ("a", lambda z, a: a),
                ("z * (1 - z)", lambda z, a: z * (1 - z))],
    "tanh": [("1 - a", lambda z, a: 1 - a),
             ("a * (1 - a)", lambda z, a: a * (1 - a)),
             ("1 - z**2", lambda z, a: 1 - z**2),
             ("1 + a**2", lambda z, a: 1 + a**2)],
    "relu": [("a", lambda z, a: a),
             ("z", lambda z, a: z)],
    "leaky_relu": [("(z > 0)", lambda z, a: (z > 0).astype(float)),
                   ("a", lambda z, a: a)],
}


@mistake("activation-derivative/formula",
         "a wrong formula for the activation's derivative",
         "delta = dA * (1 - sigmoid(a))",
         "sigmoid: a * (1 - a); tanh: 1 - a**2; relu: (z > 0); leaky_relu: where(z > 0, 1, alpha)")
def _formula(net, k):
    act, _ = _act(net, k)
    return [DeltaVariant("activation-derivative/formula", k,
                         lambda bp, G, fn=fn: G * fn(bp.cache.Z[k], bp.cache.A[k]), text)
            for text, fn in _FORMULAS.get(act.name, [])]


class BiasBeforeActivation(Variant):
    id = "bias-gradient/before-activation"
    form = "sum(dA)"

    def __init__(self, layer: int):
        self.layer = layer

    def bias_grad(self, bp, G, delta):
        G = _upstream(bp, G)
        return G if bp.params[bp.k - 1][1].ndim == 2 else G.sum(axis=0)


@mistake("bias-gradient/before-activation",
         "bias gradient taken from the upstream gradient before the activation derivative",
         "db = dA.sum(axis=0)    # dA, not dz = dA * f'(z)",
         "db = dz.sum(axis=0) (rows) or dz.sum(axis=1, keepdims=True) (columns)")
def _bias_before(net, k):
    act, _ = _act(net, k)
    if not net.layers[k - 1].bias or act.name == "identity" or (k == len(net.layers) and act.name == "softmax"):
        return []
    return [BiasBeforeActivation(k)]


class Transposed(Variant):
    id = "weight-gradient/transposed"
    form = "dW.T"

    def __init__(self, layer: int):
        self.layer = layer

    def weight_grad(self, bp, delta):
        return (bp.cache.A[bp.k - 1].T @ delta + bp.net.l2 * bp.params[bp.k - 1][0]).T


@mistake("weight-gradient/transposed",
         "weight gradient transposed",
         "dW = delta.T @ a_prev    # (out, in) for a W of shape (in, out)",
         "rows: dW = a_prev.T @ delta; columns: dW = delta @ a_prev.T")
def _transposed(net, k):
    return [Transposed(k)] if net.widths[k - 1] == net.widths[k] else []


class Scaled(Variant):
    """Every gradient times ``c`` (global), or only the output delta times ``c`` (it then flows down)."""

    def __init__(self, id: str, c: float, output_only: bool = False, form: str = ""):
        self.id, self.c, self.output_only = id, c, output_only
        self.layer = None
        self.form = form or f"x{c:g}"

    def delta(self, bp, G):
        if self.output_only and G is None:
            return self.c * bp.output_delta()
        return None

    def finish(self, bp, grads):
        if self.output_only:
            return grads
        return [(self.c * dW, self.c * db) for dW, db in grads]


class BatchScaled(Scaled):
    """Every gradient times the batch size N (known only when the backward pass runs)."""

    def __init__(self):
        super().__init__("scale/batch-sum", 1.0, form="xN")

    def finish(self, bp, grads):
        n = len(bp.X)
        return [(n * dW, n * db) for dW, db in grads]


class LayerScaled(Variant):
    """Only this layer's dW and db times ``c`` (e.g. divided by the wrong count)."""

    id = "scale/constant"

    def __init__(self, layer: int, c: float):
        self.layer, self.c = layer, c
        self.form = f"x{c:.4g}"

    def weight_grad(self, bp, delta):
        return self.c * (bp.cache.A[bp.k - 1].T @ delta + bp.net.l2 * bp.params[bp.k - 1][0])

    def bias_grad(self, bp, G, delta):
        return self.c * (delta if bp.params[bp.k - 1][1].ndim == 2 else delta.sum(axis=0))


@mistake("scale/batch-sum", "every gradient N times too large: summed, not averaged, over the batch",
         "dW = a_prev.T @ delta    # while the loss is a mean over the N examples",
         "divide by the batch size once: delta_out = (p - y) / N", scope="global")
def _batch_sum(net, k):
    return []


@mistake("scale/sign", "every gradient has the wrong sign",
         "delta_out = y - p", "delta_out = p - y (the gradient points uphill; the update subtracts it)",
         scope="global")
def _sign(net, k):
    return []


@mistake("scale/constant", "gradients off by a constant factor",
         "dW = a_prev.T @ delta / n_features", "dW = a_prev.T @ delta with delta averaged over the batch once",
         scope="global")
def _constant(net, k):
    return []


class SoftmaxTwice(Variant):
    id = "loss-derivative/softmax-twice"

    def __init__(self, layer: int, jacobian: bool):
        self.layer, self.jacobian = layer, jacobian
        self.form = "J_softmax^T (p - y)" if jacobian else "(p - y) * p * (1 - p)"

    def delta(self, bp, G):
        if G is not None:
            return None
        P, combined = bp.cache.A[-1], bp.output_delta()
        if self.jacobian:
            return P * (combined - np.sum(combined * P, axis=1, keepdims=True))
        return combined * P * (1 - P)


@mistake("loss-derivative/softmax-twice",
         "softmax (or sigmoid) derivative applied on top of the combined gradient p - y",
         "delta_out = (p - y) / N * p * (1 - p)",
         "with cross-entropy the gradient at the output's pre-activation is already (p - y) / N",
         scope="output")
def _softmax_twice(net, k):
    L = len(net.layers)
    combined = (net.loss, net.layers[-1].activation) in (("cross_entropy", "softmax"),
                                                         ("binary_cross_entropy", "sigmoid"))
    if k != L or not combined:
        return []
    out = [SoftmaxTwice(k, False)]
    if net.layers[-1].activation == "softmax":
        out.append(SoftmaxTwice(k, True))
    return out


@mistake("loss-derivative/scale", "the output delta off by a constant factor (e.g. the 2 of a squared error)",
         "delta_out = (a - y) / N    # for mean((a - y)**2): the 2 is missing",
         "d/da of sum((a - y)**2) / N is 2 * (a - y) / N", scope="output")
def _loss_scale(net, k):
    if k != len(net.layers):
        return []
    return [Scaled("loss-derivative/scale", c, output_only=True, form=f"delta_out x{c:g}") for c in (0.5, 2.0)]


class NoL2(Variant):
    id = "regularization/missing"
    form = "no l2 * W"

    def __init__(self, layer: int | None, lam: float | None = None):
        self.layer, self.lam = layer, lam

    def weight_grad(self, bp, delta):
        lam = bp.net.l2 if self.lam is None else self.lam
        return bp.cache.A[bp.k - 1].T @ delta + (bp.net.l2 - lam) * bp.params[bp.k - 1][0]


@mistake("regularization/missing", "the loss has an L2 term, the gradient does not (or the other way round)",
         "loss = data_loss + lam / 2 * sum(W**2);  dW = a_prev.T @ delta",
         "dW = a_prev.T @ delta + lam * W", scope="global")
def _no_l2(net, k):
    return [NoL2(k)] if net.l2 else []


class Stale(Variant):
    id = "step/stale-weights"

    def __init__(self, layer: int, lr: float = 0.1):
        self.layer, self.lr = layer, lr
        self.form = f"W - {lr:g} * dW"

    def upstream(self, bp, delta, dW):
        return delta @ (bp.params[bp.k - 1][0] - self.lr * dW).T


@mistake("step/stale-weights", "backprop through weights that were already updated in this step",
         "W -= lr * dW;  dA_prev = delta @ W.T",
         "dA_prev = delta @ W.T with W as it was; update afterwards")
def _stale(net, k):
    return [Stale(k)] if k > 1 else []


@mistake("shape/mismatch", "a gradient whose shape cannot be matched to its parameter",
         "db = delta.sum()    # a scalar for a vector bias", "db has the bias's shape", injectable=False)
def _shape(net, k):
    return []


@mistake("unknown", "wrong, and no known pattern fits", "", "", injectable=False)
def _unknown(net, k):
    return []


# Order of preference when several mistakes reproduce the gradient equally well.
_PRIORITY = [
    "loss-derivative/softmax-twice", "activation-derivative/of-output", "activation-derivative/formula",
    "activation-derivative/missing", "activation-derivative/of-upstream", "bias-gradient/before-activation",
    "weight-gradient/transposed", "regularization/missing", "activation-derivative/wrong-layer",
    "loss-derivative/scale", "step/stale-weights",
]
# Mistakes that ``explain`` searches layer by layer (the global ones have their own tests).
_LAYER_SEARCH = [i for i in _PRIORITY if i not in ("step/stale-weights", "regularization/missing")]


# ---------------------------------------------------------------- --inject


def parse_injections(specs, net: NetworkSpec) -> tuple[Variant, ...]:
    """'id' or 'id@layer' -> variants of the reference backward. Raises ConfigError."""
    out = []
    for text in specs or ():
        ident, _, layer_text = text.partition("@")
        entry = CATALOG.get(ident)
        if entry is None or not entry.injectable:
            from difflib import get_close_matches

            names = [e.id for e in CATALOG.values() if e.injectable]
            close = get_close_matches(ident, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"--inject: no injectable mistake '{ident}'{hint}; `backcheck bugs` lists them")
        L = len(net.layers)
        if entry.scope == "global":
            if ident == "regularization/missing":
                if not net.l2:
                    raise ConfigError("--inject regularization/missing needs network.l2 above 0")
                out.append(NoL2(None))
            else:
                c = {"scale/sign": -1.0, "scale/constant": 3.0}.get(ident)
                out.append(Scaled(ident, c, form=ident) if c is not None else BatchScaled())
            continue
        try:
            layer = int(layer_text) if layer_text else (L if entry.scope == "output" else max(L - 1, 1))
        except ValueError:
            raise ConfigError(f"--inject {text}: the layer after @ must be a number") from None
        if not 1 <= layer <= L:
            raise ConfigError(f"--inject {text}: the network has layers 1 to {L}")
        variants = entry.variants(net, layer)
        if not variants:
            raise ConfigError(
                f"--inject {text}: this mistake does not apply to layer {layer} ({net.label(layer)})"
                + (" — for relu and leaky_relu the derivative of the output equals that of the input, so "
                   "this 'mistake' is harmless" if ident == "activation-derivative/of-output" else ""))
        out.append(variants[0])
    return tuple(out)



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
    wrong_layers = sorted({k for (k, _), st in ev.status.items() if st == WRONG}, reverse=True)
    if not wrong_layers:
        return _ordered(findings)
    cache = reference.forward(ev.net, ev.params, ev.X)
    scale = _global_scale(ev, cache)
    if scale:
        return _ordered(findings + scale)
    found, _ = _layer_search(ev, cache, wrong_layers[0])
    return _ordered(findings + _merge_global(ev, found))


def _ordered(findings: list) -> list:
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
