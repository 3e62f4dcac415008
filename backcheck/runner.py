"""Wires a check together and runs the code under test in a child process.

``verify(path)`` is the library entry point: it never raises for bad input, it returns a
``CheckResult`` whose ``error`` says what went wrong. The CLI process never imports user code:
``run_check`` runs in a spawned child, stopped at ``check.timeout``.
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from dataclasses import dataclass

import numpy as np

from backcheck import mistakes, reference
from backcheck.binding import ReferenceBinding, Slot, bind, canonical_shape, code_shape, load_code
from backcheck.data import make_data
from backcheck.errors import BackcheckError, ConfigError, InternalError, UserCodeError
from backcheck.gradcheck import (MAX_EXHAUSTIVE, SAMPLE_DIRECTIONS, SAMPLE_ENTRIES, analytic_gradient,
                                 check_param, choose_precision, match_shape, param_orientations)
from backcheck.measure import complex_step_support, measure_for
from backcheck.parallel import Pool, PoolMeasure
from backcheck.results import CheckResult, CheckWarning, ErrorInfo, Finding, LayerResult, Method
from backcheck.spec import Config, load_config

STARTUP_GRACE = 60.0  # seconds a child may take to start and import numpy before the timeout runs
TRAIN_SHARE = 0.6  # diagnose: the check and the training stop by this share of check.timeout; the rest is
# left for the line search and the reports, so that a long train.steps ends in a shorter run, not a timeout
POOL_MIN_SECONDS = 1.0  # --jobs: below this much serial probing, a worker's start-up costs more than it saves


@dataclass(frozen=True)
class Options:
    inject: tuple[str, ...] = ()  # catalog mistakes to plant in the reference ("id@layer")
    show_output: bool = False  # let the user's prints through to stderr
    exhaustive: bool = False  # probe every entry of every parameter (default: large ones are sampled)
    jobs: int = 1  # processes probing entries at once (--exhaustive); each loads the code once
    memory_mb: int | None = None  # address-space limit of the process running the code (grade)
    command: str = "verify"  # verify | diagnose (the check, then training with the code's gradients)


def verify(path, options: Options = Options(), *, isolate: bool = True) -> CheckResult:
    """Check the config at ``path``. With ``isolate`` the user's code runs in a child process."""
    shown = str(path)
    try:
        config = load_config(path)
        if options.inject and config.code is not None:
            raise ConfigError("--inject plants a mistake in backcheck's reference network; "
                              "remove the code: section or check the config without --inject", shown)
        mistakes.parse_injections(options.inject, config.network)
    except ConfigError as exc:
        return failed(shown, path, exc)
    except Exception:  # noqa: BLE001 - a bug in reading the config: exit 4 with the report, as run_guarded does
        return failed(shown, path, InternalError(
            "backcheck failed while reading the config; this is a bug in backcheck, please report it with this "
            "message:\n" + traceback.format_exc()))
    if not isolate:
        return run_guarded(config, options, shown)
    return _run_in_child(config, options, shown)


def diagnose_config_path(path, options: Options = Options(), *, isolate: bool = True) -> CheckResult:
    """``backcheck diagnose``: ``verify`` and then training; the result has a "train" section."""
    from dataclasses import replace

    return verify(path, replace(options, command="diagnose"), isolate=isolate)


def verify_config(config: Config, options: Options, shown: str) -> CheckResult:
    """Check an already-read config in a child process (``backcheck grade`` reads one per submission)."""
    return _run_in_child(config, options, shown)


def failed(shown: str, path, exc: BackcheckError, name: str | None = None) -> CheckResult:
    from pathlib import Path

    return CheckResult(config=shown, name=name or Path(str(path)).stem,
                       error=ErrorInfo(exc.kind, exc.message, exc.where))


def run_guarded(config: Config, options: Options, shown: str, progress=None) -> CheckResult:
    """run_check with every failure turned into a result (in whichever process runs it)."""
    try:
        if options.command == "diagnose":
            return run_diagnose(config, options, shown, progress)
        return run_check(config, options, shown, progress)
    except BackcheckError as exc:
        return failed(shown, config.path, exc, config.name)
    except MemoryError:
        limit = f" (the limit is {options.memory_mb} MB)" if options.memory_mb else ""
        return failed(shown, config.path, UserCodeError(
            f"the check ran out of memory{limit}: is the network or the data far larger than the assignment's?",
            config.code.file.name if config.code else None), config.name)
    except Exception:  # noqa: BLE001 - a bug in backcheck: say so, with the traceback
        return failed(shown, config.path, InternalError(
            "backcheck failed; this is a bug in backcheck, please report it with this message:\n"
            + traceback.format_exc()), config.name)


@dataclass
class Prepared:
    """The bound code and the data it is checked on: what every worker of a check needs."""

    binding: object
    data: object
    orient: dict
    layout: str
    notes: list
    warnings: list


def prepare(config: Config, options: Options, progress=None) -> Prepared:
    """Import and bind the code (or the reference), build the data and attach it to the binding."""
    net, seed = config.network, config.check.seed
    progress = progress or (lambda phase: None)
    rng_params = np.random.default_rng([seed, 1])
    rng_data = np.random.default_rng([seed, 2])
    canon = reference.init_params(net, rng_params)
    if config.code is None:
        binding = ReferenceBinding(config, canon, mistakes.parse_injections(options.inject, net))
        layout, targets = "rows", "onehot"
    else:
        progress("import")
        loaded = load_code(config.code)
        progress("bind")
        layout, targets = config.code.layout, config.code.targets
        defaults = {}
        for k, entry in enumerate(config.code.params, start=1):
            W, b = canon[k - 1]
            slot = Slot(k, "W", entry["W"], entry.get("orient"))
            defaults[slot] = np.ascontiguousarray(W.T if code_shape(slot, net.widths, layout) != W.shape else W)
            if "b" in entry:
                defaults[Slot(k, "b", entry["b"])] = b.reshape(code_shape(Slot(k, "b", ""), net.widths, layout)).copy()
        binding = bind(config, loaded, defaults)
    progress("check")
    orient, notes, warnings = param_orientations(binding, net.widths, layout)
    per_example = {o.per_example for o in orient.values() if o.per_example}
    batch = max(per_example) if per_example else None
    data = make_data(config, rng_data, batch=batch)
    notes = list(data.notes) + notes
    warnings += [CheckWarning(i, m) for i, m in data.warnings]
    binding.attach(*data.for_code(layout, targets), canonical=(data.X, data.Y))
    warnings += [CheckWarning(i, m) for i, m in binding.warnings]
    return Prepared(binding, data, orient, layout, notes, warnings)


def run_diagnose(config: Config, options: Options, shown: str, progress=None) -> CheckResult:
    """``backcheck diagnose``: the gradient check, then training with the code's own gradients, and
    what the losses, the activations and a line search say (contract section 5)."""
    from dataclasses import replace

    from backcheck.diagnose import train

    deadline = time.monotonic() + TRAIN_SHARE * config.check.timeout
    checked = run_check(config, options, shown, progress)
    if checked.error is not None:
        return checked
    prep = prepare(config, options)
    slots = prep.binding.slots

    def canonical(arrays):
        return _canonical_params(slots, arrays, prep.orient, config.network)

    try:
        training = train(config, prep, canonical, gradients_right=checked.exit_code == 0, deadline=deadline)
    except UserCodeError as exc:  # the code broke while training: keep what the check found
        return replace(checked, error=ErrorInfo(exc.kind, f"while training: {exc.message}", exc.where))
    return replace(checked, findings=checked.findings + training.findings, notes=checked.notes + training.notes,
                   extra={**checked.extra, "train": training.to_json()})


def run_check(config: Config, options: Options, shown: str, progress=None) -> CheckResult:
    """Bind the code, build the data, compare every parameter's gradients, name the mistakes."""
    prep = prepare(config, options, progress)
    # Workers start now, so that they load the code while this process takes the analytic gradient.
    pool = _start_pool(config, options, prep.binding)
    try:
        return _check_prepared(config, options, shown, prep, pool)
    finally:
        if pool is not None:
            pool.close()


def _canonical_params(slots, arrays, orient, net):
    """[(W, b)] in the reference's layout; a layer without a bias gets a constant zero vector."""
    by = {(s.layer, s.role): s for s in slots}

    def value(k, r):
        s = by.get((k, r))
        if s is None:
            return np.zeros(net.layers[k - 1].units)
        return orient[s].canonical_of(arrays[s], canonical_shape(s, net.widths))

    return [(value(k, "W"), value(k, "b")) for k in range(1, len(net.layers) + 1)]


def _forward_mismatch(net, params_c, data, f0: float, precision) -> CheckWarning | None:
    try:
        expected = reference.loss(net, params_c, data.X, data.Y)
    except (ValueError, FloatingPointError):
        return None
    tol = 1e-6 if precision.dtype == "float64" else 1e-3
    if abs(f0 - expected) <= tol * max(abs(f0), abs(expected), 1e-12):
        return None
    ratio = f0 / expected if expected else float("inf")
    hint = ""
    n = data.batch
    if abs(ratio - n) < 1e-6 * n:
        hint = f" (= the batch size {n}: a sum over the batch where network.loss is a mean?)"
    elif abs(ratio - 0.5) < 1e-9:
        hint = " (a 1/2 in front of the squared error?)"
    return CheckWarning(
        "forward/mismatch",
        f"the code's loss is {f0:.6g}; the network in the config gives {expected:.6g} at the same parameters "
        f"and data (ratio {ratio:.6g}{hint}). The check still differentiates the code's own loss; the names "
        "of mistakes assume the config's network")


def _check_restored(binding, arrays) -> None:
    now = binding.arrays()
    for s, a in arrays.items():
        if now[s] is not a:
            raise UserCodeError(f"the code replaced the array {s.code_name} while its loss was evaluated",
                                binding.code.file.name if binding.code else None, kind="contract")


# ---------------------------------------------------------------- the child process
#
# The child is a fresh interpreter (`python -c "...child_main()"`), not a multiprocessing
# child: it never re-imports the caller's __main__, so a script calling ``verify`` needs no
# `if __name__ == "__main__":` guard. The job goes in as a pickle on stdin; progress and the
# result come back as length-prefixed pickles on a private copy of the child's stdout, while
# its fds 1 and 2 (what the user's prints reach) go to /dev/null or to our stderr.

_CHILD = "from backcheck.runner import child_main; child_main()"


def child_main() -> None:
    import pickle
    import struct
    import sys

    wire = os.fdopen(os.dup(1), "wb")
    config, options, shown = pickle.load(sys.stdin.buffer)
    if options.memory_mb:
        _limit_memory(options.memory_mb)
    target = os.open(os.devnull, os.O_WRONLY) if not options.show_output else 2
    os.dup2(target, 1)
    if not options.show_output:
        os.dup2(target, 2)

    def send(message) -> None:
        data = pickle.dumps(message)
        wire.write(struct.pack("<Q", len(data)) + data)
        wire.flush()

    send(("phase", "start"))
    result = run_guarded(config, options, shown, progress=lambda phase: send(("phase", phase)))
    send(("result", result))
    wire.close()


def _limit_memory(mb: int) -> None:
    """Cap this process's address space: code that runs away with memory gets a MemoryError (its
    own error) instead of taking the machine down. Not every platform has the limit."""
    try:
        import resource

        limit = mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


def _reader(stream, inbox) -> None:
    import pickle
    import struct

    try:
        while True:
            head = stream.read(8)
            if len(head) < 8:
                break
            (n,) = struct.unpack("<Q", head)
            inbox.put(pickle.loads(stream.read(n)))
    except Exception:  # noqa: BLE001 - a torn message is an ended child
        pass
    inbox.put(None)


def _run_in_child(config: Config, options: Options, shown: str) -> CheckResult:
    import pickle
    import queue
    import subprocess
    import sys
    import threading

    proc = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    inbox: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, inbox), daemon=True).start()
    errors: list = []
    threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True).start()
    try:
        proc.stdin.write(pickle.dumps((config, options, shown)))
        proc.stdin.close()
    except BrokenPipeError:
        pass
    phase, deadline = None, time.monotonic() + STARTUP_GRACE
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _timed_out(config, shown, phase)
            try:
                message = inbox.get(timeout=remaining)
            except queue.Empty:
                continue
            if message is None:
                return _died(config, shown, proc, phase, errors)
            kind, value = message
            if kind == "result":
                return value
            if phase == "start":
                deadline = time.monotonic() + config.check.timeout  # the code's own time starts
            phase = value
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def _timed_out(config: Config, shown: str, phase: str) -> CheckResult:
    t = config.check.timeout
    file = config.code.file.name if config.code else str(config.path)
    if phase == "import":
        msg = (f"importing {file} did not finish within {t:g} s: the file runs code when imported (a training "
               "loop?). Put the script part under `if __name__ == \"__main__\":` so that importing it only "
               "defines functions, or add `import: definitions` to code: in the YAML, or raise check.timeout")
    else:
        msg = (f"the code under test did not finish within {t:g} s (check.timeout); backcheck stopped it. "
               "Is there an endless loop, or is the network too large for the time allowed?")
    return failed(shown, config.path, UserCodeError(msg, file, kind="timeout"), config.name)


def _died(config: Config, shown: str, proc, phase, errors) -> CheckResult:
    proc.wait(5)
    file = config.code.file.name if config.code else str(config.path)
    if phase is None:  # backcheck's own child did not start: not the user's fault
        time.sleep(0.1)
        tail = (errors[0] if errors else b"").decode(errors="replace")[-2000:]
        return failed(shown, config.path, InternalError(
            f"backcheck could not start its worker process (exit code {proc.returncode}); this is a bug in "
            f"backcheck or a broken installation:\n{tail}"), config.name)
    return failed(shown, config.path, UserCodeError(
        f"the process running the code under test ended without a result (exit code {proc.returncode}): "
        "the code called os._exit, crashed the interpreter, or ran out of memory", file), config.name)


# ---------------------------------------------------------------- probing every parameter


def _check_prepared(config: Config, options: Options, shown: str, prep: Prepared, pool) -> CheckResult:
    """run_check after prepare(): the analytic gradient, every parameter judged, the diagnosis."""
    net = config.network
    binding, data, orient, layout = prep.binding, prep.data, prep.orient, prep.layout
    notes, warnings = prep.notes, prep.warnings

    started = time.perf_counter()
    f0 = binding.loss()
    call_seconds = time.perf_counter() - started
    precision, w = choose_precision(binding, config.check.eps, config.check.tolerance)
    warnings += w
    analytic = analytic_gradient(binding, precision)
    findings = list(analytic.findings)
    notes += analytic.notes
    arrays = binding.arrays()
    where = config.code.file.name if config.code else str(config.path)
    grads = {}
    for s in binding.slots:
        try:
            g, finding = match_shape(s, arrays[s], np.asarray(analytic.grads[s]), where)
        except UserCodeError as exc:
            # Exit 3, and the finding says which gradient could not be matched to its parameter.
            return CheckResult(config=shown, name=config.name, findings=(Finding(
                "shape/mismatch", s.layer, "error", f"layer {s.layer}: the gradient of {s.code_name} has the "
                "wrong shape", exc.message, f"return a gradient of the parameter's shape {arrays[s].shape}",
                1.0),), warnings=tuple(warnings), notes=tuple(notes),
                error=ErrorInfo(exc.kind, exc.message, exc.where))
        grads[s] = g
        if finding:
            findings.append(finding)

    measure = measure_for(binding, f0, precision.loss_dtype)
    method, sharpen = _choose_method(config.check.method, measure, binding, grads, precision, notes)
    if pool is not None:
        serial = 2 * sum(a.size for a in arrays.values()) * call_seconds
        if serial < POOL_MIN_SECONDS:  # less work than starting a worker costs: keep it here
            notes.append(f"--jobs {pool.jobs}: the check takes about {serial:.1g} s in one process, less than "
                         "starting workers; no workers were used")
            pool.close()
            pool = None
        else:
            pool.start(binding, f0, precision.loss_dtype)
            measure = PoolMeasure(pool, measure)
    results, numeric, bad = {}, {}, {}
    for s in binding.slots:
        # One generator per parameter: what is probed does not depend on the order or the mode.
        rng = np.random.default_rng([config.check.seed, 3, s.layer, "Wb".index(s.role)])
        checked = check_param(binding, s, arrays[s], grads[s], precision, f0, method, rng,
                              exhaustive=options.exhaustive, measure=measure, sharpen=sharpen)
        results[s], numeric[s], bad[s] = checked.result, checked.numeric, checked.bad
    notes += _probe_notes(config, options, results, method, pool, binding)
    if any(r.kinks for r in results.values()):
        n = sum(r.kinks for r in results.values())
        warnings.append(CheckWarning(
            "kink/nondifferentiable",
            f"{n} probe(s) crossed or started on a non-differentiable point (e.g. ReLU at 0); the one-sided "
            "derivatives differ there and the code's value was accepted as a subgradient"))
    _check_restored(binding, arrays)

    # Everything below compares against backcheck's reference network in the canonical layout.
    params_c = _canonical_params(binding.slots, arrays, orient, net)
    mismatch = _forward_mismatch(net, params_c, data, f0, precision)
    if mismatch:
        warnings.append(mismatch)
    layers = []
    for k in range(1, len(net.layers) + 1):
        layer_slots = [s for s in binding.slots if s.layer == k]
        layers.append(LayerResult(k, net.label(k), tuple(_with_pattern(results[s], s, bad[s], orient[s], net)
                                                         for s in layer_slots)))
    report = mistakes.Evidence(
        net=net, params=params_c, X=data.X, Y=data.Y, loss=f0,
        analytic={(s.layer, s.role): orient[s].canonical_of(grads[s], canonical_shape(s, net.widths))
                  for s in binding.slots},
        numeric={(s.layer, s.role): orient[s].canonical_of(numeric[s], canonical_shape(s, net.widths))
                 for s in binding.slots},
        status={(s.layer, s.role): results[s].status for s in binding.slots},
        tolerance=precision.tolerance, forward_matches=mismatch is None, layout=layout,
        code_names={(s.layer, s.role): s.code_name for s in binding.slots})
    findings = mistakes.explain(report, findings)
    return CheckResult(
        config=shown, name=config.name,
        method=Method(method, precision.eps, precision.dtype, "exhaustive" if options.exhaustive else "default",
                      config.check.seed, pool.jobs if pool is not None else 1),
        layers=tuple(layers), findings=tuple(findings), warnings=tuple(warnings),
        notes=tuple(notes + binding.notes))



def _start_pool(config: Config, options: Options, binding):
    """Worker processes for --exhaustive --jobs N; None when this process does all the work.
    The reference network (no code:) is probed in one stacked pass and needs no workers."""
    if not options.exhaustive or options.jobs <= 1 or isinstance(binding, ReferenceBinding):
        return None
    return Pool(options.jobs, (config, options), options.show_output)


def _choose_method(asked: str, measure, binding, grads, precision, notes: list):
    """The method the entries are measured with, and the one that re-measures a borderline verdict.

    Complex step is tried only when asked for or when a verdict is borderline (found out lazily):
    it runs the code on complex arrays, which most codes never see."""
    def complex_support():
        if precision.dtype != "float64":
            return "complex step needs float64 arithmetic and the code computes in float32"
        return complex_step_support(measure, binding, grads, precision.tolerance, precision.eps)

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


def _with_pattern(result, slot: Slot, bad, orient, net):
    """The wrong entries of a wrong parameter, in words (canonical orientation: W is (in, out))."""
    if result.status != "wrong" or not bad.any():
        return result
    canon = orient.canonical_of(bad, canonical_shape(slot, net.widths)) > 0.5
    text = mistakes.param_pattern(canon, slot.role)
    if result.estimated:
        text += f" (estimated from {result.searched} sampled entries)"
    return dataclasses.replace(result, pattern=text)


def _probe_notes(config: Config, options: Options, results: dict, method: str, pool, binding) -> list:
    """What was probed, for the report."""
    notes = []
    sampled = [r for r in results.values() if r.directions]
    if sampled:
        notes.append(
            f"default mode: parameters over {MAX_EXHAUSTIVE} entries ({', '.join(r.code_name for r in sampled)}) "
            f"were judged from {SAMPLE_ENTRIES} stratified entries and {SAMPLE_DIRECTIONS} random directions "
            f"(Gaussian, seed {config.check.seed}); a wrong one is searched for its wrong entries by row and "
            "column probes. --exhaustive probes every entry")
    if method == "richardson":
        notes.append("richardson: estimated error of each numeric gradient (norm): " + ", ".join(
            f"{r.code_name} {r.noise / 3:.1e}" for r in results.values()))
    if options.jobs > 1 and not options.exhaustive:
        notes.append("--jobs applies to --exhaustive checks; the default mode makes too few loss calls to share")
    elif options.jobs > 1 and isinstance(binding, ReferenceBinding):
        notes.append("--jobs: the reference network is probed in one vectorised pass, without workers")
    elif pool is not None and pool.retired:
        notes.append(f"{pool.retired} worker(s) did not reproduce this process's loss bit for bit "
                     "(nondeterministic code?) and were not used")
    return notes


def worker_main() -> None:
    """A --jobs worker (see backcheck.parallel): load the code once, then probe what it is sent."""
    import sys

    from backcheck import parallel

    inbox = sys.stdin.buffer
    wire = os.fdopen(os.dup(1), "wb")
    _, (config, options), parent = parallel.recv(inbox)
    parallel.die_with_parent(parent)
    target = os.open(os.devnull, os.O_WRONLY) if not options.show_output else 2
    os.dup2(target, 1)
    if not options.show_output:
        os.dup2(target, 2)
    try:
        prep = prepare(config, options)
    except Exception:  # noqa: BLE001 - the parent meets the same failure itself and reports it
        return
    parallel.serve(prep.binding, inbox, wire)
