"""Naming the mistakes from the wrong gradients, and pointing at their lines."""

from __future__ import annotations

import dataclasses

import numpy as np

from backcheck import mistakes
from backcheck.binding import canonical_shape
from backcheck.errors import BackcheckError
from backcheck.results import Finding
from backcheck.runner.layout import canonical_params


def name_mistakes(evidence_from, tables, an, conditioned, checked, net, data, precision, orient, mismatch, layout,
          results, earlier: list, per_example: bool = False) -> list:
    """The named mistakes, from the point where the wrong gradients were measured."""
    if not any(r[0].status == "wrong" for r in results.values()):
        return []
    pc = conditioned if evidence_from == "rescaled" else checked
    table = tables[evidence_from]
    values = pc.point.values
    params = canonical_params(list(values), values, orient, net)
    shape = lambda s: canonical_shape(s, net.widths)  # noqa: E731
    # Naming uses the code's gradient extrapolated to lr -> 0: stale weights are named by their own finding,
    # and a parameter whose table row compares the gradient at the step's rate is judged again at lr -> 0.
    grads = pc.point.lr0
    status = {}
    for s in values:
        st = results[s][0].status
        if grads[s] is not pc.point.grads[s]:
            numeric = table[s][1]
            probed = ~np.isnan(numeric)
            a, n = np.asarray(grads[s])[probed], numeric[probed]
            allowed = precision.tolerance * (np.linalg.norm(a) + np.linalg.norm(n)) + \
                3 * np.linalg.norm(table[s][3][probed])
            st = "wrong" if np.linalg.norm(a - n) > allowed else "ok"
        status[(s.layer, s.role)] = st
    report = mistakes.Evidence(
        net=net, params=params, X=data.X, Y=data.Y, loss=pc.point.f0,
        analytic={(s.layer, s.role): orient[s].canonical_of(grads[s], shape(s)) for s in values},
        numeric={(s.layer, s.role): orient[s].canonical_of(table[s][1], shape(s)) for s in values},
        status=status, tolerance=precision.tolerance, forward_matches=mismatch is None, layout=layout,
        code_names={(s.layer, s.role): s.code_name for s in values})
    pairs = mistakes.explain_variants(report)
    read = [(f, _variant_of_read(f, an)) for f in earlier]  # found reading the gradients: stale weights, shapes
    wrong = {}
    for s in values:
        if status[(s.layer, s.role)] == "wrong" or results[s][0].why == "transposed":
            wrong.setdefault(s.layer, []).append(grads[s])
    lines = _lines(pc, pairs + read, net, params, data, precision, layout, wrong, per_example, an.rate)
    found = [dataclasses.replace(f, line=lines.get(i)) for i, (f, _) in enumerate(pairs)]
    if evidence_from == "rescaled":
        found = [dataclasses.replace(f, point="rescaled") for f in found]
    earlier[:] = [_with_line(f, lines.get(len(pairs) + i)) for i, (f, _) in enumerate(read)]
    return found


def _with_line(f: Finding, line: dict | None) -> Finding:
    """A finding read from the gradients, with its line; stale weights read through a name that is the
    weights themselves (``w = self.weights``, no copy) say so in the fix, since that line looks innocent."""
    if line is None or "alias" not in line:
        return dataclasses.replace(f, line=line)
    a = line["alias"]
    fix = (f"{f.fix}; here {a['where']} `{a['source']}` makes no copy: {a['name']} is {a['of']} itself, so the "
           f"update changes it too (take {a['of']}.copy(), or update after computing the gradient below)")
    return dataclasses.replace(f, line=line, fix=fix)


def _variant_of_read(f, an):
    """The reference's version of a mistake found while reading the gradients (stale weights)."""
    if f.id == "step/stale-weights" and an.rate:
        from backcheck.mistakes.catalog import Stale

        return Stale(f.layer, an.rate)
    return None


def _lines(pc, pairs, net, params, data, precision, layout, wrong, per_example, rate) -> dict:
    """The line of each named mistake: one backward pass of the code recorded where the mistakes
    were measured, read against the reference with and without each mistake (backcheck.lines)."""
    from backcheck import lines

    if not pairs:
        return {}
    ev, start = pc.point.ev, None
    if pc.point.name != "start":
        start = ev.values()
        ev.set_values(pc.point.values)
    shapes = sorted(lines.shapes_of(net, len(data.X), layout))
    stale = [i for i, (f, _) in enumerate(pairs) if f.id == "step/stale-weights"]
    before = ev.values()  # the weights the recordings start from
    try:
        events = ev.trace_backward(shapes)
        # Stale weights show only at a real step: that recording is taken at the step's rate.
        events_at_rate = ev.trace_backward(shapes, rate) if stale and rate else None
    except BackcheckError:
        return {}
    finally:
        if start is not None:
            ev.set_values(start)
    # Every mistake stays planted in the reference; stale weights are looked for in their own recording.
    planted = [(f, None) if i in stale else (f, v) for i, (f, v) in enumerate(pairs)]
    out = {i: line for i, line in lines.point(events, planted, net, params, data.X, data.Y, precision.tolerance,
                                             wrong, per_example).items() if i not in stale}
    if events_at_rate:
        got = lines.point(events_at_rate, pairs, net, params, data.X, data.Y, precision.tolerance, None,
                          per_example)
        out.update({i: got[i] for i in stale if i in got})
        for i in stale:
            if i in out:
                named = lines.alias(events_at_rate, out[i], list(before.values()))
                if named is not None:
                    out[i] = dict(out[i], alias=named)
    return out
