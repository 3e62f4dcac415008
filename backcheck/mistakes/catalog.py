"""The catalog of known backprop mistakes: a registry filled by ``@mistake``.

Every entry has an id (contract section 4), what the mistake looks like in code, the right
formula, and a constructor of concrete ``Variant``s of the reference backward pass at a layer
(``variants(net, k)``): the mistake rebuilt, so that ``matching`` can see which one the code's
gradient reproduces. A new layer type or mistake is a new entry here; the search does not change.
``parse_injections`` plants entries in the reference network (``verify --inject``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from backcheck import reference
from backcheck.errors import ConfigError
from backcheck.reference import ACTIVATIONS, Backprop, Variant
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
        if not ident.strip():
            raise ConfigError(f"--inject {text!r}: expected a mistake id such as activation-derivative/of-output, "
                              "optionally with @LAYER; `backcheck bugs` lists them")
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
