"""Probing every parameter: the check proper, its workers, its method and the notes on what was probed."""

from __future__ import annotations

import functools
import time

import numpy as np

from backcheck import mismatch as mismatch_module
from backcheck import mistakes, points
from backcheck.errors import UserCodeError
from backcheck.gradcheck import (MAX_EXHAUSTIVE, SAMPLE_DIRECTIONS, SAMPLE_ENTRIES, check_point, complex_step_support,
                                 measure_precision)
from backcheck.parallel import PoolEvaluator
from backcheck.results import CheckResult, CheckWarning, ErrorInfo, Finding, LayerResult, Method
from backcheck.runner import options as shares
from backcheck.runner.config_fit import config_fits, shape_in
from backcheck.runner.judging import (cleared_table, loss_reads, merge_tables, param_tables, point_of, reader_of,
                                      rescaled_check, stabilised, stabilised_message, start_problems)
from backcheck.runner.layout import canonical_params, default_params, forward_mismatch
from backcheck.runner.naming import name_mistakes
from backcheck.runner.opening import Prepared, open_sandboxed
from backcheck.runner.options import Options
from backcheck.spec import Config


def check_prepared(config: Config, options: Options, shown: str, prep: Prepared, pool, progress=None) -> CheckResult:
    """run_check after prepare(): every parameter judged where it can be seen, then the diagnosis."""
    net = config.network
    data, orient = prep.data, prep.orient
    notes, warnings = prep.notes, prep.warnings
    ev = prep.evaluator if pool is None else pool.bind(prep.evaluator, (prep.X, prep.Y, (data.X, data.Y)))
    where = prep.where
    seed = config.check.seed
    values = ev.values()
    try:
        f0 = ev.loss()
        if not ev.uses_step:
            first = ev.gradient()
    except UserCodeError as exc:
        if exc.kind == "nan":
            raise UserCodeError(f"{exc.message.replace(' (call 1 of the loss)', '')} at the starting parameters",
                                exc.where, kind="nan") from None
        raise config_fits(config, options, prep, ev, data, exc) or exc
    started = time.perf_counter()
    ev.loss()  # timed warm: the first call pays for the code's own first-time costs
    call_seconds = time.perf_counter() - started
    first = None if ev.uses_step else first
    calls, started = ev.loss_calls, time.perf_counter()
    precision, w = measure_precision(ev, values, f0, first or values, config.check.eps, config.check.tolerance)
    batched = (time.perf_counter() - started) / max(ev.loss_calls - calls, 1)  # a call inside a batch request
    warnings += w
    read = reader_of(config, prep, ev, precision, where)
    try:
        start, an, findings, transposed = read(values, f0, first, "start")
    except UserCodeError as exc:
        if "cannot be compared" not in exc.message:
            if ev.uses_step:  # a step's first call: the config may be what is wrong
                raise config_fits(config, options, prep, ev, data, exc) or exc
            raise
        # Exit 3, and the finding says which gradient could not be matched to its parameter.
        s = next(s for s in ev.slots if s.code_name in exc.message)
        fix = f"return a gradient of the parameter's shape {values[s].shape}"
        if len(data.X) in shape_in(exc.message) and config.code is not None and config.code.per_example == "batch":
            fix += (f" (one of its sizes is the batch's, {len(data.X)}: sum it over the batch; or, if the code "
                    "takes one example at a time, set per_example: true under code:)")
        return CheckResult(config=shown, name=config.name, findings=(Finding(
            "shape/mismatch", s.layer, "error", f"layer {s.layer}: the gradient of {s.code_name} has the "
            "wrong shape", exc.message, fix, 1.0),), warnings=tuple(warnings), notes=tuple(notes),
            error=ErrorInfo(exc.kind, exc.message, exc.where))
    notes += an.notes
    method, sharpen = _choose_method(config.check.method, start, precision, notes)
    if pool is not None:
        serial = 2 * sum(a.size for a in values.values()) * call_seconds
        if serial < shares.POOL_MIN_SECONDS:  # less work than starting a worker costs: keep it here
            notes.append(f"--jobs {pool.jobs}: the check takes about {serial:.1g} s in one process, less than "
                         "starting workers; no workers were used")
            pool.retire()

    # The time of a loss call, for an estimate before a long check: probes come in batches, which do
    # not pay a request's latency per call (the reference network is probed in one stacked pass,
    # where it says nothing; workers share the calls).
    per_call = None if prep.reference else \
        min(call_seconds, batched) / (len(pool.workers) + 1 if pool is not None else 1)

    def at(vals, name):
        return read(vals, ev.loss(), None if ev.uses_step else ev.gradient(), name)[0]

    def judge(point, precision=precision):
        return check_point(point, precision, method, {s: np.random.default_rng([seed, 3, s.layer, "Wb".index(s.role)])
                                                      for s in ev.slots},
                           exhaustive=options.exhaustive, nearby=lambda v, k: points.nearby(v, k, seed),
                           analytic_at=lambda v: at(v, f"{point.name}, nearby"), sharpen=sharpen,
                           transposed=transposed if point.name == "start" else frozenset(),
                           progress=progress and functools.partial(progress, point=point.name, call_seconds=per_call))

    checked = judge(start)
    params_c = canonical_params(ev.slots, values, orient, net)
    mismatch = forward_mismatch(net, params_c, data, f0, precision)
    if mismatch is not None:
        fit = mismatch_module.network_fit(config, params_c, data.X, data.Y, f0,
                                          1e-9 if precision.dtype == "float64" else 1e-5)
        if fit is not None:
            raise fit
    tables = {"start": param_tables(checked, precision, orient, net, "start")}
    stab = stabilised(checked, tables["start"], data, net, orient, precision)
    if stab is not None:
        tables["start"] = cleared_table(tables["start"])
    problems = start_problems(net, params_c, data, checked, tables["start"], stab)
    conditioned, precision_r = None, precision
    if problems:
        conditioned, precision_r = rescaled_check(config, ev, values, params_c, orient, data, read, judge)
        if conditioned is not None:
            tables["rescaled"] = param_tables(conditioned, precision_r, orient, net, "rescaled")
            stab_r = stabilised(conditioned, tables["rescaled"], data, net, orient, precision_r)
            if stab_r is not None:
                tables["rescaled"] = cleared_table(tables["rescaled"])
                stab = stab or stab_r
            notes.append(f"the starting parameters are a poor place to see a gradient ({'; '.join(problems)}): "
                         "the gradients were also checked at a rescaled point, the same shapes with every layer's "
                         "pre-activations of mean ~0 and standard deviation 1 on the data; rows marked "
                         "'rescaled' and the findings that say so were measured there")
    unused = loss_reads(checked, conditioned, ev, where)
    if unused:
        notes.append(unused)
    results, evidence_from = merge_tables(tables)
    if stab is not None:
        warnings.append(CheckWarning("loss/stabilised", stabilised_message(stab)))
        if stab.loss_matches:
            mismatch = None
    if mismatch:
        warnings.append(mismatch)
    kinks = checked.resolved + (conditioned.resolved if conditioned else 0)
    if kinks:
        moved = checked.relocations + (conditioned.relocations if conditioned else 0)
        warnings.append(CheckWarning(
            "kink/nondifferentiable",
            f"{kinks} probe(s) met a non-differentiable point (e.g. ReLU at 0): they were measured again "
            + ("with smaller steps" if not moved else "with smaller steps and at a nearby point where they meet none "
               "(every parameter moved by about 0.1%)") + ", and judged against the code's gradient there"))
    notes += _probe_notes(config, options, results, checked.method, pool, prep.reference)
    layers = []
    for k in range(1, len(net.layers) + 1):
        layer_slots = [s for s in ev.slots if s.layer == k]
        layers.append(LayerResult(k, net.label(k), tuple(results[s][0] for s in layer_slots)))
    findings += name_mistakes(evidence_from, tables, an, conditioned, checked, net, data,
                      precision_r if evidence_from == "rescaled" else precision, orient, mismatch,
                      prep.layout, results, findings, config.code is not None and config.code.per_example != "batch")
    return CheckResult(
        config=shown, name=config.name,
        method=Method(checked.method, precision.eps, precision.dtype, "exhaustive" if options.exhaustive else "default",
                      seed, pool.jobs if pool is not None and pool.used else 1, ev.loss_calls, ev.gradient_calls),
        layers=tuple(layers), findings=tuple(mistakes.ordered(findings)), warnings=tuple(warnings),
        entries={s.code_name: (point_of(results[s][0], checked, conditioned).point.grads[s], results[s][1])
                 for s in ev.slots},
        notes=tuple(notes + ev.notes))


def start_pool(config: Config, options: Options, prep):
    """Worker processes for --exhaustive --jobs N; None when this process does all the work.
    The reference network (no code:) is probed in one stacked pass and needs no workers."""
    if not options.exhaustive or options.jobs <= 1 or prep.reference:
        return None
    _, defaults = default_params(config)
    return PoolEvaluator(options.jobs, lambda: open_sandboxed(config, options, defaults, wait=False))


def _choose_method(asked: str, point, precision, notes: list):
    """The method the entries are measured with, and the one that re-measures a borderline verdict.

    Complex step is tried only when asked for or when a verdict is borderline (found out lazily):
    it runs the code on complex arrays, which most codes never see."""
    def complex_support():
        return complex_step_support(point, precision)

    if asked == "complex":
        why = complex_support()
        if why is None:
            notes.append("check.method complex: complex-step derivatives, exact to rounding; entries that disagree "
                         "are re-measured with central differences, which see kinks")
            return "complex", None
        notes.append(f"check.method complex is not available for this code: {why}; used central differences")
        return "central", "richardson"
    cached = []

    def best() -> str:
        if not cached:
            why = complex_support()
            cached.append("complex" if why is None else "richardson" if asked == "central" else None)
            notes.append("a borderline verdict was re-measured with "
                         + ("complex-step derivatives" if why is None else
                            f"Richardson extrapolation (complex step: {why})"))
        return cached[0]
    return asked, best


def _probe_notes(config: Config, options: Options, results: dict, method: str, pool, is_reference: bool) -> list:
    """What was probed, for the report."""
    notes = []
    sampled = [r[0] for r in results.values() if r[0].directions]
    if sampled:
        notes.append(
            f"default mode: parameters over {MAX_EXHAUSTIVE} entries ({', '.join(r.code_name for r in sampled)}) "
            f"were judged from {SAMPLE_ENTRIES} stratified entries and {SAMPLE_DIRECTIONS} random directions "
            f"(Gaussian, seed {config.check.seed}); a wrong one is searched for its wrong entries by row and "
            "column probes. --exhaustive probes every entry")
    if method == "richardson":
        notes.append("richardson: estimated error of each numeric gradient (norm): " + ", ".join(
            f"{r[0].code_name} {r[0].noise / 3:.1e}" for r in results.values()))
    if options.jobs > 1 and not options.exhaustive:
        notes.append("--jobs applies to --exhaustive checks; the default mode makes too few loss calls to share")
    elif options.jobs > 1 and is_reference:
        notes.append("--jobs: the reference network is probed in one vectorised pass, without workers")
    elif pool is not None and pool.retired:
        notes.append(f"{pool.retired} worker(s) did not reproduce this process's loss bit for bit "
                     "(nondeterministic code?) and were not used")
    return notes
