"""Every parameter judged at one point."""

from __future__ import annotations

from dataclasses import dataclass

from backcheck.gradcheck import thresholds
from backcheck.gradcheck.entries import judge_entries
from backcheck.gradcheck.param import ParamCheck, probe_param, resolve_at, verdict
from backcheck.gradcheck.point import Point
from backcheck.gradcheck.precision import Precision
from backcheck.gradcheck.thresholds import BORDERLINE, CALLS_PER_PROBE, SAMPLE_DIRECTIONS, SAMPLE_ENTRIES
from backcheck.gradcheck.wrong_entries import search
from backcheck.results import INCONCLUSIVE, WRONG

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
    planned = {s: SAMPLE_ENTRIES + SAMPLE_DIRECTIONS if point.values[s].size > thresholds.MAX_EXHAUSTIVE and not exhaustive
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
