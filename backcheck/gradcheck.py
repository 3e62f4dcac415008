"""Numeric vs analytic gradient of every parameter, judged without crying wolf.

A parameter is wrong only when its error exceeds both the relative tolerance and the estimated
finite-difference error; a disagreement is re-measured with Richardson extrapolation before it is
believed; an entry whose probe crossed a kink is accepted when the analytic value is a valid
subgradient (between the one-sided derivatives).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from backcheck import numgrad
from backcheck.binding import Binding, Orientation, Slot, orientation
from backcheck.measure import measure_for
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
SEARCH_ENTRIES = 4_096  # candidate entries of a search probed one by one up to this many ...
SEARCH_SAMPLE = 256  # ... else a sample of this many
BORDERLINE = 3.0  # error within this factor of what is allowed: re-measure with a better method
WIDE = 30.0  # disagreeing probes are measured again with a step this many times wider
KINK_GROWTH = 10.0  # ... where a one-sided gap growing less than this much is a kink's, not curvature's
NOISE_SIGMAS = 3.0
REL_FLOOR = 1e-12
STEP_RATES = (1e-4, 1e-2)  # learning rates at which a step: gradient is read


@dataclass(frozen=True)
class Precision:
    """Step and tolerance chosen for the precision the code computes in."""

    dtype: str  # "float64" or "float32"
    eps: float
    tolerance: float
    loss_dtype: np.dtype


def choose_precision(binding: Binding, eps: float | None, tolerance: float | None) -> tuple[Precision, list]:
    warnings = []
    param32 = [s.code_name for s, a in binding.arrays().items() if a.dtype.itemsize < 8]
    loss32 = binding.loss_dtype.itemsize < 8
    if param32 and not loss32:
        # float(loss) or loss.item() hides float32 arithmetic behind a Python float: a loss that is
        # exactly a float32 number was computed in float32 (a float64 result is one by chance ~2**-29).
        value = binding.loss()
        loss32 = value != 0.0 and float(np.float32(value)) == value
    if not (param32 or loss32):
        return Precision("float64", eps or 1e-6, tolerance or 1e-6, np.dtype(np.float64)), warnings
    names = ", ".join(param32[:3]) + (f" and {len(param32) - 3} more" if len(param32) > 3 else "")
    what = "the loss is computed in float32" if loss32 else f"{names} are float32 arrays"
    # cbrt(float32 eps) balances rounding against truncation for central differences
    p = Precision("float32", eps or (5e-3 if loss32 else 1e-5), tolerance or (1e-2 if loss32 else 1e-4),
                  np.dtype(np.float32) if loss32 else np.dtype(np.float64))
    warnings.append(CheckWarning(
        "precision/float32",
        f"{what}: checked with eps {p.eps:g} and tolerance {p.tolerance:g}, which float32 allows. "
        "For an exact check, create the arrays as float64 (e.g. dtype=np.float64 in init) and run again."))
    return p, warnings


@dataclass
class Analytic:
    """The code's gradient per slot, in each parameter's own shape, and what was noticed on the way."""

    grads: dict
    findings: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def analytic_gradient(binding: Binding, precision: Precision) -> Analytic:
    """Call the code's gradients (or read them off two plain-SGD steps)."""
    if not binding.uses_step:
        return Analytic(binding.analytic())
    if getattr(binding, "fixed_lr", None):  # the code's own rate: one read, nothing to extrapolate
        return Analytic(binding.step_gradient(binding.fixed_lr))
    lr1, lr2 = STEP_RATES if precision.dtype == "float64" else (1e-2, 1e-1)
    g1, g2 = binding.step_gradient(lr1), binding.step_gradient(lr2)
    out = Analytic({s: g1[s] - lr1 * (g2[s] - g1[s]) / (lr2 - lr1) for s in g1})  # extrapolated to lr -> 0
    out.notes.append(f"gradients read from {binding.step_name}() as (before - after) / lr at lr = {lr1:g} and "
                     f"{lr2:g}, extrapolated to lr -> 0")
    arrays = binding.arrays()
    moved = set()
    for s in binding.slots:
        noise = 64 * np.finfo(arrays[s].dtype).eps * (np.linalg.norm(arrays[s]) + 1e-30) / lr1
        diff = np.linalg.norm(g2[s] - g1[s])
        scale = np.linalg.norm(g1[s]) + np.linalg.norm(g2[s])
        if diff > max(1e-7 * scale, noise * np.sqrt(arrays[s].size)):
            moved.add(s.layer)
    if not moved:
        return out
    top = len(binding.code.params)
    if top in moved:
        raise UserCodeError(
            f"{binding.step_name}() is not plain SGD: the update of the output layer is not lr times a fixed "
            "gradient (momentum, Adam or a schedule?); backcheck reads gradients from plain SGD steps only. "
            "Bind the gradients instead (gradients:, or backward: with grads:; see docs/binding.md)", binding.code.file.name, kind="contract")
    k = max(moved) + 1
    out.findings.append(Finding(
        "step/stale-weights", k, "error",
        f"layer {k} passes its gradient down through weights it has already updated",
        f"the gradients of layers {', '.join(map(str, sorted(moved)))} change with the learning rate "
        f"(lr {lr1:g} vs {lr2:g}): layer {k} updates its weights in place before computing the gradient it "
        "sends to the layer below, so that layer learns from weights of the next step",
        f"in layer {k}'s backward, compute the gradient for the layer below (delta @ W.T, or W.T @ delta) "
        "with the weights as they were, before `W -= lr * dW`; or compute every gradient first and update "
        "afterwards", 0.95))
    return out


def match_shape(slot: Slot, param: np.ndarray, grad: np.ndarray, where: str) -> tuple[np.ndarray, Finding | None]:
    """The gradient in the parameter's own shape; a transposed weight gradient is a finding."""
    if grad.shape == param.shape:
        return grad, None
    if grad.ndim == 2 and param.ndim == 2 and grad.shape == param.shape[::-1]:
        return grad.T, Finding(
            "weight-gradient/transposed", slot.layer, "error",
            f"the gradient of {slot.code_name} is transposed",
            f"{slot.code_name} has shape {param.shape}, its gradient {grad.shape}",
            "swap the factors of the product, e.g. X.T @ delta (rows) or delta @ X.T (columns)", 0.99)
    if grad.size == param.size:
        return grad.reshape(param.shape), None
    raise UserCodeError(
        f"the gradient of {slot.code_name} has shape {grad.shape} ({grad.size} numbers); the parameter has "
        f"shape {param.shape} ({param.size} numbers): they cannot be compared", where, kind="contract")


@dataclass
class Checked:
    """One parameter's verdict, its numeric gradient (NaN where not probed) and which entries are
    wrong (False where not probed), both in the parameter's own shape."""

    result: ParamResult
    numeric: np.ndarray
    bad: np.ndarray


def check_param(
    binding: Binding,
    slot: Slot,
    x: np.ndarray,
    analytic: np.ndarray,
    precision: Precision,
    f0: float,
    method: str,
    rng: np.random.Generator,
    *,
    exhaustive: bool = False,
    measure=None,
    sharpen=None,
) -> Checked:
    """Judge one parameter.

    Up to MAX_EXHAUSTIVE entries (or with ``exhaustive``) every entry is probed. A larger
    parameter gets SAMPLE_ENTRIES stratified entries and SAMPLE_DIRECTIONS Gaussian directions
    (each seeing every entry at once); only when that says wrong does ``_search`` find the wrong
    entries. ``measure`` probes entries (default: the code's loss in this process); ``sharpen``
    is a more accurate method (or a function returning one, asked only when needed) to re-measure a
    borderline verdict with, e.g. "complex".
    """
    measure = measure or measure_for(binding, f0, precision.loss_dtype)
    size = x.size
    a = np.asarray(analytic, dtype=np.float64).reshape(-1)
    sampled = size > MAX_EXHAUSTIVE and not exhaustive
    idx = stratified_entries(x.shape, SAMPLE_ENTRIES, rng) if sampled else np.arange(size)
    ent = _measure_entries(measure, slot, x, a, idx, method, precision)
    dirs = None
    if sampled:
        dirs = _directions(binding, x, a, precision, f0, rng)
    verdict = _verdict(a[idx], ent, dirs, precision.tolerance)
    used = method
    if sharpen and len(idx) and 1 / BORDERLINE < verdict.err_norm / max(verdict.allowed, 1e-300) <= BORDERLINE:
        # Near the line between noise and a real disagreement: measure again, more accurately.
        better = sharpen() if callable(sharpen) else sharpen
        if better and better != method:
            ent = _measure_entries(measure, slot, x, a, idx, better, precision)
            verdict, used = _verdict(a[idx], ent, dirs, precision.tolerance), better
    numeric = np.full(size, np.nan)
    numeric[idx] = ent.numeric
    bad = np.zeros(size, dtype=bool)
    bad[idx] = ent.bad
    search = None
    if sampled and verdict.status == WRONG:
        search = _search(binding, measure, slot, x, a, precision, f0, used, rng)
        numeric[search.entries.idx] = search.entries.numeric
        bad = search.bad
    probed = np.flatnonzero(~np.isnan(numeric))
    err = a[probed] - numeric[probed]
    worst = None
    if len(probed):
        j = int(np.argmax(np.abs(err)))
        worst = Worst(tuple(int(i) for i in np.unravel_index(probed[j], x.shape)), float(a[probed][j]),
                      float(numeric[probed][j]))
    wrong = int(bad.sum()) if search is None or not search.estimated else search.wrong
    result = ParamResult(
        name=slot.role, code_name=slot.code_name, shape=tuple(x.shape), status=verdict.status,
        rel_error=verdict.rel, max_abs_error=float(np.max(np.abs(err))) if len(err) else 0.0,
        checked=len(probed), size=size, eps=precision.eps, tolerance=precision.tolerance, worst=worst,
        directions=SAMPLE_DIRECTIONS if sampled else 0,
        kinks=int(ent.kinks.sum()) + (dirs.kinks if dirs else 0),
        wrong_entries=wrong if verdict.status == WRONG else 0, noise=verdict.noise, method=used,
        blocks=search.blocks if search else 0, searched=len(search.entries.idx) if search else 0,
        estimated=bool(search and search.estimated))
    return Checked(result, numeric.reshape(x.shape), bad.reshape(x.shape))


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


@dataclass
class _Entries:
    """Entries probed one by one: the numeric value to compare against (a kink's valid subgradient
    taken as it is), its estimated error, kink flags and the entries that disagree. Shapes (k,)."""

    idx: np.ndarray
    numeric: np.ndarray
    noise: np.ndarray
    kinks: np.ndarray
    bad: np.ndarray


def _measure_entries(measure, slot, x, a, idx, method, precision) -> _Entries:
    pr = measure.entries(slot, x, idx, method, precision.eps)
    numeric, kinks, suspect = _judge_entries(a[idx], pr, precision.tolerance)
    noise = pr.noise.copy()
    if suspect.any():
        # Re-measure the disagreeing entries with a wider step and extrapolation (and one-sided
        # quotients, after a complex step): an honest disagreement survives, rounding noise,
        # curvature and kinks do not.
        sub = idx[suspect]
        rp = measure.local.entries(slot, x, sub, "richardson", precision.eps * WIDE)
        n2, k2, s2 = _judge_entries(a[sub], rp, precision.tolerance)
        tol = precision.tolerance * (np.abs(a[sub]) + np.abs(pr.central[suspect])) + NOISE_SIGMAS * pr.noise[suspect]
        on = s2 & _on_kink(np.abs(pr.plus - pr.minus)[suspect], np.abs(rp.plus - rp.minus), tol)
        n2[on], k2[on], s2[on] = a[sub][on], True, False
        keep = ~s2 | (np.abs(a[sub] - n2) < np.abs(a[sub] - numeric[suspect]))
        pos = np.flatnonzero(suspect)[keep]
        numeric[pos], kinks[pos], noise[pos] = n2[keep], k2[keep], rp.noise[keep]
    an = a[idx]
    bad = np.abs(an - numeric) > precision.tolerance * (np.abs(an) + np.abs(numeric)) + NOISE_SIGMAS * noise
    return _Entries(idx, numeric, noise, kinks, bad)


@dataclass
class _Directions:
    """Direction (or block) probes judged: which disagree, and the norms that decide the verdict."""

    off: np.ndarray  # (k,) disagreeing probes, kinks excluded
    kinks: int
    err: float  # ||analytic - numeric|| over the probes that are not kinks
    scale: float
    noise: float
    tolerance: float

    @property
    def allowed(self) -> float:
        return self.tolerance * self.scale + NOISE_SIGMAS * self.noise

    @property
    def wrong(self) -> bool:
        return self.err > self.allowed


def _directions(binding, x, a, precision, f0, rng) -> _Directions:
    """SAMPLE_DIRECTIONS Gaussian directions; those that disagree are probed again at a wider step,
    and set aside (not judged) where that shows a kink: the other directions and the sampled
    entries still judge the parameter."""
    f = lambda _: binding.loss()  # noqa: E731
    kw = dict(f0=f0, dtype=precision.loss_dtype)
    dp = numgrad.probe_directions(f, x, a, SAMPLE_DIRECTIONS, precision.eps, rng, **kw)
    an, nu = dp.analytic, dp.numeric
    tol = precision.tolerance * (np.abs(an) + np.abs(nu)) + NOISE_SIGMAS * dp.noise
    gap = np.abs(dp.plus - dp.minus)
    kink = np.zeros(len(an), dtype=bool)
    again = (np.abs(an - nu) > tol) & (gap > 2 * tol)
    if again.any():
        wide = numgrad.probe_directions(f, x, a, 0, precision.eps * WIDE, rng, seeds=dp.seeds[again], **kw)
        kink[again] = _on_kink(gap[again], np.abs(wide.plus - wide.minus), tol[again])
    return _judge_directions(dp, precision.tolerance, kink)


def _judge_directions(dp: numgrad.DirectionProbes, tolerance: float, kink=None) -> _Directions:
    an, nu = dp.analytic, dp.numeric
    tol = tolerance * (np.abs(an) + np.abs(nu)) + NOISE_SIGMAS * dp.noise
    off = np.abs(an - nu) > tol
    kink = off & (_between(an, dp.plus, dp.minus, tol) | (False if kink is None else kink))
    keep = ~kink
    return _Directions(off & keep, int(kink.sum()), float(np.linalg.norm((an - nu)[keep])),
                       float(np.linalg.norm(an[keep]) + np.linalg.norm(nu[keep])),
                       float(np.linalg.norm(dp.noise[keep])), tolerance)


@dataclass
class _Verdict:
    status: str
    rel: float
    err_norm: float
    allowed: float
    noise: float


def _verdict(an: np.ndarray, ent: _Entries, dirs: _Directions | None, tolerance: float) -> _Verdict:
    """ok / wrong / inconclusive from the entries and (sampled parameters) the directions.

    Wrong only when the error exceeds both the relative tolerance and the estimated
    finite-difference error; inconclusive when the gradient is below what finite differences
    resolve."""
    numeric = ent.numeric
    err_norm = float(np.linalg.norm(an - numeric))
    scale = float(np.linalg.norm(an) + np.linalg.norm(numeric))
    noise_norm = NOISE_SIGMAS * float(np.linalg.norm(ent.noise))
    allowed = tolerance * scale + noise_norm
    rel = err_norm / max(scale, REL_FLOOR)
    if dirs is not None and dirs.wrong:
        # The directions see every entry; their relative error speaks for the whole parameter.
        rel = max(rel, dirs.err / max(dirs.scale, REL_FLOOR))
        return _Verdict(WRONG, rel, max(err_norm, dirs.err), max(allowed, dirs.allowed), noise_norm)
    if err_norm > allowed:
        return _Verdict(WRONG, rel, err_norm, allowed, noise_norm)
    status = OK
    if noise_norm > 0.3 * float(np.linalg.norm(an)) and err_norm > tolerance * scale and np.linalg.norm(an) > 0:
        status = INCONCLUSIVE  # the gradient is below what finite differences can resolve
    return _Verdict(status, rel, err_norm, allowed, noise_norm)


@dataclass
class _Search:
    entries: _Entries
    bad: np.ndarray  # (size,) the wrong entries found (or, when estimated, the candidates)
    blocks: int
    estimated: bool
    wrong: int


def _search(binding, measure, slot, x, a, precision, f0, method, rng) -> _Search:
    """Which entries of a wrong parameter are wrong, without probing every entry.

    One Gaussian probe per row and per column of the parameter (2 loss calls each, whatever
    their length) marks the rows and columns holding a wrong entry; their crossings are the
    candidates, probed one by one when there are at most SEARCH_ENTRIES of them, else sampled.
    A 1-d parameter is laid out as a grid of about sqrt(size) blocks for this.
    """
    size = x.size
    if x.ndim >= 2 and min(x.shape[0], size // x.shape[0]) > 1:
        rows, cols = x.shape[0], size // x.shape[0]
    else:  # a vector (or a one-row matrix): a grid of about sqrt(size) blocks
        cols = int(np.ceil(np.sqrt(size)))
        rows = -(-size // cols)
    grid = np.arange(rows * cols).reshape(rows, cols)
    valid = grid < size
    f = lambda _: binding.loss()  # noqa: E731
    blocks_r = [grid[r][valid[r]] for r in range(rows)]
    blocks_c = [grid[:, c][valid[:, c]] for c in range(cols)]
    kw = dict(f0=f0, dtype=precision.loss_dtype)
    bad_r = _judge_directions(numgrad.probe_blocks(f, x, a, blocks_r, precision.eps, rng, **kw),
                              precision.tolerance).off
    bad_c = _judge_directions(numgrad.probe_blocks(f, x, a, blocks_c, precision.eps, rng, **kw),
                              precision.tolerance).off
    cand_mask = bad_r[:, None] & bad_c[None, :] & valid
    if not cand_mask.any():  # a wrong entry seen by its row or its column only
        cand_mask = (bad_r[:, None] | bad_c[None, :]) & valid
    cand = grid[cand_mask]
    estimated = len(cand) > SEARCH_ENTRIES
    probe = np.sort(rng.choice(cand, SEARCH_SAMPLE, replace=False)) if estimated else cand
    ent = _measure_entries(measure, slot, x, a, probe, method, precision)
    bad = np.zeros(size, dtype=bool)
    if estimated:
        share = float(ent.bad.mean()) if len(ent.bad) else 0.0
        # Every wrong entry lies among the candidates; when nearly all sampled candidates are
        # wrong, the map is the candidates, else only the sampled wrong ones are marked.
        if share >= 0.9:
            bad[cand] = True
        else:
            bad[probe[ent.bad]] = True
        wrong = int(round(share * len(cand)))
    else:
        bad[probe[ent.bad]] = True
        wrong = int(ent.bad.sum())
    return _Search(ent, bad, rows + cols, estimated, wrong)


def _judge_entries(a: np.ndarray, pr: numgrad.EntryProbes, tolerance: float):
    """Per entry: the numeric value to compare against (a kink's subgradient accepted), kink flags,
    and entries that still disagree."""
    numeric = pr.central.copy()
    tol = tolerance * (np.abs(a) + np.abs(numeric)) + NOISE_SIGMAS * pr.noise
    off = np.abs(a - numeric) > tol
    kink = off & _between(a, pr.plus, pr.minus, tol)
    numeric[kink] = a[kink]
    return numeric, kink, off & ~kink


def _between(an, plus, minus, tol):
    """A probe that crossed one kink: the one-sided quotients disagree and the code's value lies
    between them, a valid subgradient."""
    gap = np.abs(plus - minus)
    return (gap > 2 * tol) & (an >= np.minimum(plus, minus) - tol) & (an <= np.maximum(plus, minus) + tol)


def _on_kink(gap: np.ndarray, gap_wide: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """Probes that start on a kink, told from curvature by how the one-sided gap grows with the
    step: curvature's grows with it (30-fold for a 30 times wider step), a kink's does not.

    There the code's value is accepted whatever it is. A probe that moves several units sitting on
    their kinks at once (a ReLU unit at z = 0 for every example: zero weights into it and a zero
    bias) sees only two of the many one-sided regions around the point, and the code's value,
    computed with f'(0) = 0 like every framework's, need not lie between them."""
    return (gap > 2 * tol) & (gap_wide < KINK_GROWTH * gap)


def param_orientations(binding: Binding, widths, layout) -> tuple[dict[Slot, Orientation], list[str], list]:
    """How each of the code's arrays maps to the canonical network; notes and warnings on the way."""
    out, notes, warnings = {}, [], []
    for s, arr in binding.arrays().items():
        o, note = orientation(s, arr, widths, layout)
        out[s] = o
        if note:
            notes.append(note)
        if o.per_example:
            warnings.append(CheckWarning(
                "bias/batch-shaped",
                f"{s.code_name} has shape {arr.shape}: one bias per example of the batch of {o.per_example}. "
                "Each example then has its own bias, and the code only runs on batches of exactly that size; "
                f"a bias of shape {(widths[s.layer], 1) if layout == 'columns' else (1, widths[s.layer])} "
                "broadcasts over any batch"))
    return out, notes, warnings
