"""Finite-difference derivatives of a scalar function of one array.

Every function here takes ``f(x) -> float`` and the array ``x`` itself. ``x`` is perturbed in
place (so a caller whose ``f`` reads the array through other references sees the perturbation)
and restored bit for bit before the function returns, whatever ``f`` does.

The one-sided derivatives are kept next to the central one: where they disagree by more than
smooth curvature can explain, the probe crossed a kink (ReLU at 0, a max with ties), and any
value between them is a valid subgradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Loss = Callable[[np.ndarray], float]

# How many machine epsilons of |f| one evaluation of a typical loss may be off by: a loss is a
# sum of many rounded terms, so its rounding error is a few dozen ulps, not one.
ROUNDING_ULPS = 64.0


@dataclass(frozen=True)
class EntryProbes:
    """Derivatives of f along single entries of x.

    Shapes: every array is (k,) for the k probed entries ``indices`` (flat indices into x).
    ``noise`` is the estimated error of ``central`` due to rounding in f, per entry.
    """

    indices: np.ndarray
    central: np.ndarray
    plus: np.ndarray  # (f(x + h) - f(x)) / h
    minus: np.ndarray  # (f(x) - f(x - h)) / h
    noise: np.ndarray
    f0: float
    calls: int


def loss_noise(f0: float, dtype: np.dtype) -> float:
    """Estimated rounding error of one evaluation of a loss whose value is f0, computed in dtype."""
    return ROUNDING_ULPS * float(np.finfo(dtype).eps) * max(abs(f0), 1e-30)


def step_sizes(x: np.ndarray, indices: np.ndarray, eps: float) -> np.ndarray:
    """Relative steps: eps for entries near zero, eps*|x_i| for large entries."""
    values = np.abs(x.flat[indices])
    return eps * np.maximum(1.0, values.astype(np.float64))


def probe_entries(
    f: Loss,
    x: np.ndarray,
    indices: np.ndarray,
    eps: float,
    *,
    f0: float | None = None,
    dtype: np.dtype | None = None,
) -> EntryProbes:
    """Central and one-sided differences of f along each flat index of x in ``indices``.

    The actual step taken is read back from x after rounding to x's dtype, so float32 arrays get
    an exact quotient. ``dtype`` is the precision the loss is computed in (defaults to x's).
    """
    indices = np.asarray(indices, dtype=np.intp)
    if f0 is None:
        f0 = float(f(x))
    noise_f = loss_noise(f0, dtype or x.dtype)
    steps = step_sizes(x, indices, eps)
    k = len(indices)
    central = np.empty(k)
    plus = np.empty(k)
    minus = np.empty(k)
    noise = np.empty(k)
    flat = x.flat
    for j, (i, h) in enumerate(zip(indices, steps)):
        orig = flat[i]
        try:
            flat[i] = orig + h
            hp = float(flat[i]) - float(orig)
            fp = float(f(x))
            flat[i] = orig - h
            hm = float(orig) - float(flat[i])
            fm = float(f(x))
        finally:
            flat[i] = orig
        central[j] = (fp - fm) / (hp + hm)
        plus[j] = (fp - f0) / hp
        minus[j] = (f0 - fm) / hm
        noise[j] = 2.0 * noise_f / (hp + hm)
    return EntryProbes(indices, central, plus, minus, noise, f0, 2 * k)


def richardson_entries(
    f: Loss,
    x: np.ndarray,
    indices: np.ndarray,
    eps: float,
    *,
    f0: float | None = None,
    dtype: np.dtype | None = None,
) -> EntryProbes:
    """Richardson-extrapolated central differences (steps h and 2h), error O(h^4).

    ``noise`` then also holds the truncation estimate |D(h) - D(2h)| / 3, so it bounds the
    error of ``central`` rather than only its rounding part.
    """
    fine = probe_entries(f, x, indices, eps, f0=f0, dtype=dtype)
    coarse = probe_entries(f, x, indices, 2 * eps, f0=fine.f0, dtype=dtype)
    central = (4.0 * fine.central - coarse.central) / 3.0
    truncation = np.abs(fine.central - coarse.central) / 3.0
    noise = (4.0 * fine.noise + coarse.noise) / 3.0 + truncation
    return EntryProbes(
        fine.indices, central, fine.plus, fine.minus, noise, fine.f0, fine.calls + coarse.calls
    )


@dataclass(frozen=True)
class DirectionProbes:
    """Directional derivatives along random directions d (unit norm), shapes (k,)."""

    analytic: np.ndarray  # a . d
    numeric: np.ndarray  # (f(x + h d) - f(x - h d)) / 2h, with the rounded steps
    noise: np.ndarray
    seed: int
    calls: int


def probe_directions(
    f: Loss,
    x: np.ndarray,
    analytic: np.ndarray,
    count: int,
    eps: float,
    rng: np.random.Generator,
    *,
    f0: float | None = None,
    dtype: np.dtype | None = None,
    seed: int = 0,
) -> DirectionProbes:
    """Compare a . d with the numeric directional derivative along ``count`` Gaussian directions.

    ``analytic`` has x's size (any shape). x is restored from one saved copy after each probe.
    """
    if f0 is None:
        f0 = float(f(x))
    noise_f = loss_noise(f0, dtype or x.dtype)
    a = np.asarray(analytic, dtype=np.float64).reshape(-1)
    saved = x.copy()
    base = saved.astype(np.float64).reshape(x.shape)
    h = eps * max(1.0, float(np.sqrt(np.mean(base**2))))
    an = np.empty(count)
    nu = np.empty(count)
    noise = np.empty(count)
    try:
        for j in range(count):
            d = rng.standard_normal(x.shape)
            d /= np.linalg.norm(d)
            x[...] = base + h * d
            dp = (x.astype(np.float64) - base).reshape(-1)
            fp = float(f(x))
            x[...] = base - h * d
            dm = (base - x.astype(np.float64)).reshape(-1)
            fm = float(f(x))
            np.copyto(x, saved)
            step = dp + dm  # the actual (rounded) displacement between the two probes
            norm = float(np.linalg.norm(step))
            an[j] = float(a @ step) / norm
            nu[j] = (fp - fm) / norm
            noise[j] = 2.0 * noise_f / norm
    finally:
        np.copyto(x, saved)
    return DirectionProbes(an, nu, noise, seed, 2 * count)
