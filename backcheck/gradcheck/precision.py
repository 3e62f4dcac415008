"""The precision of the code's loss, measured: its noise, its dtype, the step and the tolerance that follow."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from backcheck import numgrad
from backcheck.errors import UserCodeError
from backcheck.gradcheck.point import require_finite
from backcheck.gradcheck.thresholds import FLOAT32_NOISE, FLOAT64_NOISE, NOISE_SAFETY, SIGMAS
from backcheck.results import CheckWarning


@dataclass(frozen=True)
class Precision:
    """Step and tolerance for the noise the code's loss was measured to have."""

    dtype: str  # what the loss is computed in, as measured: float64 | float32 | noisy
    eps: float  # relative step of the probes
    tolerance: float
    noise_f: float  # the noise of one loss evaluation, absolute (NOISE_SAFETY times the estimate)
    noise_rel: float  # the estimate relative to |f0|
    loss_dtype: np.dtype = np.dtype(np.float64)
    random: bool = False  # two calls at the same parameters differ beyond rounding (unseeded randomness)

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
                  np.dtype(getattr(ev, "loss_dtype", np.float64)),
                  random=repeat > FLOAT32_NOISE * max(abs(f0), 1e-300))
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
        require_finite(losses, slot, lambda j: f"measuring the loss's noise along {slot.code_name}", x)
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
