"""Finite-difference derivatives and the noise of a scalar function of one array.

Pure arithmetic: every function here plans the perturbed values of an array ``x``, hands them
to a *losses* callback that evaluates the function there, and turns the returned values into
quotients. Who evaluates (the code under test in a sandboxed process, backcheck's own network in
one stacked pass, a plain Python function in a test) is the callback's business:

- ``entries(idx, values) -> (k,)``: the function with ``x.flat[idx[j]] = values[j]`` alone, for each j;
- ``arrays([arrays]) -> (m,)``: the function at each whole array;
- ``blocks([idx], [values]) -> (m,)``: the function with a subset of entries set, for each subset.

``InPlace(f, x)`` provides the three for a function ``f(x) -> float`` by perturbing ``x`` in place
and restoring it bit for bit. Values are planned in ``x``'s dtype and the step actually taken is
read back from the rounded values, so float32 arrays get exact quotients.

The one-sided quotients are kept next to the central one: where they disagree by more than smooth
curvature and noise can explain, the probe met a kink (ReLU at 0, a max with ties).
``noise_level`` estimates the computational noise of the function from a difference table
(Moré and Wild, "Estimating computational noise", SIAM J. Sci. Comput. 33, 2011): the judge
chooses its steps and error bounds from it instead of guessing from dtypes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

F64 = np.dtype(np.float64)
# A float64 evaluation is good to a few ulps of |f| at best; the floor of any noise estimate.
ROUNDING_FLOOR_ULPS = 2.0


@dataclass(frozen=True)
class EntryProbes:
    """Derivatives of f along single entries of x.

    Shapes: every array is (k,) for the k probed entries ``indices`` (flat indices into x).
    ``noise`` is the estimated error of ``central`` (its noise part, plus the truncation estimate
    after Richardson extrapolation), per entry.
    """

    indices: np.ndarray
    central: np.ndarray
    plus: np.ndarray  # (f(x + h) - f(x)) / h
    minus: np.ndarray  # (f(x) - f(x - h)) / h
    noise: np.ndarray
    f0: float
    calls: int
    moved: np.ndarray | None = None  # (k,) bool: f(x + h) or f(x - h) differs from f0 at all


def default_noise(f0: float) -> float:
    """A float64 evaluation's rounding, for callers that have not measured the noise."""
    return 64.0 * float(np.finfo(np.float64).eps) * max(abs(f0), 1e-30)


def step_sizes(x: np.ndarray, indices: np.ndarray, eps: float) -> np.ndarray:
    """Relative steps: eps for entries near zero, eps*|x_i| for large entries."""
    values = np.abs(x.reshape(-1)[indices] if x.flags.c_contiguous else x.flat[indices])
    return eps * np.maximum(1.0, values.astype(np.float64))


def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1) if x.flags.c_contiguous else x.ravel()


def shifted(base: np.ndarray, step: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """base + step rounded to ``dtype`` (at least one ulp away from base), and the step actually
    taken (float64)."""
    moved = (base.astype(F64) + step).astype(dtype)
    same = moved == base
    if same.any():  # the step rounds away: take the next representable number in its direction
        towards = np.where(step[same] >= 0, np.inf, -np.inf).astype(dtype)
        moved[same] = np.nextafter(base[same].astype(dtype), towards)
    return moved, moved.astype(F64) - base.astype(F64)


def probe_entries(entries, x: np.ndarray, indices, eps: float, *, f0: float, noise_f: float | None = None,
                  steps: np.ndarray | None = None) -> EntryProbes:
    """Central and one-sided differences of f along each flat index of x in ``indices``: one call
    of ``entries`` with 2k values. ``noise_f`` is the noise of one evaluation of f (absolute)."""
    indices = np.asarray(indices, dtype=np.intp)
    base = _flat(x)[indices]
    h = step_sizes(x, indices, eps) if steps is None else steps
    plus, hp = shifted(base, h, x.dtype)
    minus, hm = shifted(base, -h, x.dtype)
    hm = -hm
    both = np.asarray(entries(np.concatenate([indices, indices]), np.concatenate([plus, minus])), dtype=F64)
    k = len(indices)
    return entry_quotients(indices, both[:k], both[k:], hp, hm, f0, default_noise(f0) if noise_f is None else noise_f)


def entry_quotients(indices, fp, fm, hp, hm, f0: float, noise_f: float) -> EntryProbes:
    """Central and one-sided quotients from the losses f(x + hp e_i), f(x - hm e_i), shapes (k,)."""
    return EntryProbes(np.asarray(indices, dtype=np.intp), (fp - fm) / (hp + hm), (fp - f0) / hp,
                       (f0 - fm) / hm, 2.0 * noise_f / (hp + hm), f0, 2 * len(fp), (fp != f0) | (fm != f0))


def richardson_entries(entries, x: np.ndarray, indices, eps: float, *, f0: float,
                       noise_f: float | None = None) -> EntryProbes:
    """Richardson-extrapolated central differences (steps h and 2h), error O(h^4).

    ``noise`` then also holds the truncation estimate |D(h) - D(2h)| / 3, so it bounds the
    error of ``central`` rather than only its noise part.
    """
    fine = probe_entries(entries, x, indices, eps, f0=f0, noise_f=noise_f)
    return extrapolate(fine, probe_entries(entries, x, indices, 2 * eps, f0=f0, noise_f=noise_f))


def extrapolate(fine: EntryProbes, coarse: EntryProbes) -> EntryProbes:
    """Richardson's combination of central differences at steps h (fine) and 2h (coarse)."""
    central = (4.0 * fine.central - coarse.central) / 3.0
    truncation = np.abs(fine.central - coarse.central) / 3.0
    noise = (4.0 * fine.noise + coarse.noise) / 3.0 + truncation
    moved = fine.moved | coarse.moved if fine.moved is not None and coarse.moved is not None else None
    return EntryProbes(fine.indices, central, fine.plus, fine.minus, noise, fine.f0, fine.calls + coarse.calls, moved)


def concat(parts: list) -> EntryProbes:
    """Entry probes of several chunks, in order."""
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    moved = cat("moved") if all(p.moved is not None for p in parts) else None
    return EntryProbes(cat("indices"), cat("central"), cat("plus"), cat("minus"), cat("noise"),
                       parts[0].f0, sum(p.calls for p in parts), moved)


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
    moved: np.ndarray | None = None


def direction(x: np.ndarray, eps: float, seed: int) -> np.ndarray:
    """The Gaussian displacement of direction ``seed``: N(0, 1) times each entry's relative step."""
    g = np.random.default_rng(int(seed)).standard_normal(x.shape)
    return g * (np.maximum(1.0, np.abs(x.astype(F64))) * eps)


def probe_directions(arrays, x: np.ndarray, analytic: np.ndarray, count: int, eps: float,
                     rng: np.random.Generator, *, f0: float, noise_f: float | None = None, seed: int = 0,
                     seeds: np.ndarray | None = None) -> DirectionProbes:
    """Compare a . d with the numeric directional derivative along ``count`` Gaussian directions:
    one call of ``arrays`` with 2 * count arrays.

    Direction j is drawn from its own generator seeded by ``seeds[j]`` (drawn from ``rng`` unless
    given), so passing the returned seeds probes the same directions again, e.g. at another eps.
    Each entry of d is N(0, 1) times the entry's relative step eps * max(1, |x_i|), so every entry
    moves about as far as in a single-entry probe. ``analytic`` has x's size (any shape).
    """
    noise_f = default_noise(f0) if noise_f is None else noise_f
    a = np.asarray(analytic, dtype=F64).reshape(-1)
    if seeds is None:
        seeds = rng.integers(0, 2**63 - 1, size=count)
    base = x.astype(F64)
    ups, downs, values = [], [], []
    for s in seeds:
        g = direction(x, eps, s)
        up, down = (base + g).astype(x.dtype), (base - g).astype(x.dtype)
        values += [up, down]
        ups.append((up.astype(F64) - base).reshape(-1))
        downs.append((base - down.astype(F64)).reshape(-1))
    losses = np.asarray(arrays(values), dtype=F64) if values else np.zeros(0)
    out = _Quotients(len(seeds))
    for j in range(len(seeds)):
        step = ups[j] + downs[j]
        out.add(j, losses[2 * j], losses[2 * j + 1], f0, float(a @ step), float(np.linalg.norm(step)), noise_f)
    return dataclasses.replace(out.result(seed), seeds=np.asarray(seeds))


def probe_blocks(blocks_fn, x: np.ndarray, analytic: np.ndarray, blocks: list, eps: float,
                 rng: np.random.Generator, *, f0: float, noise_f: float | None = None, seed: int = 0) -> DirectionProbes:
    """One Gaussian direction supported on each block of flat indices of x (a row, a column): one
    call of ``blocks_fn`` with two subsets per block.

    A block whose numeric and analytic directional derivatives disagree holds a wrong entry; the
    cost is two evaluations of f per block, whatever the block's size.
    """
    noise_f = default_noise(f0) if noise_f is None else noise_f
    a = np.asarray(analytic, dtype=F64).reshape(-1)
    flat = _flat(x)
    idx_list, val_list, steps, dots = [], [], [], []
    for idx in blocks:
        base = flat[idx].astype(F64)
        g = rng.standard_normal(len(idx)) * np.maximum(1.0, np.abs(base)) * eps
        up, down = (base + g).astype(x.dtype), (base - g).astype(x.dtype)
        idx_list += [idx, idx]
        val_list += [up, down]
        step = (up.astype(F64) - base) + (base - down.astype(F64))
        steps.append(float(np.linalg.norm(step)))
        dots.append(float(a[idx] @ step))
    losses = np.asarray(blocks_fn(idx_list, val_list), dtype=F64) if idx_list else np.zeros(0)
    out = _Quotients(len(blocks))
    for j in range(len(blocks)):
        out.add(j, losses[2 * j], losses[2 * j + 1], f0, dots[j], steps[j], noise_f)
    return out.result(seed)


class _Quotients:
    """Accumulates directional probes: differences of f divided by the length of the displacement."""

    def __init__(self, count: int):
        self.an, self.nu, self.noise = np.zeros(count), np.zeros(count), np.zeros(count)
        self.plus, self.minus = np.zeros(count), np.zeros(count)
        self.moved = np.zeros(count, dtype=bool)

    def add(self, j: int, fp: float, fm: float, f0: float, a_dot_step: float, norm: float, noise_f: float):
        self.moved[j] = fp != f0 or fm != f0
        if norm == 0.0:  # every entry of the block rounds back to itself: nothing was probed
            return
        half = norm / 2.0
        self.an[j] = a_dot_step / norm
        self.nu[j] = (fp - fm) / norm
        self.plus[j] = (fp - f0) / half
        self.minus[j] = (f0 - fm) / half
        self.noise[j] = 2.0 * noise_f / norm

    def result(self, seed: int) -> DirectionProbes:
        return DirectionProbes(self.an, self.nu, self.noise, seed, 2 * len(self.an), self.plus, self.minus,
                               moved=self.moved)


# ---------------------------------------------------------------- complex step


class NotComplex(Exception):
    """The code does not carry a complex step through its loss (reason in the message)."""


COMPLEX_H = 1e-20  # any tiny step is exact to rounding; this one keeps h**2 below underflow


def complex_steps(x: np.ndarray, indices) -> np.ndarray:
    return COMPLEX_H * np.maximum(1.0, np.abs(_flat(x)[np.asarray(indices, dtype=np.intp)].astype(F64)))


def complex_quotients(values, indices, steps: np.ndarray, f0: float) -> EntryProbes:
    """Complex-step derivatives Im f(x + i h e_k) / h from the losses the code returned under the
    complex steps ``steps`` (k,): no difference of nearby values, so exact to rounding whatever h.

    Raises ``NotComplex`` when a value came back without an imaginary part, with a non-finite one,
    or with a real part that is not f0."""
    indices = np.asarray(indices, dtype=np.intp)
    tol_real = default_noise(f0)
    central = np.empty(len(indices))
    for j, value in enumerate(values):
        central[j] = _imaginary(value, f0, tol_real) / steps[j]
    noise = 64.0 * float(np.finfo(np.float64).eps) * np.abs(central)
    return EntryProbes(indices, central, central.copy(), central.copy(), noise, f0, len(indices),
                       np.ones(len(indices), dtype=bool))


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


# ---------------------------------------------------------------- noise


@dataclass(frozen=True)
class Noise:
    """The computational noise of f near x: the standard deviation of f's values about a smooth
    function, absolute (``level``). ``inform`` is ECnoise's: 1 the estimate is good, 2 the spacing
    was too small (f did not change), 3 too large (no noise visible above f's own variation)."""

    level: float
    inform: int
    order: int = 0
    spacing: float = 0.0


NOISE_POINTS = 9  # f at x + (j - 4) h, j = 0..8: differences up to order 8


def noise_level(values) -> Noise:
    """ECnoise (Moré and Wild 2011, Algorithm 1) on f at equally spaced points along a line.

    The k-th differences of a smooth function shrink like h^k while those of noise grow like
    sqrt(C(2k, k)) sigma; where three consecutive orders give the same scaled level and the k-th
    differences change sign, that level is the noise."""
    f = np.asarray(values, dtype=F64).copy()
    if not np.all(np.isfinite(f)):
        return Noise(0.0, 3)
    nf = len(f)
    fmin, fmax = float(f.min()), float(f.max())
    if fmax == fmin:
        return Noise(0.0, 2)
    if (fmax - fmin) / max(abs(fmax), abs(fmin)) > 0.1:
        return Noise(0.0, 3)
    f = f - f[nf // 2]  # differences do not change; squares of huge values do not overflow
    levels = np.zeros(nf - 1)
    sign_change = np.zeros(nf - 1, dtype=bool)
    gamma = 1.0
    for j in range(1, nf):
        f = np.diff(f)
        if j == 1 and np.count_nonzero(f == 0) >= nf / 2:
            return Noise(0.0, 2)  # f is flat at this spacing for most steps: too small to see noise
        sign_change[j - 1] = f.min() * f.max() < 0
        gamma *= 0.5 * (j / (2 * j - 1))
        levels[j - 1] = math.sqrt(gamma * float(np.mean(f**2)))
    for k in range(nf - 3):
        window = levels[k:k + 3]
        if window.max() <= 4 * window.min() and sign_change[k]:
            return Noise(float(levels[k]), 1, k + 1)
    return Noise(0.0, 3)


class InPlace:
    """The three evaluation callbacks for a plain function ``f(x) -> float`` of the array ``x``:
    ``x`` is changed in place for each evaluation and restored bit for bit."""

    def __init__(self, f: Callable[[np.ndarray], float], x: np.ndarray):
        self.f, self.x = f, x

    def entries(self, idx, values) -> np.ndarray:
        flat = self.x.reshape(-1) if self.x.flags.c_contiguous else self.x.flat
        out = np.empty(len(idx))
        for j, (i, v) in enumerate(zip(np.asarray(idx).tolist(), values)):
            orig = flat[i]
            try:
                flat[i] = v
                out[j] = self.f(self.x)
            finally:
                flat[i] = orig
        return out

    def arrays(self, arrays) -> np.ndarray:
        saved = self.x.copy()
        out = np.empty(len(arrays))
        try:
            for j, a in enumerate(arrays):
                np.copyto(self.x, a)
                out[j] = self.f(self.x)
        finally:
            np.copyto(self.x, saved)
        return out

    def blocks(self, idx_list, val_list) -> np.ndarray:
        flat = self.x.reshape(-1) if self.x.flags.c_contiguous else self.x.flat
        out = np.empty(len(idx_list))
        for j, (idx, vals) in enumerate(zip(idx_list, val_list)):
            orig = np.array(flat[idx])
            try:
                flat[idx] = vals
                out[j] = self.f(self.x)
            finally:
                flat[idx] = orig
        return out
