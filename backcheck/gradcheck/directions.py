"""What is probed of a large parameter: random Gaussian directions and stratified entries."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from backcheck import numgrad
from backcheck.gradcheck.entries import settle
from backcheck.gradcheck.point import Point
from backcheck.gradcheck.precision import Precision
from backcheck.gradcheck.thresholds import SAMPLE_DIRECTIONS, SIGMAS


@dataclass
class Directions:
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


def judge_directions(point: Point, slot, precision: Precision, rng, seeds=None) -> tuple[Directions, object]:
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
    return Directions(st.bad & keep, st.pending, float(np.linalg.norm((an - nu)[keep])),
                       float(np.linalg.norm(an[keep]) + np.linalg.norm(nu[keep])),
                       float(np.linalg.norm(noise[keep])), precision.tolerance, moved[0], dp.seeds), dp


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
