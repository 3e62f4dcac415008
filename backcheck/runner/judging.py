"""Reading the code's gradient and the probes' tables: stabilised losses, problems at the start, a rescaled check."""

from __future__ import annotations

import dataclasses

import numpy as np

from backcheck import conventions, gradcheck, mistakes, points
from backcheck.binding import Slot, canonical_shape
from backcheck.errors import UserCodeError
from backcheck.gradcheck import (Analytic, Point, analytic_gradient, match_shape, measure_precision, result_of,
                                 transposed_finding)
from backcheck.runner.layout import canonical_params


def reader_of(config, prep, ev, precision, where):
    """read(values, f0, gradients or None, name) -> (Point, Analytic, findings, transposed slots): the
    code's gradient at ``values`` (from its gradients, or read off its steps), in the parameters' shapes."""
    L = len(config.network.layers)

    def read(values, f0, first, name):
        if first is not None:
            an = Analytic({s: np.asarray(g) for s, g in first.items()}, {s: 0.0 for s in first})
        else:
            an = analytic_gradient(ev, values, precision.dtype, rate=config.train.lr,
                                   fixed_lr=prep.fixed_lr, step_name=prep.step_name, top_layer=L, where=where)
        table, findings, transposed = {}, list(an.findings), set()
        for s in ev.slots:
            for source in (an.grads, an.at_rate):
                if s in source:
                    g, t = match_shape(s, values[s], np.asarray(source[s]), where)
                    source[s] = np.asarray(g, dtype=np.float64)
                    if t and source is an.grads:
                        transposed.add(s)
                        findings.append(transposed_finding(s, values[s].shape, np.asarray(g).T.shape))
            table[s] = an.at_rate.get(s, an.grads[s])
        return Point(ev, values, f0, table, an.uncertainty, name, dict(an.grads)), an, findings, frozenset(transposed)
    return read


def loss_reads(checked, conditioned, ev, where) -> str | None:
    """The loss must depend on what is probed. A parameter whose probes never moved the loss at all,
    at the start (which may sit in a flat region: outputs past a clip) and at the rescaled point
    too, while the code reports a gradient for it (or every parameter at once), is bound to an
    array the code does not read. A zero gradient there is a parameter the loss does not use: a
    note."""
    still = [s for s, c in checked.checks.items() if gradcheck.unmoved(c)]
    points_ = [checked] + ([conditioned] if conditioned is not None else [])
    if conditioned is not None:
        still = [s for s in still if gradcheck.unmoved(conditioned.checks[s])]
    if not still:
        return None
    nonzero = [s for s in still if any(np.any(pc.point.grads[s] != 0) for pc in points_)]
    if not nonzero and len(still) < len(ev.slots):
        return (f"the loss does not depend on {', '.join(s.code_name for s in still)} where it was checked, and the "
                "code's gradient for it is 0: a parameter the loss does not use?")
    names = ", ".join(s.code_name for s in (nonzero or still))
    raise UserCodeError(
        f"the loss does not change at all when backcheck moves {names} (every probe gave exactly the same loss"
        + (", at the starting parameters and at a rescaled point)" if conditioned is not None else ")")
        + (", while the code's gradient for them is not zero" if nonzero else "")
        + ": the code reads other arrays than the ones code.params names. If the code keeps its weights in "
        "module globals, bind them there ($module.W1, or $module.params['W1']); for an object, name its own "
        "attributes (layers[0].weights); see docs/binding.md", where, kind="contract")


def param_tables(pc, precision, orient, net, name: str) -> dict:
    """Per slot: (ParamResult, numeric, bad, noise) at one point, with the pattern of wrong entries."""
    out = {}
    for s, c in pc.checks.items():
        r, numeric, bad = result_of(c, pc.verdicts[s], precision, name)
        noise = np.zeros(c.size)
        noise[c.entries.idx] = c.entries.noise
        out[s] = (_with_pattern(r, s, bad, orient[s], net), numeric, bad, noise.reshape(c.shape), gradcheck.unmoved(c))
    return out


def stabilised(pc, table, data, net, orient, precision):
    """A loss/stabilised explanation of the wrong parameters at this point, or None."""
    if not any(t[0].status == "wrong" for t in table.values()):
        return None
    values = pc.point.values
    params = canonical_params(list(values), values, orient, net)
    shape = lambda s: canonical_shape(s, net.widths)  # noqa: E731
    analytic = {(s.layer, s.role): orient[s].canonical_of(pc.point.grads[s], shape(s)) for s in table}
    numeric = {(s.layer, s.role): orient[s].canonical_of(t[1], shape(s)) for s, t in table.items()}
    noise = {(s.layer, s.role): orient[s].canonical_of(t[3], shape(s)) for s, t in table.items()}
    return conventions.explain(net, params, data.X, data.Y, analytic, numeric, noise, precision.tolerance,
                               pc.point.f0)


def stabilised_message(stab) -> str:
    how = (f"log(p + {stab.eps:.0e})" if stab.kind == "epsilon" else f"log(clip(p, {stab.eps:.1g}, 1 - {stab.eps:.1g}))")
    code = ("the code's backward uses the exact p - y there" if stab.code == "exact" else
            "the code's backward carries the clipped p into dloss")
    return (f"the code's loss is stabilised like {how}: at {stab.examples} of the {stab.batch} examples the "
            f"target's probability is so close to 0 or 1 (down to {stab.smallest:.1e}) that the derivative of that "
            f"loss differs from the one backprop computes ({code}); the model reproduces every measured gradient"
            + (" and the loss" if stab.loss_matches else "") + ". This is a convention, not a mistake; to check "
            "those examples too, start from smaller weights or drop the epsilon for the check")


def start_problems(net, params_c, data, checked, table, stab) -> list:
    problems = points.start_problems(net, params_c, data.X, data.Y)
    inconclusive = [s.code_name for s, t in table.items() if t[0].status == "inconclusive"]
    if inconclusive:
        problems.append(f"{', '.join(inconclusive)} could not be decided there")
    dead = [s.code_name for s, c in checked.checks.items() if gradcheck.unmoved(c)]
    if dead:
        problems.append(f"the loss does not move with {', '.join(dead)} (dead units?)")
    if stab is None and any(t[0].status == "wrong" for t in table.values()) and net.loss != "mse":
        q, _ = conventions.target_probabilities(net, params_c, data.X, data.Y)
        if np.any((q < points.AT_CLIP) | (q > 1 - points.AT_CLIP)):
            problems.append("some target probabilities are within 1e-6 of 0 or 1, where a loss's clip or epsilon acts")
    return problems


def rescaled_check(config, ev, values, params_c, orient, data, read, judge):
    """Every parameter judged at the well-conditioned point (None when it cannot be built)."""
    net = config.network
    try:
        params_r = points.rescaled(net, params_c, data.X, config.check.seed)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError):
        return None, None
    moved = {}
    for s in ev.slots:
        W, b = params_r[s.layer - 1]
        moved[s] = orient[s].code_of(W if s.role == "W" else b, values[s].dtype)
    ev.set_values(moved)
    try:
        f_r = ev.loss()
        first = None if ev.uses_step else ev.gradient()
        # The loss's noise depends on the point (float32 rounding grows with the weights): measured again.
        there, _ = measure_precision(ev, moved, f_r, first or moved, config.check.eps, config.check.tolerance)
        point = read(moved, f_r, first, "rescaled")[0]
        return judge(point, there), there
    finally:
        ev.set_values(values)


def point_of(row, checked, conditioned):
    return conditioned if row.point == "rescaled" and conditioned is not None else checked


def cleared_table(table: dict) -> dict:
    """A point's rows with the wrong ones passed: a stabilised loss explains them."""
    out = {}
    for s, row in table.items():
        r = row[0]
        if r.status == "wrong" and r.why != "transposed":
            row = (dataclasses.replace(r, status="ok", pattern=None, wrong_entries=0),) + row[1:]
        out[s] = row
    return out


def merge_tables(tables: dict) -> tuple[dict, str]:
    """One row per parameter: wrong at any point is wrong (shown where it was wrong, the rescaled
    point first), else decided wherever it was decided. Returns (rows, the point to name at)."""
    out, name_at = {}, "start"
    start, resc = tables["start"], tables.get("rescaled")
    for s, row in start.items():
        r = row[0]
        if resc is not None:
            rr = resc[s][0]
            vacuous = row[4] and r.status == "ok"  # 0 = 0 where the loss is flat says nothing
            if rr.status == "wrong" or (r.status == "inconclusive" or vacuous) and rr.status != "inconclusive":
                row = resc[s]
                name_at = "rescaled" if rr.status == "wrong" else name_at
        out[s] = row
    return out, name_at


def _with_pattern(result, slot: Slot, bad, orient, net):
    """The wrong entries of a wrong parameter, in words (canonical orientation: W is (in, out))."""
    if result.status != "wrong" or not bad.any():
        return result
    canon = orient.canonical_of(bad, canonical_shape(slot, net.widths)) > 0.5
    text = mistakes.param_pattern(canon, slot.role)
    if result.estimated:
        text += f" (estimated from {result.searched} sampled entries)"
    return dataclasses.replace(result, pattern=text)
