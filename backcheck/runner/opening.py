"""Opening the code under test: in its own process (what it may reply, its clock, its folder), with the data and its parameters."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

import numpy as np

from backcheck import mistakes
from backcheck.binding import ReferenceBinding, open_code
from backcheck.data import from_code, make_data
from backcheck.errors import UserCodeError
from backcheck.evaluator import LocalEvaluator
from backcheck.results import CheckWarning
from backcheck.runner.layout import default_params, param_orientations
from backcheck.runner.options import Options
from backcheck.spec import Config


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
                  "step_gradient": "step", "set_values": "parameter update", "attach": "first calls with the check's data"}


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
                    show_output=options.show_output, preimport=PREIMPORT, writable=options.writable,
                    hide=options.hide)
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
