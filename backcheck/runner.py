"""The pipeline of a check: read the config, open the code under test, judge, name, report.

``verify(path)`` is the library entry point: it never raises for bad input, it returns a
``CheckResult`` whose ``error`` says what went wrong. The process calling it never imports the
code under test: that runs in a sandboxed process (``sandbox``) that only evaluates what it is
asked (``evaluator``); the probing arithmetic, the verdicts, the names of mistakes and the scores
are computed here, out of the code's reach. The code's time in all is ``check.timeout``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
import traceback
from dataclasses import dataclass

import numpy as np

from backcheck import mistakes, reference
from backcheck.binding import ReferenceBinding, Slot, canonical_shape, code_shape, open_code, orientation
from backcheck.data import from_code, make_data
from backcheck.errors import BackcheckError, ConfigError, InternalError, UserCodeError
from backcheck import conventions, gradcheck, points
from backcheck import mismatch as mismatch_module
from backcheck.evaluator import LocalEvaluator
from backcheck.gradcheck import (MAX_EXHAUSTIVE, SAMPLE_DIRECTIONS, SAMPLE_ENTRIES, Analytic, Point,
                                 analytic_gradient, check_point, complex_step_support, match_shape,
                                 measure_precision, result_of, transposed_finding)
from backcheck.parallel import PoolEvaluator
from backcheck.results import CheckResult, CheckWarning, ErrorInfo, Finding, LayerResult, Method
from backcheck.spec import Config, load_config

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
    user: str | None = None  # run the code as this user when backcheck runs as root ("auto": nobody, if it can)
    cwd: str | None = None  # the code's working directory (default: its own folder)
    hide: tuple[str, ...] = ()  # as root: folders the code sees empty (grade: the submissions)
    readonly: tuple[str, ...] = ()  # as root: paths the code cannot write (grade: config, outputs)
    command: str = "verify"  # verify | diagnose (the check, then training with the code's gradients)


def verify(path, options: Options = Options(), *, isolate: bool = True, progress=None) -> CheckResult:
    """Check the config at ``path``. With ``isolate`` the user's code runs in a sandboxed process;
    without, in this one (faster to start, but the code can then reach backcheck). ``progress(phase,
    done, total, **detail)`` hears what a long check is doing: import, check, probe, train."""
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
    return run_guarded(config, options, shown, progress, isolate=isolate)


def diagnose_config_path(path, options: Options = Options(), *, isolate: bool = True, progress=None) -> CheckResult:
    """``backcheck diagnose``: ``verify`` and then training; the result has a "train" section."""
    from dataclasses import replace

    return verify(path, replace(options, command="diagnose"), isolate=isolate, progress=progress)


def verify_config(config: Config, options: Options, shown: str) -> CheckResult:
    """Check an already-read config, the code sandboxed (``backcheck grade`` reads one per submission)."""
    return run_guarded(config, options, shown, isolate=True)


def failed(shown: str, path, exc: BackcheckError, name: str | None = None) -> CheckResult:
    from pathlib import Path

    return CheckResult(config=shown, name=name or Path(str(path)).stem,
                       error=ErrorInfo(exc.kind, exc.message, exc.where))


def run_guarded(config: Config, options: Options, shown: str, progress=None, isolate: bool = True) -> CheckResult:
    """run_check (or run_diagnose) with every failure turned into a result."""
    try:
        if options.command == "diagnose":
            return run_diagnose(config, options, shown, progress, isolate)
        return run_check(config, options, shown, progress, isolate)
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
    """The code (or backcheck's reference network) behind an evaluator, and the data it is checked on."""

    evaluator: object  # an evaluator.Evaluator: every call into the code goes through it
    data: object
    orient: dict
    layout: str
    notes: list
    warnings: list
    X: np.ndarray  # the data in the code's layout and target form
    Y: np.ndarray
    where: str  # the code's file name, for messages
    fixed_lr: float | None = None  # a step's own learning rate (lr: 0.1 in the YAML)
    step_name: str = "step"
    reference: bool = False  # backcheck's own network (no code:)


def prep_where(config: Config) -> str:
    return config.code.file.name if config.code else str(config.path)


def default_params(config: Config) -> tuple[list, dict]:
    """backcheck's own initial parameters (canonical), and the same in the code's shapes for code without init."""
    net = config.network
    canon = reference.init_params(net, np.random.default_rng([config.check.seed, 1]))
    defaults = {}
    if config.code is not None:
        layout = config.code.layout
        for k, entry in enumerate(config.code.params, start=1):
            W, b = canon[k - 1]
            slot = Slot(k, "W", entry["W"], entry.get("orient"))
            defaults[slot] = np.ascontiguousarray(W.T if code_shape(slot, net.widths, layout) != W.shape else W)
            if "b" in entry:
                defaults[Slot(k, "b", entry["b"])] = b.reshape(code_shape(Slot(k, "b", ""), net.widths, layout)).copy()
    return canon, defaults


def check_binding(config: Config, binding, options: Options, shown: str) -> CheckResult:
    """Check code already bound in this process (the Python API's callables)."""
    try:
        prep = prepare(config, options, binding=binding)
    except BackcheckError as exc:
        return failed(shown, config.path, exc, config.name)
    try:
        return _check_prepared(config, options, shown, prep, None)
    except BackcheckError as exc:
        return failed(shown, config.path, exc, config.name)
    finally:
        prep.evaluator.close()


def prepare(config: Config, options: Options, progress=None, isolate: bool = True, binding=None) -> Prepared:
    """Open the code (or the reference) behind an evaluator, build the data and attach it. With
    ``isolate`` the code is imported and bound in a sandboxed process, else in this one; ``binding``:
    code bound already (the Python API)."""
    net = config.network
    progress = progress or (lambda phase, done, total, **detail: None)
    canon, defaults = default_params(config)
    info = {}
    if config.code is None:
        binding = ReferenceBinding(config, canon, mistakes.parse_injections(options.inject, net))
        evaluator = LocalEvaluator(binding)
        layout, targets = "rows", "onehot"
        info["reference"] = True
    else:
        layout, targets = config.code.layout, config.code.targets
        progress("import", 0, None)
        if binding is not None:
            evaluator = LocalEvaluator(binding)
        elif isolate:
            evaluator = open_sandboxed(config, options, defaults)
        else:
            with _working_in(code_cwd(config, options)):  # a script opens its data by a relative path
                evaluator = LocalEvaluator(open_code(config, defaults))
        info["fixed_lr"] = getattr(evaluator, "fixed_lr", None)
        info["step_name"] = getattr(evaluator, "step_name", "step")
    progress("check", 0, None)
    values = evaluator.values()
    try:
        orient, notes, warnings = param_orientations(values, net.widths, layout, config.where)
    except BaseException:
        evaluator.close()
        raise
    per_example = {o.per_example for o in orient.values() if o.per_example}
    batch = max(per_example) if per_example else None
    if config.data.kind == "code":  # bound by place: the program's own inputs and targets
        data = from_code(config.network, *evaluator.code_data, layout, targets, prep_where(config))
        X, Y = evaluator.code_data
    else:
        data = make_data(config, np.random.default_rng([config.check.seed, 2]), batch=batch)
        X, Y = data.for_code(layout, targets)
    notes = list(data.notes) + notes
    warnings += [CheckWarning(i, m) for i, m in data.warnings]
    try:
        evaluator.attach(X, Y, (data.X, data.Y))
    except BaseException:
        evaluator.close()
        raise
    warnings += [CheckWarning(i, m) for i, m in evaluator.warnings]
    where = config.code.file.name if config.code else str(config.path)
    return Prepared(evaluator, data, orient, layout, notes, warnings, X, Y, where, **info)


def run_diagnose(config: Config, options: Options, shown: str, progress=None, isolate: bool = True) -> CheckResult:
    """``backcheck diagnose``: the gradient check, then training with the code's own gradients, and
    what the losses, the activations and a line search say (contract section 5)."""
    from dataclasses import replace

    from backcheck.diagnose import train

    deadline = time.monotonic() + TRAIN_SHARE * config.check.timeout
    prep = prepare(config, options, progress, isolate)
    try:
        checked = _check_prepared(config, options, shown, prep, None, progress)
        if checked.error is not None:
            return checked

        def canonical(values):
            return _canonical_params(list(values), values, prep.orient, config.network)

        try:
            training = train(config, prep, canonical, gradients_right=checked.exit_code == 0, deadline=deadline,
                             found=checked.findings, progress=progress)
        except UserCodeError as exc:  # the code broke while training: keep what the check found
            return replace(checked, error=ErrorInfo(exc.kind, f"while training: {exc.message}", exc.where))
    finally:
        prep.evaluator.close()
    return replace(checked, findings=checked.findings + training.findings, notes=checked.notes + training.notes,
                   extra={**checked.extra, "train": training.to_json()})


def run_check(config: Config, options: Options, shown: str, progress=None, isolate: bool = True) -> CheckResult:
    """Open the code, build the data, compare every parameter's gradients, name the mistakes."""
    prep = prepare(config, options, progress, isolate)
    # Workers start now, so that they load the code while this process takes the analytic gradient.
    pool = _start_pool(config, options, prep)
    try:
        return _check_prepared(config, options, shown, prep, pool, progress)
    finally:
        if pool is not None:
            pool.close()
        prep.evaluator.close()


def _units_fit(values: dict, widths, config_where):
    """The code's weights chain layers of other widths than network: says: the units key that is wrong."""
    if config_where is None:
        return None
    Ws = sorted((s for s in values if s.role == "W"), key=lambda s: s.layer)
    chain = [widths[0]]
    for s in Ws:
        shape = values[s].shape
        if len(shape) != 2 or chain[-1] not in shape:
            return None
        chain.append(shape[1] if shape[0] == chain[-1] else shape[0])
    if len(chain) != len(widths):
        return None
    for k, (want, got) in enumerate(zip(widths[1:], chain[1:])):
        if want != got:
            return ConfigError(f"network.layers[{k}].units: the code's {Ws[k].code_name} has shape "
                               f"{values[Ws[k]].shape}: its layer has {got} units, not {want}; set units: {got}",
                               config_where(f"network.layers[{k}].units"))
    return None


def param_orientations(values: dict, widths, layout, config_where=None) -> tuple[dict, list[str], list]:
    """How each of the code's arrays maps to the canonical network; notes and warnings on the way."""
    out, notes, warnings = {}, [], []
    for s, arr in values.items():
        try:
            o, note = orientation(s, arr, widths, layout)
        except UserCodeError as exc:
            raise _units_fit(values, widths, config_where) or exc
        out[s] = o
        if note:
            notes.append(note)
    shaped = [(s, arr) for s, arr in values.items() if out[s].per_example]
    if shaped:  # one warning for them all: it is one habit of the code
        batch = out[shaped[0][0]].per_example
        what = ", ".join(f"{s.code_name} {arr.shape}" for s, arr in shaped)
        fit = ", ".join(f"{(widths[s.layer], 1) if layout == 'columns' else (1, widths[s.layer])}" for s, _ in shaped)
        one = len(shaped) == 1
        warnings.append(CheckWarning(
            "bias/batch-shaped",
            f"{what}: one bias per example of the batch of {batch}. "
            "Each example then has its own bias, and the code only runs on batches of exactly that size; "
            f"{'a bias' if one else 'biases'} of shape {fit} broadcast{'s' if one else ''} over any batch"))
    return out, notes, warnings


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


# ---------------------------------------------------------------- the sandboxed code

# What a reply from the sandboxed process may contain besides plain data and arrays.
ACCEPT = ("backcheck.errors", "backcheck.results", "backcheck.numgrad", "backcheck.binding.params",
          "backcheck.binding.trace")
PREIMPORT = ("numpy", "backcheck.evaluator", "backcheck.binding")


class Clock:
    """The code's time: check.timeout in all, counted while the sandboxed process works on a request
    (the judge's own arithmetic does not count). ``request`` turns the sandbox's failures into the
    code's errors, saying which request it was."""

    def __init__(self, sandbox, config: Config):
        self.sandbox, self.config = sandbox, config
        self.budget = config.check.timeout
        self.used = 0.0
        self.requests = 0
        self.losses = 0  # loss evaluations asked for

    def __call__(self, message):
        self.send(message)
        return self.receive()

    def send(self, message) -> None:
        """Send a request; ``receive`` waits for its reply (another process may work meanwhile)."""
        self._name = message[0]
        self.requests += 1
        if self._name in ("entries", "arrays", "blocks", "complex_losses"):
            self.losses += len(message[1][1])
        self._run(lambda left: self.sandbox.send(message, left))

    def receive(self):
        return self._run(lambda left: self.sandbox.recv(left))

    def _run(self, io):
        from backcheck.sandbox import SandboxDied, SandboxTimeout

        left = self.budget - self.used
        if left <= 0:
            raise self._timeout(self._name)
        started = time.monotonic()
        try:
            return io(left)
        except SandboxTimeout:
            raise self._timeout(self._name) from None
        except SandboxDied as exc:
            raise self._died(self._name, exc) from None
        finally:
            self.used += time.monotonic() - started

    def _timeout(self, phase: str) -> UserCodeError:
        t = self.budget
        file = self.config.code.file.name
        if phase == "open":
            msg = (f"importing {file} did not finish within {t:g} s: the file runs code when imported (a training "
                   "loop?). Put the script part under `if __name__ == \"__main__\":` so that importing it only "
                   "defines functions, or add `import: definitions` to code: in the YAML, or raise check.timeout")
        elif self.losses > 100 and self.used > 0.5 * t:
            per = self.used / max(self.losses, 1)
            msg = (f"the check outgrew check.timeout ({t:g} s): it had asked for {self.losses} loss evaluations, "
                   f"about {per * 1e3:.2g} ms each in this code. Raise check.timeout, drop --exhaustive, or "
                   "check on fewer rows (data.rows)")
        else:
            msg = (f"the code under test did not finish within {t:g} s (check.timeout); backcheck stopped it "
                   f"during its {_REQUEST_WORDS.get(phase, phase)}. Is there an endless loop?")
        return UserCodeError(msg, file, kind="timeout")

    def _died(self, phase: str, exc) -> UserCodeError:
        file = self.config.code.file.name
        tail = exc.output_tail.strip().splitlines()[-6:] if exc.output_tail else []
        said = ("; its last output:\n  " + "\n  ".join(tail)) if tail else ""
        return UserCodeError(f"the process running the code under test {exc.status} during its "
                             f"{_REQUEST_WORDS.get(phase, phase)}{said}", file)


_REQUEST_WORDS = {"open": "import", "loss": "loss call", "entries": "loss calls of the probes",
                  "arrays": "loss calls along random directions", "blocks": "loss calls of the search",
                  "complex_losses": "complex-step loss calls", "gradient": "gradient call",
                  "step_gradient": "step", "set_values": "parameter update", "attach": "data update"}


def code_cwd(config: Config, options: Options) -> str:
    """The folder the code runs in: the command's --cwd, else the config's code.cwd, else the
    folder of code.file (where a student runs ``python net.py`` and where Jupyter runs a notebook)."""
    return options.cwd or str(config.code.cwd or config.code.file.parent)


@contextlib.contextmanager
def _working_in(folder: str):
    """This process in ``folder`` while the code under test is opened in it (the Python API and
    tests); the sandbox's evaluator stays there for good."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def open_sandboxed(config: Config, options: Options, defaults: dict, wait: bool = True):
    """A RemoteEvaluator for the code under test, imported and bound in a sandboxed process. With
    ``wait`` False the import is under way when this returns: ``ready()`` of what it returns
    finishes it and gives the evaluator."""
    from backcheck.sandbox import Limits, Sandbox

    limits = Limits(memory_mb=options.memory_mb, user=options.user, cwd=code_cwd(config, options),
                    show_output=options.show_output, preimport=PREIMPORT, hide=options.hide, readonly=options.readonly)
    sandbox = Sandbox("backcheck.evaluator:serve_code", (config, defaults), limits, accept=ACCEPT)
    sandbox.start()
    opening = Opening(sandbox, Clock(sandbox, config))
    return opening.ready() if wait else opening


class Opening:
    """A sandboxed process importing the code; ``ready()`` waits for it and gives its evaluator."""

    def __init__(self, sandbox, clock: Clock):
        self.sandbox, self.clock = sandbox, clock
        try:
            clock.send(("open", ()))
        except BaseException:
            sandbox.close()
            raise

    def ready(self):
        from backcheck.evaluator import RemoteEvaluator

        try:
            kind, value = self.clock.receive()
            if kind == "error":
                raise value
        except BaseException:
            self.sandbox.close()
            raise
        ev = RemoteEvaluator(self.clock, value)
        ev.notes += self.sandbox.notes
        ev.close = self.sandbox.close
        ev.clock = self.clock
        return ev

    def close(self) -> None:
        self.sandbox.close()


# ---------------------------------------------------------------- probing every parameter


def _check_prepared(config: Config, options: Options, shown: str, prep: Prepared, pool, progress=None) -> CheckResult:
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
        raise _config_fits(config, options, prep, ev, data, exc) or exc
    started = time.perf_counter()
    ev.loss()  # timed warm: the first call pays for the code's own first-time costs
    call_seconds = time.perf_counter() - started
    first = None if ev.uses_step else first
    calls, started = ev.loss_calls, time.perf_counter()
    precision, w = measure_precision(ev, values, f0, first or values, config.check.eps, config.check.tolerance)
    batched = (time.perf_counter() - started) / max(ev.loss_calls - calls, 1)  # a call inside a batch request
    warnings += w
    read = _reader_of(config, prep, ev, precision, where)
    try:
        start, an, findings, transposed = read(values, f0, first, "start")
    except UserCodeError as exc:
        if "cannot be compared" not in exc.message:
            if ev.uses_step:  # a step's first call: the config may be what is wrong
                raise _config_fits(config, options, prep, ev, data, exc) or exc
            raise
        # Exit 3, and the finding says which gradient could not be matched to its parameter.
        s = next(s for s in ev.slots if s.code_name in exc.message)
        fix = f"return a gradient of the parameter's shape {values[s].shape}"
        if len(data.X) in _shape_in(exc.message) and config.code is not None and config.code.per_example == "batch":
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
        if serial < POOL_MIN_SECONDS:  # less work than starting a worker costs: keep it here
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
    params_c = _canonical_params(ev.slots, values, orient, net)
    mismatch = _forward_mismatch(net, params_c, data, f0, precision)
    if mismatch is not None:
        fit = mismatch_module.network_fit(config, params_c, data.X, data.Y, f0,
                                          1e-9 if precision.dtype == "float64" else 1e-5)
        if fit is not None:
            raise fit
    tables = {"start": _tables(checked, precision, orient, net, "start")}
    stab = _stabilised(checked, tables["start"], data, net, orient, precision)
    if stab is not None:
        tables["start"] = _cleared(tables["start"])
    problems = _start_problems(net, params_c, data, checked, tables["start"], stab)
    conditioned, precision_r = None, precision
    if problems:
        conditioned, precision_r = _rescaled_check(config, ev, values, params_c, orient, data, read, judge)
        if conditioned is not None:
            tables["rescaled"] = _tables(conditioned, precision_r, orient, net, "rescaled")
            stab_r = _stabilised(conditioned, tables["rescaled"], data, net, orient, precision_r)
            if stab_r is not None:
                tables["rescaled"] = _cleared(tables["rescaled"])
                stab = stab or stab_r
            notes.append(f"the starting parameters are a poor place to see a gradient ({'; '.join(problems)}): "
                         "the gradients were also checked at a rescaled point, the same shapes with every layer's "
                         "pre-activations of mean ~0 and standard deviation 1 on the data; rows marked "
                         "'rescaled' and the findings that say so were measured there")
    unused = _loss_reads(checked, conditioned, ev, where)
    if unused:
        notes.append(unused)
    results, evidence_from = _merge(tables)
    if stab is not None:
        warnings.append(CheckWarning("loss/stabilised", _stabilised_message(stab)))
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
    findings += _name(evidence_from, tables, an, conditioned, checked, net, data,
                      precision_r if evidence_from == "rescaled" else precision, orient, mismatch,
                      prep.layout, results, findings, config.code is not None and config.code.per_example != "batch")
    return CheckResult(
        config=shown, name=config.name,
        method=Method(checked.method, precision.eps, precision.dtype, "exhaustive" if options.exhaustive else "default",
                      seed, pool.jobs if pool is not None and pool.used else 1, ev.loss_calls, ev.gradient_calls),
        layers=tuple(layers), findings=tuple(mistakes.ordered(findings)), warnings=tuple(warnings),
        entries={s.code_name: (_point_of(results[s][0], checked, conditioned).point.grads[s], results[s][1])
                 for s in ev.slots},
        notes=tuple(notes + ev.notes))


def _about_shapes(exc) -> bool:
    """A failure a different shape of the data could explain: numpy's ValueError or IndexError raised in
    the code, or a returned value of the wrong shape."""
    if exc.kind == "exception":
        return any(f"raised {name}" in exc.message for name in ("ValueError", "IndexError"))
    return exc.kind == "contract" and "shape" in exc.message


def _shape_in(message: str) -> tuple:
    """The sizes of the first shape a 'cannot be compared' message gives (the gradient's)."""
    import re

    m = re.search(r"has shape \(([0-9, ]*)\)", message)
    return tuple(int(x) for x in m.group(1).replace(" ", "").split(",") if x) if m else ()


def _config_fits(config: Config, options: Options, prep, ev, data, exc) -> ConfigError | None:
    """The code failed at its first call: a config error naming the key when the config, not the
    code, is what fails (the targets' form, the layout of created parameters, per_example)."""
    if exc.kind not in ("exception", "contract"):
        return None
    fits = mismatch_module.data_form(config, ev, data, exc)
    if fits is None:
        isolate = not isinstance(prep.evaluator, LocalEvaluator)
        fits = _created_layout(config, options, exc, isolate) or _per_example_fits(config, options, exc, isolate)
    return fits


def _runs_with(alt: Config, options: Options, isolate: bool) -> bool:
    """Does the code run under ``alt`` (its loss, and its gradient or step)?"""
    try:
        prep = prepare(alt, dataclasses.replace(options, jobs=1), isolate=isolate)
    except BackcheckError:
        return False
    try:
        prep.evaluator.loss()
        if prep.evaluator.uses_step:
            prep.evaluator.step_gradient(1e-3)
        else:
            prep.evaluator.gradient()
        return True
    except BackcheckError:
        return False
    finally:
        prep.evaluator.close()


_PER_EXAMPLE_WORDS = {"batch": "false", "example": "true", "vector": "vector"}


def _per_example_fits(config: Config, options: Options, first, isolate: bool) -> ConfigError | None:
    """Code that failed at its first call on the whole batch: does it take one example at a time
    (``per_example: true``: (1, in) rows, or ``vector``: (in,))? Checked by calling it that way."""
    code = config.code
    if code is None or code.place is not None or config.data.kind == "code" or code.per_example != "batch":
        return None
    if not _about_shapes(first):  # calling one example at a time changes shapes, nothing else
        return None
    for other in ("example", "vector"):
        if _runs_with(dataclasses.replace(config, code=dataclasses.replace(code, per_example=other)), options,
                      isolate):
            how = "one example at a time, as (1, features)" if other == "example" else \
                "one example at a time, as 1-D vectors (features,)"
            key = config.where("code.per_example") if "code.per_example" in config.marks else config.where("code")
            return ConfigError(f"code.per_example: the code fails on the whole batch ({first.message}), and runs "
                               f"{how}: set per_example: {_PER_EXAMPLE_WORDS[other]} under code: in the YAML", key)
    return None


def _created_layout(config: Config, options: Options, first, isolate: bool) -> ConfigError | None:
    """Code whose parameters backcheck creates failed at its first call: are they, and the data, the
    other way round? (backcheck creates W as (out, in) for layout: columns.) Checked by opening the
    code again with the other layout."""
    code = config.code
    if code is None or code.init is not None or code.model is not None or code.chain is not None or \
            code.place is not None or config.data.kind == "code" or not code.params:
        return None
    other = "columns" if code.layout == "rows" else "rows"
    alt = dataclasses.replace(config, code=dataclasses.replace(code, layout=other))
    if not _runs_with(alt, options, isolate):
        return None
    shape = "(features, batch)" if other == "columns" else "(batch, features)"
    return ConfigError(f"code.layout: the code fails with layout: {code.layout} ({first.message}), and runs with "
                       f"layout: {other} (X is {shape} in this code): set that in the YAML", config.where("code.layout"))


def _reader_of(config, prep, ev, precision, where):
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


def _loss_reads(checked, conditioned, ev, where) -> str | None:
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


def _tables(pc, precision, orient, net, name: str) -> dict:
    """Per slot: (ParamResult, numeric, bad, noise) at one point, with the pattern of wrong entries."""
    out = {}
    for s, c in pc.checks.items():
        r, numeric, bad = result_of(c, pc.verdicts[s], precision, name)
        noise = np.zeros(c.size)
        noise[c.entries.idx] = c.entries.noise
        out[s] = (_with_pattern(r, s, bad, orient[s], net), numeric, bad, noise.reshape(c.shape), gradcheck.unmoved(c))
    return out


def _stabilised(pc, table, data, net, orient, precision):
    """A loss/stabilised explanation of the wrong parameters at this point, or None."""
    if not any(t[0].status == "wrong" for t in table.values()):
        return None
    values = pc.point.values
    params = _canonical_params(list(values), values, orient, net)
    shape = lambda s: canonical_shape(s, net.widths)  # noqa: E731
    analytic = {(s.layer, s.role): orient[s].canonical_of(pc.point.grads[s], shape(s)) for s in table}
    numeric = {(s.layer, s.role): orient[s].canonical_of(t[1], shape(s)) for s, t in table.items()}
    noise = {(s.layer, s.role): orient[s].canonical_of(t[3], shape(s)) for s, t in table.items()}
    return conventions.explain(net, params, data.X, data.Y, analytic, numeric, noise, precision.tolerance,
                               pc.point.f0)


def _stabilised_message(stab) -> str:
    how = (f"log(p + {stab.eps:.0e})" if stab.kind == "epsilon" else f"log(clip(p, {stab.eps:.1g}, 1 - {stab.eps:.1g}))")
    code = ("the code's backward uses the exact p - y there" if stab.code == "exact" else
            "the code's backward carries the clipped p into dloss")
    return (f"the code's loss is stabilised like {how}: at {stab.examples} of the {stab.batch} examples the "
            f"target's probability is so close to 0 or 1 (down to {stab.smallest:.1e}) that the derivative of that "
            f"loss differs from the one backprop computes ({code}); the model reproduces every measured gradient"
            + (" and the loss" if stab.loss_matches else "") + ". This is a convention, not a mistake; to check "
            "those examples too, start from smaller weights or drop the epsilon for the check")


def _start_problems(net, params_c, data, checked, table, stab) -> list:
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


def _rescaled_check(config, ev, values, params_c, orient, data, read, judge):
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


def _point_of(row, checked, conditioned):
    return conditioned if row.point == "rescaled" and conditioned is not None else checked


def _cleared(table: dict) -> dict:
    """A point's rows with the wrong ones passed: a stabilised loss explains them."""
    out = {}
    for s, row in table.items():
        r = row[0]
        if r.status == "wrong" and r.why != "transposed":
            row = (dataclasses.replace(r, status="ok", pattern=None, wrong_entries=0),) + row[1:]
        out[s] = row
    return out


def _merge(tables: dict) -> tuple[dict, str]:
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


def _name(evidence_from, tables, an, conditioned, checked, net, data, precision, orient, mismatch, layout,
          results, earlier: list, per_example: bool = False) -> list:
    """The named mistakes, from the point where the wrong gradients were measured."""
    if not any(r[0].status == "wrong" for r in results.values()):
        return []
    pc = conditioned if evidence_from == "rescaled" else checked
    table = tables[evidence_from]
    values = pc.point.values
    params = _canonical_params(list(values), values, orient, net)
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


def _start_pool(config: Config, options: Options, prep):
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


def _with_pattern(result, slot: Slot, bad, orient, net):
    """The wrong entries of a wrong parameter, in words (canonical orientation: W is (in, out))."""
    if result.status != "wrong" or not bad.any():
        return result
    canon = orient.canonical_of(bad, canonical_shape(slot, net.widths)) > 0.5
    text = mistakes.param_pattern(canon, slot.role)
    if result.estimated:
        text += f" (estimated from {result.searched} sampled entries)"
    return dataclasses.replace(result, pattern=text)


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
