"""Entries probed one by one: central differences, kinks told apart from curvature, disagreements settled by a second measurement."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backcheck import numgrad
from backcheck.gradcheck.point import Point
from backcheck.gradcheck.precision import Precision
from backcheck.gradcheck.thresholds import SHRINK_STEPS, SIGMAS


@dataclass
class Entries:
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


def probe_at(point: Point, slot, idx, method: str, eps: float, precision: Precision,
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


def error_bounds(a, n, noise, ua, tolerance, sigmas=SIGMAS):
    return tolerance * (np.abs(a) + np.abs(n)) + sigmas * (noise + ua)


def judge_entries(point: Point, slot, idx, method: str, precision: Precision) -> Entries:
    """Probe entries ``idx`` of ``slot`` at ``point`` and judge each against the code's gradient there."""
    idx = np.asarray(idx, dtype=np.intp)
    a = np.asarray(point.grads[slot], dtype=np.float64).reshape(-1)[idx]
    ua = np.broadcast_to(np.asarray(point.uncertainty.get(slot, 0.0), dtype=np.float64), point.values[slot].shape) \
        .reshape(-1)[idx]
    pr = probe_at(point, slot, idx, method, precision.eps, precision)
    moved = pr.moved.copy() if pr.moved is not None else np.ones(len(idx), dtype=bool)

    def remeasure(pos, shrink):
        eps = precision.eps / shrink
        p2 = probe_at(point, slot, idx[pos], "central", eps, precision,
                    steps=numgrad.step_sizes(point.values[slot], idx[pos], eps))
        if p2.moved is not None:
            moved[pos] |= p2.moved
        return p2.central, p2.noise, np.abs(p2.plus - p2.minus)

    gap = np.abs(pr.plus - pr.minus) if method != "complex" else np.zeros(len(idx))
    st = settle(a, ua, pr.central, pr.noise, gap, remeasure, precision.tolerance)
    return Entries(idx, a, st.numeric, st.noise + ua, st.pending, st.bad, moved, st.kinked)


@dataclass
class Settled:
    numeric: np.ndarray
    noise: np.ndarray
    pending: np.ndarray
    bad: np.ndarray
    kinked: int


def settle(a, ua, numeric, noise, gap, remeasure, tolerance: float) -> Settled:
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
    todo = np.flatnonzero(np.abs(a - numeric) > error_bounds(a, numeric, noise, ua, tolerance))
    prev_gap = gap[todo]
    total = 1.0
    for shrink in SHRINK_STEPS:
        if not todo.size:
            break
        total *= shrink
        n2, z2, g2 = remeasure(todo, total)
        t2 = error_bounds(a[todo], n2, z2, ua[todo], tolerance)
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
                t3 = error_bounds(a[todo[doubt]], n3, z3, ua[todo[doubt]], tolerance)
                bad[todo[doubt]] = np.abs(a[todo[doubt]] - n3) > t3
        still = kind == _STILL
        todo, prev_gap = todo[still], g2[still]
    pending[todo] = True
    return Settled(numeric, noise, pending, bad, kinked)


def merge_entries(first: Entries, later: Entries) -> Entries:
    """Entries of ``first`` that were pending, judged again in ``later`` (at another point)."""
    out = Entries(first.idx.copy(), first.analytic.copy(), first.numeric.copy(), first.noise.copy(),
                   first.pending.copy(), first.bad.copy(), first.moved.copy(), first.kinked + later.kinked,
                   first.relocated + int((~later.pending).sum()))
    pos = np.searchsorted(first.idx, later.idx)
    out.analytic[pos], out.numeric[pos], out.noise[pos] = later.analytic, later.numeric, later.noise
    out.pending[pos], out.bad[pos] = later.pending, later.bad
    out.moved[pos] |= later.moved
    return out
