"""One parameter: its probes, a nearby point for probes on kinks, and its verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from backcheck.gradcheck import thresholds
from backcheck.gradcheck.directions import Directions, judge_directions, stratified_entries
from backcheck.gradcheck.entries import Entries, error_bounds, judge_entries, merge_entries
from backcheck.gradcheck.point import Point
from backcheck.gradcheck.precision import Precision
from backcheck.gradcheck.thresholds import (RANDOM_MARGIN, REL_FLOOR, RESOLUTION_MAX, SAMPLE_DIRECTIONS,
                                            SAMPLE_ENTRIES, SIGMAS, UNRESOLVED)
from backcheck.results import INCONCLUSIVE, OK, WRONG, ParamResult, Worst


@dataclass
class ParamCheck:
    """One parameter's probes at the start point (entries, and for a large one directions), with
    what later points resolved; ``verdict`` turns it into a result."""

    slot: object
    shape: tuple
    size: int
    sampled: bool
    entries: Entries
    directions: Directions | None = None
    search: object = None
    method: str = "central"
    transposed: bool = False

    @property
    def pending(self) -> bool:
        return bool(self.entries.pending.any()) or bool(self.directions is not None and self.directions.pending.any())


def probe_param(point: Point, slot, precision: Precision, method: str, rng, exhaustive: bool) -> ParamCheck:
    x = point.values[slot]
    sampled = x.size > thresholds.MAX_EXHAUSTIVE and not exhaustive
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
        dirs = Directions(
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
    wrong = None
    if d is not None and d.wrong:
        rel = max(rel, d.err / max(d.scale, REL_FLOOR))
        wrong = Verdict(WRONG, rel, max(err_norm, d.err), max(allowed, d.allowed), noise_norm)
    elif err_norm > allowed or e.bad.any():
        wrong = Verdict(WRONG, rel, err_norm, allowed, noise_norm)
    if wrong is not None and precision.random and wrong.err_norm <= RANDOM_MARGIN * wrong.allowed:
        # Every loss call draws its own randomness: the noise was estimated from a few draws and may be
        # several times larger, so only a disagreement far beyond it is believed.
        return Verdict(INCONCLUSIVE, wrong.rel, wrong.err_norm, wrong.allowed, noise_norm,
                       "the loss differs between calls at the same parameters (unseeded randomness, such as a new "
                       "dropout mask per call): a disagreement this small cannot be told from the draws; seed it "
                       "to check")
    if wrong is not None:
        return wrong
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
    bad[e.idx] = e.bad | (np.abs(e.analytic - e.numeric) > error_bounds(e.analytic, e.numeric, e.noise, 0.0,
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
