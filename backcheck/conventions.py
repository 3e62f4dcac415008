"""Differences from the finite differences that are conventions, not bugs: a stabilised loss.

Students write cross-entropy as ``-log(p + eps)`` or clip ``p`` to ``[eps, 1 - eps]`` before the
log. Where the target's probability q is near eps, the derivative of that loss differs from the
derivative the code's backward computes, and only there: a convention of the loss, not a mistake
in backprop.

Both derivatives are known exactly. With D the exact gradient at the output's pre-activation
(``(p - y) / N``) and a weight per example (per output for a sigmoid output), the gradient of the
stabilised loss is the network's backward from ``D * w``:

- ``-log(q + eps)``: w = q / (q + eps);
- ``log(clip(q, eps, 1 - eps))``: w = 1 inside the clip, 0 outside (the loss is flat there).

The code's backward either ignores the stabiliser (w = 1, the usual ``p - y``) or carries the
clipped q into ``dloss = -y / clip(p)`` (w = q / clip(q)). ``explain`` tries these models over the
eps that matter and accepts one only when it reproduces *both* the numeric gradient (to within its
measured error bounds) and the code's gradient (to within the tolerance), and the code's loss
value too: one parameter, eps, for every example, so a mistake anywhere else cannot be absorbed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backcheck import reference
from backcheck.reference import Variant

EPS_GRID = np.logspace(-16, -1, 61)  # the epsilons tried for ``log(q + eps)``


@dataclass(frozen=True)
class Stabilised:
    kind: str  # "epsilon" | "clip"
    eps: float
    examples: int  # examples (or outputs) whose gradient the stabiliser changes beyond the tolerance
    batch: int
    smallest: float  # the smallest target probability among them
    code: str  # how the code's backward treats it: "exact" (p - y) | "clipped" (dloss of the clipped p)
    loss_matches: bool  # the stabilised loss reproduces the code's loss value


class _OutputDelta(Variant):
    """The backward pass started from a given output delta (the stabilised loss's)."""

    def __init__(self, layer: int, delta: np.ndarray):
        self.layer, self._delta = layer, delta

    def delta(self, bp, G):
        return self._delta if G is None else None


def target_probabilities(net, params, X: np.ndarray, Y: np.ndarray):
    """(q, P): the probability each example (sigmoid outputs: each output) gives its target, and
    the output probabilities; q has the shape of the output delta's weights."""
    with np.errstate(all="ignore"):
        P = reference.forward(net, params, X).A[-1]
    if net.loss == "cross_entropy":
        q = np.sum(P * Y, axis=1, keepdims=True) * np.ones_like(P)
    else:
        q = np.where(Y > 0.5, P, 1 - P)
    return q, P


def explain(net, params, X: np.ndarray, Y: np.ndarray, analytic: dict, numeric: dict, noise: dict,
            tolerance: float, loss_value: float | None = None) -> Stabilised | None:
    """A stabiliser explaining the difference between ``analytic`` and ``numeric`` (canonical arrays
    keyed by (layer, "W"|"b"); numeric NaN where not probed; ``noise`` each numeric entry's error
    bound), or None."""
    if net.loss not in ("cross_entropy", "binary_cross_entropy") or \
            (net.loss, net.layers[-1].activation) not in (("cross_entropy", "softmax"),
                                                          ("binary_cross_entropy", "sigmoid")):
        return None
    q, _ = target_probabilities(net, params, X, Y)
    if not np.all(np.isfinite(q)):
        return None
    L = len(net.layers)
    with np.errstate(all="ignore"):
        bp = reference.Backprop(net, params, X, Y, reference.forward(net, params, X))
        D = bp.output_delta()
    keys = sorted(analytic)
    a = _flatten(analytic, keys)
    n, u = _flatten(numeric, keys), _flatten(noise, keys)
    probed = np.isfinite(n)
    if not probed.any():
        return None

    def gradient(w):
        g = reference.backward(net, params, X, Y, (_OutputDelta(L, D * w),))
        return _flatten({(k, r): g[k - 1]["Wb".index(r)] for k, r in keys}, keys)

    def fits(target, predicted, bounds):
        """As the verdict judges: the error's norm and every entry within their bounds."""
        err = np.abs(target - predicted)
        floor = tolerance * float(np.mean(np.abs(target))) if not np.any(bounds) else 0.0
        entry = tolerance * (np.abs(target) + np.abs(predicted)) + 5.0 * bounds + floor
        norm = tolerance * (np.linalg.norm(target) + np.linalg.norm(predicted)) + 3.0 * float(np.linalg.norm(bounds))
        return bool(np.all(err <= entry)) and float(np.linalg.norm(err)) <= norm + floor

    exact = gradient(np.ones_like(q))
    zero = np.zeros_like(a)
    if fits(n[probed], exact[probed], u[probed]):
        return None  # the numeric gradient is the exact one: there is nothing for a stabiliser to explain
    for kind, eps, w_num in _models(q):
        if not np.any(np.abs(1 - w_num) > 1e-12):
            continue
        deviates = np.abs(1 - w_num) >= max(tolerance, np.abs(1 - w_num).max() / 10)
        g_num = gradient(w_num)
        if not fits(n[probed], g_num[probed], u[probed]):
            continue
        for code, g_code in (("exact", exact), ("clipped", gradient(q / np.clip(q, eps, 1 - eps)))):
            if fits(a, g_code, zero):
                rows = np.any(deviates, axis=1) if net.loss == "cross_entropy" else deviates.reshape(-1)
                loss_ok = loss_value is not None and _loss_matches(net, params, q, kind, eps, loss_value, X)
                return Stabilised(kind, float(eps), int(rows.sum()), len(X), float(q[deviates].min()), code,
                                  loss_ok)
    return None


def _models(q: np.ndarray):
    """(kind, eps, weights) for every stabiliser that changes some example's gradient: the epsilons
    of EPS_GRID (every round power of ten students write, and the quarter decades between) for both
    kinds, and for a clip also just above and below each example's q (where the flat region starts)."""
    for eps in EPS_GRID:
        yield "epsilon", eps, q / (q + eps)
    clips = set(EPS_GRID.tolist())
    for v in np.concatenate([q.ravel(), 1 - q.ravel()]).tolist():
        if 0 < v < 0.5:
            clips.update((v * (1 + 1e-9), v * (1 - 1e-9)))
    for e in sorted(clips):
        yield "clip", e, ((q >= e) & (q <= 1 - e)).astype(float)


def _loss_matches(net, params, q, kind, eps, value, X) -> bool:
    with np.errstate(all="ignore"):
        if kind == "epsilon":
            terms = -np.log(q + eps)
        else:
            terms = -np.log(np.clip(q, eps, 1 - eps))
    col = terms[:, :1] if net.loss == "cross_entropy" else terms
    total = net.scale * float(np.sum(col) / len(X))
    if net.l2:
        total += sum(float(np.sum(reference.l2_penalty(net, W))) for W, _ in params)
    return abs(total - value) <= 1e-6 * max(abs(value), 1e-12)


def _flatten(arrays: dict, keys) -> np.ndarray:
    return np.concatenate([np.asarray(arrays[k], dtype=np.float64).ravel() for k in keys])
