"""Numeric vs analytic gradient of every parameter: never wave wrong code through, never cry wolf.

Everything is measured, nothing is guessed from dtypes:

- **Noise.** The computational noise of the code's loss is measured where it is checked (a
  difference table along two entries, ``numgrad.noise_level``); the step of the probes, the
  tolerance and each numeric derivative's error bound follow from it. A loss computed in float32,
  float16 or with any other noise is recognised whatever the arrays' dtypes.
- **Disagreement.** An entry disagrees when its error exceeds the relative tolerance plus three
  times its error bound (the numeric one, plus the code's own when its gradient is read off a
  step); it is believed only when a second, more accurate measurement (a wider step with
  Richardson extrapolation) confirms it. A parameter is wrong when the norm of its errors exceeds
  what its error bounds allow, or when an entry is confirmed wrong.
- **Kinks are never a free pass.** A probe whose one-sided quotients disagree met a kink (ReLU at
  0, a tie in a max). It is measured again with smaller steps, which leave a kink at some distance
  behind; a kink that stays (the point sits on it) is left to ``check_point``, which moves every
  parameter a little to a nearby point and judges those entries there with the code's gradient
  at that point. Only what no kink-free point resolves is inconclusive.
- **What cannot be decided is inconclusive,** never ok: a gradient below what the measured noise
  resolves, entries on kinks that moving does not clear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from backcheck import numgrad
from backcheck.errors import UserCodeError
from backcheck.results import INCONCLUSIVE, OK, WRONG, CheckWarning, Finding, ParamResult, Worst

# Default mode. Up to MAX_EXHAUSTIVE entries a parameter is probed entry by entry: at most about
# 4,000 loss calls, well under a second for networks this size, and an exact map of the wrong
# entries where mistakes often touch only some (a bias, an output layer). Above it, 2 calls per
# entry buy nothing for the verdict: a Gaussian direction moves every entry at once, so
# SAMPLE_DIRECTIONS of them (plus SAMPLE_ENTRIES stratified entries for the magnitudes) decide
# in 2 * (8 + 16) = 48 calls; only a parameter they find wrong is searched for its wrong entries.
MAX_EXHAUSTIVE = 2_048
SAMPLE_ENTRIES = 16
SAMPLE_DIRECTIONS = 8
CALLS_PER_PROBE = {"central": 2, "richardson": 4, "complex": 1}  # loss calls per entry or direction probed
SEARCH_ENTRIES = 4_096  # candidate entries of a search probed one by one up to this many ...
SEARCH_SAMPLE = 256  # ... else a sample of this many
BORDERLINE = 3.0  # error within this factor of what is allowed: re-measure with a better method
SIGMAS = 3.0  # an entry disagrees beyond this many error bounds ...
CONFIRM_SIGMAS = 5.0  # ... and is believed wrong when a better measurement agrees beyond this many
WIDE = 10.0  # the confirming measurement's step, in units of the probe step
SHRINK_STEPS = (8.0, 8.0)  # a disagreeing probe is measured again with 8 and 64 times smaller steps
NOISE_SAFETY = 2.0  # the measured noise level is an estimate: bounds use this multiple of it
REL_FLOOR = 1e-12
UNRESOLVED = 0.3  # a gradient whose error bound exceeds this share of its norm cannot be resolved
RESOLUTION_MAX = 0.05  # ok means "agrees to within this much of the gradient" at worst; coarser is inconclusive
STEP_RATES = (1e-4, 1e-2)  # learning rates at which a step: gradient is read
FLOAT64_NOISE = 1e-12  # relative noise up to which the loss is taken as computed in float64
FLOAT32_NOISE = 3e-6  # ... and in float32; noisier losses are "noisy"


# ---------------------------------------------------------------- precision, measured


@dataclass(frozen=True)
class Precision:
    """Step and tolerance for the noise the code's loss was measured to have."""

    dtype: str  # what the loss is computed in, as measured: float64 | float32 | noisy
    eps: float  # relative step of the probes
    tolerance: float
    noise_f: float  # the noise of one loss evaluation, absolute (NOISE_SAFETY times the estimate)
    noise_rel: float  # the estimate relative to |f0|
    loss_dtype: np.dtype = np.dtype(np.float64)

    @property
    def resolution(self) -> float:
        """The relative error of a gradient of typical size that this check can tell from noise."""
        return max(self.tolerance, SIGMAS * self.noise_rel / max(self.eps, 1e-300))


def measure_precision(ev, values: dict, f0: float, grads: dict, eps: float | None,
                      tolerance: float | None) -> tuple[Precision, list]:
    """Measure the loss's noise along the best-connected entry of the first and of the last
    parameter, and choose the step and tolerance from it (unless the config gives them)."""
    levels, flat = [], []
    repeat = _repeatability(ev, values, f0)
    if repeat:
        levels.append(repeat)
    for s in _noise_slots(ev.slots):
        x, g = values[s], np.abs(np.asarray(grads[s], dtype=np.float64)).reshape(-1)
        if not x.size:
            continue
        i = int(np.argmax(g)) if g.any() else int(np.argmax(np.abs(x.reshape(-1))))
        level, constant = _noise_along(ev, s, x, i, f0)
        levels.append(level)
        flat.append(constant)
    floor = numgrad.ROUNDING_FLOOR_ULPS * float(np.finfo(np.float64).eps) * max(abs(f0), 1e-300)
    level = max(levels + [floor])
    rel = level / max(abs(f0), 1e-300)
    small = [s.code_name for s in ev.slots if values[s].dtype.itemsize < 8]
    if rel <= FLOAT64_NOISE and not small:
        dtype = "float64"
    elif rel <= FLOAT32_NOISE:
        dtype = "float32"
    else:
        dtype = "noisy"
    ulp = max([float(np.finfo(values[s].dtype).eps) for s in ev.slots if values[s].dtype.kind == "f"] + [0.0])
    chosen_eps = eps or max(1e-6, 64 * ulp if small else 0.0, rel ** (1 / 3) if dtype != "float64" else 0.0)
    chosen_tol = tolerance or max(1e-6, 3 * rel ** (2 / 3) if dtype != "float64" else 0.0)
    p = Precision(dtype, min(chosen_eps, 0.1), chosen_tol, NOISE_SAFETY * level, rel,
                  np.dtype(getattr(ev, "loss_dtype", np.float64)))
    warnings = []
    measured = f"measured noise {rel:.1g} of the loss's value"
    if repeat:
        measured += ", and two calls at the same parameters gave different losses"
    if dtype == "float32":
        what = (f"{_names(small)} {'is a float32 array' if len(small) == 1 else 'are float32 arrays'}"
                if rel <= FLOAT64_NOISE else f"the loss is computed in float32 ({measured})")
        warnings.append(CheckWarning(
            "precision/float32",
            f"{what}: checked with eps {p.eps:.2g} and tolerance {p.tolerance:.2g}, which float32 allows; a gradient "
            f"error below about {p.resolution:.0e} of a gradient's size cannot be told from rounding. For an exact "
            "check, compute in float64 (create the arrays as float64 and remove the casts to float32)"))
    elif dtype == "noisy":
        warnings.append(CheckWarning(
            "precision/noisy",
            f"the loss is noisy ({measured}: float16 arithmetic, or randomness such as unseeded dropout?): checked "
            f"with eps {p.eps:.2g} and tolerance {p.tolerance:.2g}; a gradient error below about {p.resolution:.0e} "
            "of a gradient's size cannot be seen. Compute in float64 and make the loss deterministic for an exact "
            "check"))
    return p, warnings


def _repeatability(ev, values: dict, f0: float) -> float:
    """The spread of the loss over repeated calls at the same parameters: 0 for deterministic code,
    the noise itself for code that draws fresh random numbers (unseeded dropout) on every call."""
    s = ev.slots[0]
    x = values[s]
    if not x.size:
        return 0.0
    same = np.full(2, x.reshape(-1)[0])
    again = np.asarray(ev.entries(s, np.zeros(2, dtype=np.intp), same), dtype=np.float64)
    bad = ~np.isfinite(again)
    if bad.any():  # not a probe's overflow: nothing moved
        raise UserCodeError(
            f"the loss became {again[bad][0]} when called again at the parameters the check starts from, where it "
            f"was {f0:.6g}: the loss depends on more than the parameters and the data (a call counter, a cache, "
            "unseeded randomness?)", kind="nan")
    spread = np.abs(np.append(again, f0) - f0)
    return float(spread.max()) if np.all(np.isfinite(spread)) else 0.0


def _noise_slots(slots) -> list:
    """The parameters whose entries the noise is measured along: the first and the last weight."""
    weights = [s for s in slots if s.role == "W"] or list(slots)
    return [weights[0]] + ([weights[-1]] if len(weights) > 1 else [])


def _noise_along(ev, slot, x: np.ndarray, i: int, f0: float) -> tuple[float, bool]:
    """ECnoise along entry i of ``slot``, the spacing moved until the estimate is informative.
    (level, whether the loss never changed along the entry)."""
    base = float(x.reshape(-1)[i])
    scale = max(1.0, abs(base))
    ulp = float(np.spacing(np.asarray(abs(base) + scale * 0.1, dtype=x.dtype)))
    h = max(2.0 ** math.ceil(math.log2(1e-6 * scale)), 2 * ulp)
    seen = set()
    constant = True
    for _ in range(6):
        offsets = (np.arange(numgrad.NOISE_POINTS) - numgrad.NOISE_POINTS // 2) * h
        vals = (base + offsets).astype(x.dtype)
        around = np.delete(vals, numgrad.NOISE_POINTS // 2)
        losses = np.asarray(ev.entries(slot, np.full(len(around), i), around), dtype=np.float64)
        _finite(losses, slot, lambda j: f"measuring the loss's noise along {slot.code_name}", x)
        f = np.insert(losses, numgrad.NOISE_POINTS // 2, f0)
        constant = constant and bool(np.all(f == f0))
        est = numgrad.noise_level(f)
        if est.inform == 1:
            return est.level, False
        step = 100.0 if est.inform == 2 else 0.01
        h_next = h * step
        if h_next > 0.05 * scale or h_next < 2 * ulp or (est.inform, h_next) in seen:
            break
        seen.add((est.inform, h))
        h = h_next
    return 0.0, constant


def _names(names: list) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


# ---------------------------------------------------------------- the code's own gradient


@dataclass
class Analytic:
    """The code's gradient per slot (its own shapes, float64), the bound of its own error per entry
    (gradients read off steps carry the rounding of the update), and what was noticed on the way.

    ``stale`` are the layers whose step-read gradient changes with the learning rate; ``at_rate``
    their gradients at the step's rate ``rate``, which is what the table compares."""

    grads: dict
    uncertainty: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    stale: set = field(default_factory=set)
    at_rate: dict = field(default_factory=dict)
    rate: float | None = None


def analytic_gradient(ev, values: dict, precision_dtype: str = "float64", rate: float = 0.1,
                      fixed_lr: float | None = None, step_name: str = "step", top_layer: int = 1,
                      where: str | None = None) -> Analytic:
    """Call the code's gradients, or read them off plain-SGD steps: (before - after) / lr at two
    rates, extrapolated to lr -> 0 (a gradient that changes with lr is stale weights or not SGD)."""
    if not ev.uses_step:
        grads = ev.gradient()
        return Analytic({s: np.asarray(g, dtype=np.float64) for s, g in grads.items()},
                        {s: 0.0 for s in grads})
    if fixed_lr:  # the code's own rate: one read, nothing to extrapolate
        g = ev.step_gradient(fixed_lr)
        return Analytic(g, {s: _step_rounding(values[s], g[s], fixed_lr) for s in g})
    lr1, lr2 = STEP_RATES if precision_dtype == "float64" else (1e-2, 1e-1)
    g1, g2 = ev.step_gradient(lr1), ev.step_gradient(lr2)
    u1 = {s: _step_rounding(values[s], g1[s], lr1) for s in g1}
    u2 = {s: _step_rounding(values[s], g2[s], lr2) for s in g2}
    out = Analytic({s: g1[s] - lr1 * (g2[s] - g1[s]) / (lr2 - lr1) for s in g1},  # extrapolated to lr -> 0
                   {s: u1[s] * (1 + lr1 / (lr2 - lr1)) + u2[s] * lr1 / (lr2 - lr1) for s in g1})
    out.notes.append(f"gradients read from {step_name}() as (before - after) / lr at lr = {lr1:g} and "
                     f"{lr2:g}, extrapolated to lr -> 0")
    moved = set()
    for s in ev.slots:
        diff = np.abs(g2[s] - g1[s])
        allowed = SIGMAS * (u1[s] + u2[s]) + 1e-7 * (np.abs(g1[s]) + np.abs(g2[s]))
        if np.linalg.norm(diff) > np.linalg.norm(allowed) and np.any(diff > allowed):
            moved.add(s.layer)
    if not moved:
        return out
    if top_layer in moved:
        raise UserCodeError(
            f"{step_name}() is not plain SGD: the update of the output layer is not lr times a fixed "
            "gradient (momentum, Adam or a schedule?); backcheck reads gradients from plain SGD steps only. "
            "Bind the gradients instead (gradients:, or backward: with grads:; see docs/binding.md)", where,
            kind="contract")
    k = max(moved) + 1
    g_rate = ev.step_gradient(rate)
    out.stale, out.rate = moved, rate
    out.at_rate = {s: g_rate[s] for s in ev.slots if s.layer in moved}
    out.uncertainty.update({s: _step_rounding(values[s], g_rate[s], rate) for s in out.at_rate})
    out.findings.append(Finding(
        "step/stale-weights", k, "error",
        f"layer {k} passes its gradient down through weights it has already updated",
        f"the gradients of layers {', '.join(map(str, sorted(moved)))} change with the learning rate "
        f"(lr {lr1:g} vs {lr2:g}): layer {k} updates its weights in place before computing the gradient it "
        f"sends to the layer below, so that layer learns from weights of the next step; the table compares "
        f"those layers' gradients at lr {rate:g}",
        f"in layer {k}'s backward, compute the gradient for the layer below (delta @ W.T, or W.T @ delta) "
        "with the weights as they were, before `W -= lr * dW`; or compute every gradient first and update "
        "afterwards", 0.95))
    return out


def _step_rounding(before: np.ndarray, grad: np.ndarray, lr: float) -> np.ndarray:
    """The error of (before - after) / lr from rounding before and after to the parameter's dtype."""
    dtype = before.dtype if before.dtype.kind == "f" else np.dtype(np.float64)
    after = np.abs(before.astype(np.float64)) + lr * np.abs(grad)
    return 2.0 * float(np.finfo(dtype).eps) * (np.abs(before.astype(np.float64)) + after) / lr


def match_shape(slot, param: np.ndarray, grad: np.ndarray, where: str) -> tuple[np.ndarray, bool]:
    """The gradient in the parameter's own shape, and whether it came transposed (a non-square
    weight gradient whose shape is the parameter's reversed)."""
    if grad.shape == param.shape:
        return grad, False
    if grad.ndim == 2 and param.ndim == 2 and grad.shape == param.shape[::-1]:
        return grad.T, True
    if grad.size == param.size:
        return grad.reshape(param.shape), False
    raise UserCodeError(
        f"the gradient of {slot.code_name} has shape {grad.shape} ({grad.size} numbers); the parameter has "
        f"shape {param.shape} ({param.size} numbers): they cannot be compared", where, kind="contract")


def transposed_finding(slot, param_shape, grad_shape) -> Finding:
    return Finding(
        "weight-gradient/transposed", slot.layer, "error", f"the gradient of {slot.code_name} is transposed",
        f"{slot.code_name} has shape {tuple(param_shape)}, its gradient {tuple(grad_shape)}",
        "swap the factors of the product, e.g. X.T @ delta (rows) or delta @ X.T (columns)", 0.99)


# ---------------------------------------------------------------- one point


class Point:
    """The code evaluated at one set of parameter values: the loss f0, the code's gradient and its
    error bounds there. Batch requests go through ``losses_*``, which refuse non-finite values
    with a message saying which probe met them."""

    def __init__(self, ev, values: dict, f0: float, grads: dict, uncertainty: dict, name: str = "start",
                 lr0: dict | None = None):
        self.ev, self.values, self.f0 = ev, values, f0
        self.grads, self.uncertainty, self.name = grads, uncertainty, name
        self.lr0 = lr0 if lr0 is not None else grads  # a step's gradient extrapolated to lr -> 0, for naming

    def entries(self, slot):
        x = self.values[slot]

        def run(idx, vals):
            out = np.asarray(self.ev.entries(slot, idx, vals), dtype=np.float64)
            _finite(out, slot, lambda j: f"moving {slot.code_name}{_index(x, int(np.asarray(idx)[j]))} to "
                                         f"{float(np.asarray(vals)[j]):.9g}", x)
            return out
        return run

    def arrays(self, slot):
        def run(arrays):
            out = np.asarray(self.ev.arrays(slot, arrays), dtype=np.float64)
            _finite(out, slot, lambda j: f"moving every entry of {slot.code_name} along a random direction",
                    self.values[slot])
            return out
        return run

    def blocks(self, slot):
        def run(idx_list, val_list):
            out = np.asarray(self.ev.blocks(slot, idx_list, val_list), dtype=np.float64)
            _finite(out, slot, lambda j: f"moving a row or column of {slot.code_name}", self.values[slot])
            return out
        return run


def _finite(out: np.ndarray, slot, what, x) -> None:
    bad = ~np.isfinite(out)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise UserCodeError(
            f"the loss became {out[j]} when {what(j)} (a probe of the gradient check; the loss is finite at the "
            "parameters the check starts from): the code overflows or takes log(0) a small step away, e.g. exp of "
            "a large pre-activation without subtracting the max, or a loss multiplied by a huge number",
            kind="nan")


def _index(x: np.ndarray, flat: int) -> str:
    return "[" + ",".join(map(str, np.unravel_index(flat, x.shape))) + "]" if x.ndim else ""


# ---------------------------------------------------------------- entries


@dataclass
class _Entries:
    """Entries probed one by one at a point: the numeric value each was judged by, its error bound,
    entries left on a kink (``pending``), entries confirmed wrong (``bad``). Shapes (k,)."""

    idx: np.ndarray
    analytic: np.ndarray
    numeric: np.ndarray
    noise: np.ndarray  # error bound of numeric, plus the code's own error bound
    pending: np.ndarray
    bad: np.ndarray
    moved: np.ndarray  # the loss changed at all when the entry was moved
    kinked: int = 0  # entries whose first probe met a kink and that a smaller step resolved
    relocated: int = 0  # entries on a kink that were judged at a nearby point


def _probe(point: Point, slot, idx, method: str, eps: float, precision: Precision,
           steps: np.ndarray | None = None) -> numgrad.EntryProbes:
    x = point.values[slot]
    if method == "complex":
        h = numgrad.complex_steps(x, idx)
        values = point.ev.complex_losses(slot, idx, h)
        return numgrad.complex_quotients(values, idx, h, point.f0)
    run = point.entries(slot)
    if method == "richardson":
        return numgrad.richardson_entries(run, x, idx, eps, f0=point.f0, noise_f=precision.noise_f)
    return numgrad.probe_entries(run, x, idx, eps, f0=point.f0, noise_f=precision.noise_f, steps=steps)


_CURVATURE, _LEFT_BEHIND, _STILL = 0, 1, 2


def _gap_kind(gap: np.ndarray, gap_small: np.ndarray, shrink: float, tol_small: np.ndarray) -> np.ndarray:
    """What made the one-sided quotients disagree, from how their gap changed when the step
    shrank ``shrink``-fold: curvature's gap shrinks in proportion; a kink that the smaller step no
    longer reaches leaves none; a kink the smaller step still reaches (or the point sits on)
    leaves a gap that does not shrink in proportion."""
    kind = np.full(len(gap), _STILL)
    kind[gap_small <= 2 * tol_small] = _LEFT_BEHIND
    kind[np.abs(gap_small - gap / shrink) <= 2 * tol_small] = _CURVATURE
    return kind


def _bounds(a, n, noise, ua, tolerance, sigmas=SIGMAS):
    return tolerance * (np.abs(a) + np.abs(n)) + sigmas * (noise + ua)


def judge_entries(point: Point, slot, idx, method: str, precision: Precision) -> _Entries:
    """Probe entries ``idx`` of ``slot`` at ``point`` and judge each against the code's gradient there."""
    idx = np.asarray(idx, dtype=np.intp)
    a = np.asarray(point.grads[slot], dtype=np.float64).reshape(-1)[idx]
    ua = np.broadcast_to(np.asarray(point.uncertainty.get(slot, 0.0), dtype=np.float64), point.values[slot].shape) \
        .reshape(-1)[idx]
    pr = _probe(point, slot, idx, method, precision.eps, precision)
    moved = pr.moved.copy() if pr.moved is not None else np.ones(len(idx), dtype=bool)

    def remeasure(pos, shrink):
        eps = precision.eps / shrink
        p2 = _probe(point, slot, idx[pos], "central", eps, precision,
                    steps=numgrad.step_sizes(point.values[slot], idx[pos], eps))
        if p2.moved is not None:
            moved[pos] |= p2.moved
        return p2.central, p2.noise, np.abs(p2.plus - p2.minus)

    gap = np.abs(pr.plus - pr.minus) if method != "complex" else np.zeros(len(idx))
    st = settle(a, ua, pr.central, pr.noise, gap, remeasure, precision.tolerance)
    return _Entries(idx, a, st.numeric, st.noise + ua, st.pending, st.bad, moved, st.kinked)


@dataclass
class _Settled:
    numeric: np.ndarray
    noise: np.ndarray
    pending: np.ndarray
    bad: np.ndarray
    kinked: int


def settle(a, ua, numeric, noise, gap, remeasure, tolerance: float) -> _Settled:
    """Decide the probes that disagree with the code at the first step, by measuring them again with
    smaller steps (``remeasure(positions, shrink) -> (numeric, noise, gap)`` at the step / shrink).

    A discrepancy is believed only when two kink-free measurements show it: the first step and a
    smaller one when the first met no kink (the one-sided gap shrank like curvature's), or two smaller
    steps when the first met a kink that they leave behind. A kink still in reach of the smallest
    step (the point sits on it) leaves the probe pending, for a nearby point to decide."""
    a, ua = np.asarray(a, dtype=np.float64), np.asarray(ua, dtype=np.float64)
    numeric, noise = numeric.copy(), noise.copy()
    k = len(a)
    pending = np.zeros(k, dtype=bool)
    bad = np.zeros(k, dtype=bool)
    kinked = 0
    todo = np.flatnonzero(np.abs(a - numeric) > _bounds(a, numeric, noise, ua, tolerance))
    prev_gap = gap[todo]
    total = 1.0
    for shrink in SHRINK_STEPS:
        if not todo.size:
            break
        total *= shrink
        n2, z2, g2 = remeasure(todo, total)
        t2 = _bounds(a[todo], n2, z2, ua[todo], tolerance)
        off2 = np.abs(a[todo] - n2) > t2
        kind = _gap_kind(prev_gap, g2, shrink, t2)
        smooth = kind == _CURVATURE
        # Smooth at both steps: off at both is a real discrepancy; gone at the smaller step, it was
        # truncation (the smaller step is the better measurement then).
        bad[todo[smooth]] = off2[smooth]
        fixed = smooth & ~off2
        numeric[todo[fixed]], noise[todo[fixed]] = n2[fixed], z2[fixed]
        left = kind == _LEFT_BEHIND
        if left.any():  # the first step met a kink this one does not reach: judge at kink-free steps
            kinked += int(left.sum())
            pos = todo[left]
            numeric[pos], noise[pos] = n2[left], z2[left]
            doubt = left & off2
            if doubt.any():
                n3, z3, _ = remeasure(todo[doubt], total * 2)
                t3 = _bounds(a[todo[doubt]], n3, z3, ua[todo[doubt]], tolerance)
                bad[todo[doubt]] = np.abs(a[todo[doubt]] - n3) > t3
        still = kind == _STILL
        todo, prev_gap = todo[still], g2[still]
    pending[todo] = True
    return _Settled(numeric, noise, pending, bad, kinked)


def merge_entries(first: _Entries, later: _Entries) -> _Entries:
    """Entries of ``first`` that were pending, judged again in ``later`` (at another point)."""
    out = _Entries(first.idx.copy(), first.analytic.copy(), first.numeric.copy(), first.noise.copy(),
                   first.pending.copy(), first.bad.copy(), first.moved.copy(), first.kinked + later.kinked,
                   first.relocated + int((~later.pending).sum()))
    pos = np.searchsorted(first.idx, later.idx)
    out.analytic[pos], out.numeric[pos], out.noise[pos] = later.analytic, later.numeric, later.noise
    out.pending[pos], out.bad[pos] = later.pending, later.bad
    out.moved[pos] |= later.moved
    return out


# ---------------------------------------------------------------- directions


@dataclass
class _Directions:
    """Direction (or block) probes judged: which disagree, and the norms that decide the verdict."""

    off: np.ndarray  # (k,) disagreeing probes, pending ones excluded
    pending: np.ndarray  # (k,) probes on a kink
    err: float  # ||analytic - numeric|| over the probes that are not pending
    scale: float
    noise: float
    tolerance: float
    moved: bool = True
    seeds: np.ndarray | None = None

    @property
    def allowed(self) -> float:
        return self.tolerance * self.scale + SIGMAS * self.noise

    @property
    def wrong(self) -> bool:
        return self.err > self.allowed or bool(self.off.any())


def judge_directions(point: Point, slot, precision: Precision, rng, seeds=None) -> tuple[_Directions, object]:
    """SAMPLE_DIRECTIONS Gaussian directions (or the given ``seeds``) at ``point``, settled like entries."""
    x, a = point.values[slot], np.asarray(point.grads[slot], dtype=np.float64)
    ua = float(np.linalg.norm(np.broadcast_to(point.uncertainty.get(slot, 0.0), x.shape))) / math.sqrt(max(x.size, 1))
    kw = dict(f0=point.f0, noise_f=precision.noise_f)
    dp = numgrad.probe_directions(point.arrays(slot), x, a, SAMPLE_DIRECTIONS, precision.eps, rng, seeds=seeds, **kw)
    an = dp.analytic
    moved = [bool(dp.moved.any()) if dp.moved is not None else True]

    def remeasure(pos, shrink):
        d2 = numgrad.probe_directions(point.arrays(slot), x, a, 0, precision.eps / shrink, rng, seeds=dp.seeds[pos], **kw)
        moved[0] = moved[0] or bool(d2.moved.any())
        return d2.numeric, d2.noise, np.abs(d2.plus - d2.minus)

    uas = np.full(len(an), ua)
    st = settle(an, uas, dp.numeric, dp.noise, np.abs(dp.plus - dp.minus), remeasure, precision.tolerance)
    nu, noise, keep = st.numeric, st.noise + uas, ~st.pending
    return _Directions(st.bad & keep, st.pending, float(np.linalg.norm((an - nu)[keep])),
                       float(np.linalg.norm(an[keep]) + np.linalg.norm(nu[keep])),
                       float(np.linalg.norm(noise[keep])), precision.tolerance, moved[0], dp.seeds), dp


# ---------------------------------------------------------------- one parameter


@dataclass
class ParamCheck:
    """One parameter's probes at the start point (entries, and for a large one directions), with
    what later points resolved; ``verdict`` turns it into a result."""

    slot: object
    shape: tuple
    size: int
    sampled: bool
    entries: _Entries
    directions: _Directions | None = None
    search: object = None
    method: str = "central"
    transposed: bool = False

    @property
    def pending(self) -> bool:
        return bool(self.entries.pending.any()) or bool(self.directions is not None and self.directions.pending.any())


def probe_param(point: Point, slot, precision: Precision, method: str, rng, exhaustive: bool) -> ParamCheck:
    x = point.values[slot]
    sampled = x.size > MAX_EXHAUSTIVE and not exhaustive
    idx = stratified_entries(x.shape, SAMPLE_ENTRIES, rng) if sampled else np.arange(x.size)
    ent = judge_entries(point, slot, idx, method, precision)
    dirs = judge_directions(point, slot, precision, rng)[0] if sampled else None
    return ParamCheck(slot, tuple(x.shape), x.size, sampled, ent, dirs, method=method)


def resolve_at(check: ParamCheck, point: Point, precision: Precision, rng) -> ParamCheck:
    """The pending probes of ``check`` judged again at another point (with the gradient there)."""
    ent = check.entries
    if ent.pending.any():
        later = judge_entries(point, check.slot, ent.idx[ent.pending], "central", precision)
        ent = merge_entries(ent, later)
    dirs = check.directions
    if dirs is not None and dirs.pending.any():
        again, _ = judge_directions(point, check.slot, precision, rng, seeds=dirs.seeds[dirs.pending])
        kept = ~dirs.pending
        dirs = _Directions(
            np.concatenate([dirs.off[kept], again.off]), np.concatenate([np.zeros(kept.sum(), bool), again.pending]),
            math.hypot(dirs.err, again.err), dirs.scale + again.scale, math.hypot(dirs.noise, again.noise),
            dirs.tolerance, dirs.moved or again.moved, np.concatenate([dirs.seeds[kept], again.seeds]))
    return ParamCheck(check.slot, check.shape, check.size, check.sampled, ent, dirs, check.search, check.method,
                      check.transposed)


@dataclass
class Verdict:
    status: str
    rel: float
    err_norm: float
    allowed: float
    noise: float
    why: str = ""  # inconclusive: the reason, for the report


def verdict(check: ParamCheck, precision: Precision) -> Verdict:
    """ok / wrong / inconclusive from the judged entries and (sampled parameters) the directions.

    Wrong when the error's norm exceeds the tolerance plus three error bounds, or when an entry or
    direction was confirmed wrong; inconclusive when the gradient is below what the measured noise
    resolves, or probes stayed on kinks; else ok."""
    e = check.entries
    judged = ~e.pending
    an, nu = e.analytic[judged], e.numeric[judged]
    err_norm = float(np.linalg.norm(an - nu))
    scale = float(np.linalg.norm(an) + np.linalg.norm(nu))
    noise_norm = SIGMAS * float(np.linalg.norm(e.noise[judged]))
    allowed = precision.tolerance * scale + noise_norm
    rel = err_norm / max(scale, REL_FLOOR)
    d = check.directions
    if check.transposed:
        return Verdict(WRONG, rel, err_norm, allowed, noise_norm, "transposed")
    if d is not None and d.wrong:
        rel = max(rel, d.err / max(d.scale, REL_FLOOR))
        return Verdict(WRONG, rel, max(err_norm, d.err), max(allowed, d.allowed), noise_norm)
    if err_norm > allowed or e.bad.any():
        return Verdict(WRONG, rel, err_norm, allowed, noise_norm)
    if check.pending:
        n = int(e.pending.sum()) + (int(d.pending.sum()) if d is not None else 0)
        return Verdict(INCONCLUSIVE, rel, err_norm, allowed, noise_norm,
                       f"{n} probe(s) sit on kinks (e.g. ReLU units at exactly 0) at every nearby point tried")
    a_norm = float(np.linalg.norm(an))
    if a_norm > 0 and noise_norm / SIGMAS > UNRESOLVED * a_norm:
        return Verdict(INCONCLUSIVE, rel, err_norm, allowed, noise_norm,
                       f"its gradient ({a_norm:.1e}) is below what the loss's noise lets finite differences resolve "
                       f"({noise_norm / SIGMAS:.1e})")
    resolution = allowed / max(scale, REL_FLOOR)
    if scale > 0 and resolution > RESOLUTION_MAX:
        # An ok here would only say "within {resolution}": too weak to call the gradient right.
        return Verdict(INCONCLUSIVE, rel, err_norm, allowed, noise_norm,
                       f"the loss's noise hides any error below {resolution:.0%} of its gradient")
    return Verdict(OK, rel, err_norm, allowed, noise_norm)


def unmoved(check: ParamCheck) -> bool:
    """No probe of this parameter changed the loss at all: the loss does not read this array."""
    d = check.directions
    return not check.entries.moved.any() and (d is None or not d.moved)


def result_of(check: ParamCheck, v: Verdict, precision: Precision, point: str = "start") -> tuple[ParamResult, np.ndarray, np.ndarray]:
    """The table's row for a parameter, its numeric gradient (NaN where not probed) and its wrong
    entries, flat."""
    e, size = check.entries, check.size
    numeric = np.full(size, np.nan)
    analytic = np.full(size, np.nan)
    numeric[e.idx], analytic[e.idx] = e.numeric, e.analytic
    bad = np.zeros(size, dtype=bool)
    bad[e.idx] = e.bad | (np.abs(e.analytic - e.numeric) > _bounds(e.analytic, e.numeric, e.noise, 0.0,
                                                                    precision.tolerance)) & ~e.pending
    search = check.search
    if search is not None:
        numeric[search.entries.idx] = search.entries.numeric
        analytic[search.entries.idx] = search.entries.analytic
        bad = search.bad
    probed = np.flatnonzero(~np.isnan(numeric) & ~np.isnan(analytic))
    err = analytic[probed] - numeric[probed]
    worst = None
    if len(probed):
        j = int(np.argmax(np.abs(err)))
        worst = Worst(tuple(int(i) for i in np.unravel_index(probed[j], check.shape)), float(analytic[probed][j]),
                      float(numeric[probed][j]))
    wrong = int(bad.sum()) if search is None or not search.estimated else search.wrong
    d = check.directions
    result = ParamResult(
        name=check.slot.role, code_name=check.slot.code_name, shape=check.shape, status=v.status,
        rel_error=v.rel, max_abs_error=float(np.max(np.abs(err))) if len(err) else 0.0,
        checked=len(probed), size=size, eps=precision.eps, tolerance=precision.tolerance, worst=worst,
        directions=SAMPLE_DIRECTIONS if d is not None else 0,
        kinks=e.kinked + e.relocated + int(e.pending.sum()) + (int(d.pending.sum()) if d is not None else 0),
        wrong_entries=(wrong or (size if check.transposed else 0)) if v.status == WRONG else 0,
        noise=v.noise, method=check.method, blocks=search.blocks if search else 0,
        searched=len(search.entries.idx) if search else 0, estimated=bool(search and search.estimated),
        point=point, why=v.why)
    return result, numeric.reshape(check.shape), bad.reshape(check.shape)


def stratified_entries(shape: tuple, k: int, rng: np.random.Generator) -> np.ndarray:
    """k flat indices spread over an array: one per stratum of rows and one per stratum of
    columns, paired at random (a Latin hypercube on the rows x rest grid). Shape (k,), sorted."""
    size = int(np.prod(shape))
    if size <= k:
        return np.arange(size)
    rows = shape[0] if len(shape) >= 2 else 1
    cols = size // rows
    edges_r = (np.arange(k + 1) * rows) // k
    edges_c = (np.arange(k + 1) * cols) // k
    r = edges_r[:-1] + (rng.random(k) * np.maximum(1, np.diff(edges_r))).astype(int)
    c = edges_c[:-1] + (rng.random(k) * np.maximum(1, np.diff(edges_c))).astype(int)
    flat = np.unique(np.minimum(r, rows - 1) * cols + rng.permutation(np.minimum(c, cols - 1)))
    if len(flat) < k:  # collisions on a narrow grid: top up with other entries
        rest = np.setdiff1d(np.arange(size), flat)
        flat = np.union1d(flat, rng.choice(rest, k - len(flat), replace=False))
    return np.sort(flat)


# ---------------------------------------------------------------- the search of a large wrong parameter


@dataclass
class _Search:
    entries: _Entries
    bad: np.ndarray  # (size,) the wrong entries found (or, when estimated, the candidates)
    blocks: int
    estimated: bool
    wrong: int


def search(point: Point, check: ParamCheck, precision: Precision, rng) -> _Search:
    """Which entries of a wrong parameter are wrong, without probing every entry.

    One Gaussian probe per row and per column of the parameter (2 loss calls each, whatever
    their length) marks the rows and columns holding a wrong entry; their crossings are the
    candidates, probed one by one when there are at most SEARCH_ENTRIES of them, else sampled.
    A 1-d parameter is laid out as a grid of about sqrt(size) blocks for this.
    """
    slot = check.slot
    x, a = point.values[slot], np.asarray(point.grads[slot], dtype=np.float64)
    size = x.size
    if x.ndim >= 2 and min(x.shape[0], size // x.shape[0]) > 1:
        rows, cols = x.shape[0], size // x.shape[0]
    else:  # a vector (or a one-row matrix): a grid of about sqrt(size) blocks
        cols = int(np.ceil(np.sqrt(size)))
        rows = -(-size // cols)
    grid = np.arange(rows * cols).reshape(rows, cols)
    valid = grid < size
    blocks_r = [grid[r][valid[r]] for r in range(rows)]
    blocks_c = [grid[:, c][valid[:, c]] for c in range(cols)]
    kw = dict(f0=point.f0, noise_f=precision.noise_f)

    def off(blocks):
        dp = numgrad.probe_blocks(point.blocks(slot), x, a, blocks, precision.eps, rng, **kw)
        tol = _bounds(dp.analytic, dp.numeric, dp.noise, 0.0, precision.tolerance)
        return np.abs(dp.analytic - dp.numeric) > tol

    bad_r, bad_c = off(blocks_r), off(blocks_c)
    cand_mask = bad_r[:, None] & bad_c[None, :] & valid
    if not cand_mask.any():  # a wrong entry seen by its row or its column only
        cand_mask = (bad_r[:, None] | bad_c[None, :]) & valid
    cand = grid[cand_mask]
    estimated = len(cand) > SEARCH_ENTRIES
    probe = np.sort(rng.choice(cand, SEARCH_SAMPLE, replace=False)) if estimated else cand
    ent = judge_entries(point, slot, probe, check.method, precision)
    disagree = ent.bad | (np.abs(ent.analytic - ent.numeric) >
                          _bounds(ent.analytic, ent.numeric, ent.noise, 0.0, precision.tolerance)) & ~ent.pending
    bad = np.zeros(size, dtype=bool)
    if estimated:
        share = float(disagree.mean()) if len(disagree) else 0.0
        # Every wrong entry lies among the candidates; when nearly all sampled candidates are
        # wrong, the map is the candidates, else only the sampled wrong ones are marked.
        if share >= 0.9:
            bad[cand] = True
        else:
            bad[probe[disagree]] = True
        wrong = int(round(share * len(cand)))
    else:
        bad[probe[disagree]] = True
        wrong = int(disagree.sum())
    return _Search(ent, bad, rows + cols, estimated, wrong)


# ---------------------------------------------------------------- complex step


def complex_step_support(point: Point, precision: Precision) -> str | None:
    """None when complex-step derivatives of the code can be trusted, else why not.

    One complex probe per layer (its weight entry with the largest gradient): the loss must come
    back complex, with a finite imaginary part and its real part equal to f0, and the derivative
    must agree with a Richardson central difference to within that difference's own accuracy.
    A code that takes np.abs, compares, or casts to float on its way to the loss fails here (ReLU
    written as (z + abs(z)) / 2 halves the derivative); np.maximum and np.where(z > 0, ...)
    order complex numbers by their real part and pass.
    """
    if precision.dtype != "float64":
        return "complex step needs float64 arithmetic and the code's loss is noisier"
    chosen = {}
    for s in point.ev.slots:
        if point.values[s].size and (s.layer not in chosen or s.role == "W"):
            chosen[s.layer] = s
    for s in chosen.values():
        x = point.values[s]
        a = np.abs(np.asarray(point.grads[s], dtype=np.float64)).reshape(-1)
        i = np.array([int(np.argmax(a))])
        try:
            c = _probe(point, s, i, "complex", precision.eps, precision).central[0]
        except numgrad.NotComplex as exc:
            return str(exc)
        except UserCodeError as exc:
            return f"the code raised with complex parameters ({exc.message})"
        except (TypeError, ValueError, FloatingPointError) as exc:
            return f"complex parameters failed ({type(exc).__name__}: {exc})"
        r = _probe(point, s, i, "richardson", precision.eps, precision)
        if abs(c - r.central[0]) > precision.tolerance * (abs(c) + abs(r.central[0])) + SIGMAS * r.noise[0]:
            where = ",".join(map(str, np.unravel_index(int(i[0]), x.shape)))
            return (f"the complex-step derivative of {s.code_name}[{where}] is {c:.6g}, central differences give "
                    f"{r.central[0]:.6g}: the code does not carry complex numbers through analytically "
                    "(np.abs, a comparison or a cast to float on the way to the loss?)")
    return None


# ---------------------------------------------------------------- every parameter at one point


MAX_RELOCATIONS = 3  # nearby points tried for probes that sit on kinks


@dataclass
class PointCheck:
    """Every parameter judged at one point: the probes, the verdicts, and how often a nearby
    point had to be used for probes on kinks."""

    point: Point
    checks: dict
    verdicts: dict
    relocations: int = 0
    resolved: int = 0  # probes that met a kink and were judged at a smaller step or a nearby point
    method: str = "central"


def check_point(point: Point, precision: Precision, method: str, rngs: dict, *, exhaustive: bool = False,
                nearby=None, analytic_at=None, sharpen=None, transposed=frozenset(), progress=None) -> PointCheck:
    """Judge every parameter at ``point``.

    ``nearby(values, attempt)`` gives a point close to ``values`` (every parameter moved a little)
    and ``analytic_at(values)`` the code's gradient there (as a ``Point``); probes that sit on a
    kink are judged again there. ``sharpen()`` names a more accurate method for a borderline
    verdict (asked only when needed); ``rngs[slot]`` is each parameter's own generator, so what
    is probed does not depend on the order or the mode. ``progress("probe", done, total,
    loss_calls=...)`` hears of the entries (and random directions) probed, parameter by parameter."""
    planned = {s: SAMPLE_ENTRIES + SAMPLE_DIRECTIONS if point.values[s].size > MAX_EXHAUSTIVE and not exhaustive
               else point.values[s].size for s in point.ev.slots}
    total, calls = sum(planned.values()), CALLS_PER_PROBE.get(method, 2)
    checks = {}
    for s in point.ev.slots:
        if progress is not None:
            progress("probe", sum(planned[t] for t in checks), total, loss_calls=calls * total)
        checks[s] = probe_param(point, s, precision, method, rngs[s], exhaustive)
    if progress is not None:
        progress("probe", total, total, loss_calls=calls * total)
    for s in transposed:
        checks[s].transposed = True
    relocations = 0
    for attempt in range(MAX_RELOCATIONS):
        pending = [s for s, c in checks.items() if c.pending]
        if not pending or nearby is None:
            break
        relocations += 1
        moved = nearby(point.values, attempt)
        point.ev.set_values(moved)
        try:
            there = analytic_at(moved)
            for s in pending:
                checks[s] = resolve_at(checks[s], there, precision, rngs[s])
        finally:
            point.ev.set_values(point.values)
    verdicts = {s: verdict(c, precision) for s, c in checks.items()}
    used = method
    for s, v in verdicts.items():
        if sharpen is None or checks[s].sampled and checks[s].entries.idx.size == 0:
            continue
        if 1 / BORDERLINE < v.err_norm / max(v.allowed, 1e-300) <= BORDERLINE and v.status != INCONCLUSIVE:
            # Near the line between noise and a real disagreement: measure again, more accurately.
            better = sharpen() if callable(sharpen) else sharpen
            if better and better != checks[s].method:
                c = checks[s]
                ent = judge_entries(point, s, c.entries.idx, better, precision)
                checks[s] = ParamCheck(s, c.shape, c.size, c.sampled, ent, c.directions, c.search, better,
                                       c.transposed)
                verdicts[s] = verdict(checks[s], precision)
                used = better
    for s, c in checks.items():
        if c.sampled and verdicts[s].status == WRONG and not c.transposed:
            c.search = search(point, c, precision, rngs[s])
    resolved = sum(c.entries.kinked + c.entries.relocated for c in checks.values())
    return PointCheck(point, checks, verdicts, relocations, resolved, used)
