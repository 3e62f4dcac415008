"""Finite-difference derivatives of a scalar function of one array.

Every function here takes ``f(x) -> float`` and the array ``x`` itself. ``x`` is perturbed in
place (so a caller whose ``f`` reads the array through other references sees the perturbation)
and restored bit for bit before the function returns, whatever ``f`` does.

The one-sided derivatives are kept next to the central one: where they disagree by more than
smooth curvature can explain, the probe crossed a kink (ReLU at 0, a max with ties), and any
value between them is a valid subgradient.
"""

from __future__ import annotations

import dataclasses
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
    steps = step_sizes(x, indices, eps)
    k = len(indices)
    fp, fm, hp, hm = np.empty(k), np.empty(k), np.empty(k), np.empty(k)
    # A 1-d view writes through to x and indexes faster than x.flat; x.flat serves the rest.
    flat = x.reshape(-1) if x.flags.c_contiguous else x.flat
    for j, (i, h) in enumerate(zip(indices.tolist(), steps.tolist())):
        orig = flat[i]
        o = float(orig)
        try:
            flat[i] = o + h
            hp[j] = float(flat[i]) - o
            fp[j] = f(x)
            flat[i] = o - h
            hm[j] = o - float(flat[i])
            fm[j] = f(x)
        finally:
            flat[i] = orig
    return entry_quotients(indices, fp, fm, hp, hm, f0, loss_noise(f0, dtype or x.dtype))


def entry_quotients(indices, fp, fm, hp, hm, f0: float, noise_f: float) -> EntryProbes:
    """Central and one-sided quotients from the losses f(x + hp e_i), f(x - hm e_i), shapes (k,)."""
    return EntryProbes(np.asarray(indices, dtype=np.intp), (fp - fm) / (hp + hm), (fp - f0) / hp,
                       (f0 - fm) / hm, 2.0 * noise_f / (hp + hm), f0, 2 * len(fp))


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
    return extrapolate(fine, probe_entries(f, x, indices, 2 * eps, f0=fine.f0, dtype=dtype))


def extrapolate(fine: EntryProbes, coarse: EntryProbes) -> EntryProbes:
    """Richardson's combination of central differences at steps h (fine) and 2h (coarse)."""
    central = (4.0 * fine.central - coarse.central) / 3.0
    truncation = np.abs(fine.central - coarse.central) / 3.0
    noise = (4.0 * fine.noise + coarse.noise) / 3.0 + truncation
    return EntryProbes(
        fine.indices, central, fine.plus, fine.minus, noise, fine.f0, fine.calls + coarse.calls
    )


@dataclass(frozen=True)
class DirectionProbes:
    """Directional derivatives of f, shapes (k,) for k probes, all per unit of displacement.

    ``analytic`` is a . d and ``numeric`` (f(x + h d) - f(x - h d)) / 2h along the displacement d
    actually taken (read back from the rounded array); ``plus`` and ``minus`` are the one-sided
    quotients, kept to recognise a probe that crossed a kink.
    """

    analytic: np.ndarray
    numeric: np.ndarray
    noise: np.ndarray
    seed: int
    calls: int
    plus: np.ndarray | None = None
    minus: np.ndarray | None = None
    seeds: np.ndarray | None = None  # (k,) each direction's own seed: the same direction can be probed again


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
    seeds: np.ndarray | None = None,
) -> DirectionProbes:
    """Compare a . d with the numeric directional derivative along ``count`` Gaussian directions.

    Direction j is drawn from its own generator seeded by ``seeds[j]`` (drawn from ``rng`` unless
    given), so passing the returned seeds probes the same directions again, e.g. at another eps.

    Each entry of d is N(0, 1) times the entry's relative step eps * max(1, |x_i|), so every entry
    moves about as far as in a single-entry probe. ``analytic`` has x's size (any shape). x is
    perturbed in place through preallocated buffers and restored bit for bit from one saved copy:
    no allocation of x's size per probe.
    """
    if f0 is None:
        f0 = float(f(x))
    noise_f = loss_noise(f0, dtype or x.dtype)
    a = np.asarray(analytic, dtype=np.float64).reshape(x.shape)
    saved = x.copy()
    base = saved.astype(np.float64, copy=False)
    scale = np.maximum(1.0, np.abs(base)) * eps
    g = np.empty(x.shape)
    up = np.empty(x.shape)
    down = np.empty(x.shape)
    if seeds is None:
        seeds = rng.integers(0, 2**63 - 1, size=count)
    count = len(seeds)
    out = _Quotients(count)
    try:
        for j in range(count):
            np.random.default_rng(int(seeds[j])).standard_normal(out=g)
            g *= scale
            np.add(base, g, out=x, casting="unsafe")
            np.subtract(x, base, out=up)  # the displacement actually taken
            fp = float(f(x))
            np.subtract(base, g, out=x, casting="unsafe")
            np.subtract(base, x, out=down)
            fm = float(f(x))
            np.copyto(x, saved)
            up += down
            out.add(j, fp, fm, f0, float(np.vdot(a, up)), float(np.linalg.norm(up)), noise_f)
    finally:
        np.copyto(x, saved)
    return dataclasses.replace(out.result(seed), seeds=np.asarray(seeds))


def probe_blocks(
    f: Loss,
    x: np.ndarray,
    analytic: np.ndarray,
    blocks: list,
    eps: float,
    rng: np.random.Generator,
    *,
    f0: float | None = None,
    dtype: np.dtype | None = None,
    seed: int = 0,
) -> DirectionProbes:
    """One Gaussian direction supported on each block of flat indices of x (a row, a column).

    A block whose numeric and analytic directional derivatives disagree holds a wrong entry; the
    cost is two calls of f per block, whatever the block's size. Only the block's entries are
    touched (saved and restored bit for bit), so a probe costs O(block), not O(x).
    """
    if f0 is None:
        f0 = float(f(x))
    noise_f = loss_noise(f0, dtype or x.dtype)
    a = np.asarray(analytic, dtype=np.float64).reshape(-1)
    flat = x.reshape(-1) if x.flags.c_contiguous else None  # a view writes through; .flat is slower
    out = _Quotients(len(blocks))
    for j, idx in enumerate(blocks):
        view = flat if flat is not None else x.flat
        orig = np.array(view[idx])
        base = orig.astype(np.float64)
        g = rng.standard_normal(len(idx)) * np.maximum(1.0, np.abs(base)) * eps
        try:
            view[idx] = base + g
            up = np.asarray(view[idx], dtype=np.float64) - base
            fp = float(f(x))
            view[idx] = base - g
            down = base - np.asarray(view[idx], dtype=np.float64)
            fm = float(f(x))
        finally:
            view[idx] = orig
        step = up + down
        out.add(j, fp, fm, f0, float(a[idx] @ step), float(np.linalg.norm(step)), noise_f)
    return out.result(seed)


class _Quotients:
    """Accumulates directional probes: differences of f divided by the length of the displacement."""

    def __init__(self, count: int):
        self.an, self.nu, self.noise = np.zeros(count), np.zeros(count), np.zeros(count)
        self.plus, self.minus = np.zeros(count), np.zeros(count)

    def add(self, j: int, fp: float, fm: float, f0: float, a_dot_step: float, norm: float, noise_f: float):
        if norm == 0.0:  # every entry of the block rounds back to itself: nothing was probed
            return
        half = norm / 2.0
        self.an[j] = a_dot_step / norm
        self.nu[j] = (fp - fm) / norm
        self.plus[j] = (fp - f0) / half
        self.minus[j] = (f0 - fm) / half
        self.noise[j] = 2.0 * noise_f / norm

    def result(self, seed: int) -> DirectionProbes:
        return DirectionProbes(self.an, self.nu, self.noise, seed, 2 * len(self.an), self.plus, self.minus)


class NotComplex(Exception):
    """The code does not carry a complex step through its loss (reason in the message)."""


def complex_entries(
    f: Callable[[], complex],
    x: np.ndarray,
    indices: np.ndarray,
    *,
    f0: float,
    h: float = 1e-20,
) -> EntryProbes:
    """Complex-step derivatives Im f(x + i h e_k) / h: no difference of nearby values, so exact to
    rounding whatever h (no step to tune, no cancellation).

    ``x`` is a complex array that ``f`` reads (the caller swaps it in for the real parameter);
    ``f()`` returns the loss as the code returned it. Raises ``NotComplex`` when a value comes back
    without an imaginary part, with a non-finite one, or with a real part that is not f0.
    """
    indices = np.asarray(indices, dtype=np.intp)
    k = len(indices)
    central = np.empty(k)
    flat = x.reshape(-1) if x.flags.c_contiguous else x.flat
    tol_real = loss_noise(f0, np.dtype(np.float64))
    for j, i in enumerate(indices):
        orig = flat[i]
        step = h * max(1.0, abs(orig.real))
        try:
            flat[i] = orig + 1j * step
            value = f()
        finally:
            flat[i] = orig
        central[j] = _imaginary(value, f0, tol_real) / step
    noise = ROUNDING_ULPS * float(np.finfo(np.float64).eps) * np.abs(central)
    return EntryProbes(indices, central, central.copy(), central.copy(), noise, f0, k)


def _imaginary(value, f0: float, tol_real: float) -> float:
    arr = np.asarray(value)
    if arr.size != 1 or not np.iscomplexobj(arr):
        raise NotComplex(f"the loss came back as {arr.dtype} for complex parameters (a float() or a cast drops "
                         "the imaginary part)")
    v = complex(arr.reshape(-1)[0])
    if not np.isfinite(v.imag) or not np.isfinite(v.real):
        raise NotComplex("the loss came back with a non-finite imaginary part")
    if abs(v.real - f0) > tol_real:
        raise NotComplex(f"the loss's real part changed under a complex step ({v.real!r} vs {f0!r}): the code "
                         "does not treat complex numbers as analytic (abs, a comparison, a cast?)")
    return v.imag
