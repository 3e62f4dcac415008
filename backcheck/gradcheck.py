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
from backcheck.errors import UserCodeError
from backcheck.results import INCONCLUSIVE, OK, WRONG, CheckWarning, Finding, ParamResult, Worst

MAX_EXHAUSTIVE = 10_000  # parameters larger than this are sampled
SAMPLE_ENTRIES = 2_000
SAMPLE_DIRECTIONS = 16
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
    if not (param32 or loss32):
        return Precision("float64", eps or 1e-6, tolerance or 1e-6, np.dtype(np.float64)), warnings
    what = "the loss is computed in float32" if loss32 else f"{', '.join(param32[:3])} are float32 arrays"
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
            "Bind gradients: instead", binding.code.file.name, kind="contract")
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


def check_param(
    binding: Binding,
    slot: Slot,
    x: np.ndarray,
    analytic: np.ndarray,
    precision: Precision,
    f0: float,
    method: str,
    rng: np.random.Generator,
) -> tuple[ParamResult, np.ndarray]:
    """Judge one parameter. Returns the result and the numeric gradient (NaN where not probed)."""

    def f(_):
        value = binding.loss()
        return value

    size = x.size
    a = np.asarray(analytic, dtype=np.float64).reshape(-1)
    if size <= MAX_EXHAUSTIVE:
        idx = np.arange(size)
    else:
        idx = np.sort(rng.choice(size, SAMPLE_ENTRIES, replace=False))
    probe = numgrad.richardson_entries if method == "richardson" else numgrad.probe_entries
    pr = probe(f, x, idx, precision.eps, f0=f0, dtype=precision.loss_dtype)
    numeric, kinks, suspect = _judge_entries(a[idx], pr, precision.tolerance)
    if suspect.any() and method != "richardson":
        # Re-measure the disagreeing entries with a larger step and extrapolation: an honest
        # disagreement survives, rounding noise and curvature do not.
        sub = idx[suspect]
        rp = numgrad.richardson_entries(f, x, sub, precision.eps * 30, f0=f0, dtype=precision.loss_dtype)
        n2, k2, s2 = _judge_entries(a[sub], rp, precision.tolerance)
        keep = ~s2 | (np.abs(a[sub] - n2) < np.abs(a[sub] - numeric[suspect]))
        numeric[np.flatnonzero(suspect)[keep]] = n2[keep]
        kinks[np.flatnonzero(suspect)[keep]] = k2[keep]
        pr_noise = pr.noise.copy()
        pr_noise[np.flatnonzero(suspect)[keep]] = rp.noise[keep]
    else:
        pr_noise = pr.noise
    full = np.full(size, np.nan)
    full[idx] = numeric
    an = a[idx]
    err = an - numeric
    err_norm = float(np.linalg.norm(err))
    scale = float(np.linalg.norm(an) + np.linalg.norm(numeric))
    noise_norm = NOISE_SIGMAS * float(np.linalg.norm(pr_noise))
    directions = 0
    if size > MAX_EXHAUSTIVE:
        dp = numgrad.probe_directions(f, x, a, SAMPLE_DIRECTIONS, precision.eps, rng, f0=f0,
                                      dtype=precision.loss_dtype)
        directions = SAMPLE_DIRECTIONS
        derr = float(np.linalg.norm(dp.analytic - dp.numeric))
        dscale = float(np.linalg.norm(dp.analytic) + np.linalg.norm(dp.numeric))
        if derr > precision.tolerance * dscale + NOISE_SIGMAS * float(np.linalg.norm(dp.noise)):
            err_norm = max(err_norm, derr / max(dscale, REL_FLOOR) * scale)
    rel = err_norm / max(scale, REL_FLOOR)
    allowed = precision.tolerance * scale + noise_norm
    entry_tol = precision.tolerance * (np.abs(an) + np.abs(numeric)) + NOISE_SIGMAS * pr_noise
    wrong_entries = int(np.count_nonzero(np.abs(err) > entry_tol))
    if err_norm <= allowed:
        status = OK
        if noise_norm > 0.3 * float(np.linalg.norm(an)) and err_norm > precision.tolerance * scale \
                and float(np.linalg.norm(an)) > 0:
            status = INCONCLUSIVE  # the gradient is below what finite differences can resolve
    else:
        status = WRONG
    worst = None
    if len(idx):
        j = int(np.argmax(np.abs(err)))
        worst = Worst(tuple(int(i) for i in np.unravel_index(idx[j], x.shape)), float(an[j]), float(numeric[j]))
    result = ParamResult(
        name=slot.role, code_name=slot.code_name, shape=tuple(x.shape), status=status, rel_error=rel,
        max_abs_error=float(np.max(np.abs(err))) if len(err) else 0.0, checked=len(idx), size=size,
        eps=precision.eps, tolerance=precision.tolerance, worst=worst, directions=directions,
        kinks=int(kinks.sum()), wrong_entries=wrong_entries if status == WRONG else 0, noise=noise_norm)
    return result, full.reshape(x.shape)


def _judge_entries(a: np.ndarray, pr: numgrad.EntryProbes, tolerance: float):
    """Per entry: the numeric value to compare against (a kink's subgradient accepted), kink flags,
    and entries that still disagree."""
    numeric = pr.central.copy()
    tol = tolerance * (np.abs(a) + np.abs(numeric)) + NOISE_SIGMAS * pr.noise
    off = np.abs(a - numeric) > tol
    lo = np.minimum(pr.plus, pr.minus) - tol
    hi = np.maximum(pr.plus, pr.minus) + tol
    one_sided_gap = np.abs(pr.plus - pr.minus) > 2 * tol
    kink = off & one_sided_gap & (a >= lo) & (a <= hi)
    numeric[kink] = a[kink]
    return numeric, kink, off & ~kink


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
