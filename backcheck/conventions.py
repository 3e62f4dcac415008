"""Differences from the finite differences that are conventions, not bugs: a stabilised loss.

Students write cross-entropy as ``-log(p + 1e-7)`` or clip ``p`` to ``[1e-7, 1 - 1e-7]``: at the
examples whose probability is near the stabiliser, the derivative of that loss differs from the
derivative the code's backward computes (the exact one, ``(p - y) / N``, or one with the clipped
``p`` in it). That is a convention of the loss, not a mistake in backprop, and it is confined to
those examples.

The test follows from that: with g_n the exact gradient contribution of example n (backcheck's
reference network at the code's parameters), both the code's gradient and the numeric one must be
``sum over the other examples of g_n + sum over S of w_n g_n`` with weights 0 <= w_n <= 1 on the
examples S at the stabiliser (a clip or an epsilon only ever shrinks an example's gradient). When
both fit to within their error bounds, the difference is the stabiliser's; a mistake anywhere
else leaves a residual, and the check fails as before.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from backcheck import reference

NEAR = 1e-3  # a probability below this (or above 1 - this) is where a stabiliser may act
WEIGHT_SLACK = 0.02  # weights may come out this far outside [0, 1] from rounding


@dataclass(frozen=True)
class Stabilised:
    examples: int  # how many examples the stabiliser acts on
    batch: int
    smallest: float  # the smallest such probability
    weights: tuple  # the fitted weights of the numeric gradient (1: untouched, 0: flat)


def stabilised_examples(net, params, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Indices of the examples whose log-probability a loss's clip or epsilon can change."""
    if net.loss not in ("cross_entropy", "binary_cross_entropy"):
        return np.zeros(0, dtype=np.intp)
    with np.errstate(all="ignore"):
        P = reference.forward(net, params, X).A[-1]
    if net.loss == "cross_entropy":
        p = np.sum(P * Y, axis=1)  # the target's probability
        near = (p < NEAR) | (p > 1 - NEAR)
    else:
        near = np.any((P < NEAR) | (P > 1 - NEAR), axis=1)
    return np.flatnonzero(near)


def explain(net, params, X: np.ndarray, Y: np.ndarray, analytic: dict, numeric: dict, noise: dict,
            tolerance: float) -> Stabilised | None:
    """A stabiliser explaining the difference between ``analytic`` and ``numeric`` (canonical
    arrays keyed by (layer, "W"|"b"); numeric NaN where not probed; ``noise`` each numeric entry's
    error bound), or None."""
    S = stabilised_examples(net, params, X, Y)
    if not len(S) or len(S) == len(X):
        return None
    keys = sorted(analytic)
    per = _per_example(net, params, X, Y, keys)  # (N, P)
    reg = _flatten(_l2_part(net, params), keys)
    a = _flatten(analytic, keys)
    n = _flatten(numeric, keys)
    u = _flatten(noise, keys)
    others = np.setdiff1d(np.arange(len(X)), S)
    base = reg + per[others].sum(axis=0)
    G = per[S].T  # (P, |S|)
    fit_a = _fit(a, base, G, np.zeros_like(a), tolerance)
    probed = np.isfinite(n)
    fit_n = _fit(n[probed], base[probed], G[probed], u[probed], tolerance)
    if fit_a is None or fit_n is None:
        return None
    with np.errstate(all="ignore"):
        P = reference.forward(net, params, X).A[-1]
    probs = np.sum(P * Y, axis=1) if net.loss == "cross_entropy" else np.min(np.minimum(P, 1 - P), axis=1)
    return Stabilised(len(S), len(X), float(np.min(probs[S])), tuple(float(w) for w in fit_n))


def _fit(target: np.ndarray, base: np.ndarray, G: np.ndarray, noise: np.ndarray, tolerance: float):
    """Weights in [0, 1] with target = base + G w to within the error bounds, or None."""
    if not target.size:
        return None
    rhs = target - base
    w, *_ = np.linalg.lstsq(G, rhs, rcond=None)
    if np.any(w < -WEIGHT_SLACK) or np.any(w > 1 + WEIGHT_SLACK):
        return None
    w = np.clip(w, 0.0, 1.0)
    resid = float(np.linalg.norm(rhs - G @ w))
    allowed = tolerance * (np.linalg.norm(target) + np.linalg.norm(base + G @ w)) + 3.0 * float(np.linalg.norm(noise))
    return w if resid <= allowed else None


def _per_example(net, params, X, Y, keys) -> np.ndarray:
    """Row n: the gradient contribution of example n to the loss (without L2), flattened over keys."""
    N = len(X)
    plain = replace(net, l2=0.0)
    factor = 1.0 if net.reduction == "sum" else 1.0 / N
    rows = []
    for i in range(N):
        p_i = [(W, b[i:i + 1] if np.ndim(b) == 2 else b) for W, b in params]
        g = reference.backward(plain, p_i, X[i:i + 1], Y[i:i + 1])
        full = {}
        for k, (dW, db) in enumerate(g, start=1):
            full[(k, "W")] = dW * factor
            if np.ndim(params[k - 1][1]) == 2:
                row = np.zeros_like(params[k - 1][1])
                row[i] = db.reshape(-1) * factor
                full[(k, "b")] = row
            else:
                full[(k, "b")] = db * factor
        rows.append(_flatten(full, keys))
    return np.array(rows)


def _l2_part(net, params) -> dict:
    out = {}
    for k, (W, b) in enumerate(params, start=1):
        out[(k, "W")] = net.l2 * W
        out[(k, "b")] = np.zeros_like(b)
    return out


def _flatten(arrays: dict, keys) -> np.ndarray:
    return np.concatenate([np.asarray(arrays[k], dtype=np.float64).ravel() for k in keys])
