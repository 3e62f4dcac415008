"""Binding by place (docs/binding.md, binding by place): the code's own blocks of lines, run by backcheck.

The program runs as it is (a script as ``__main__``, or ``place.run``'s function after importing
it) until the first line of a block is about to run; that frame's namespace is taken (the
module's globals and, in a function, its locals) and the program stops there. From then on every
evaluation starts from a fresh copy of that namespace, puts the parameters backcheck probes in
place of the code's, and runs the blocks in the order of the file: the forward lines, the loss
lines, the backward lines. The loss is ``place.loss.value`` evaluated after them (or the
network's, with ``loss: spec``); the gradients are the ``grads:`` expressions evaluated after the
backward lines.

At module level the blocks run in the module's own dictionary (reset before each evaluation), so
that the module's functions, which read their globals there, see the probed parameters too.
"""

from __future__ import annotations

import sys
import textwrap

import numpy as np

from backcheck.binding.base import Binding
from backcheck.binding.calls import Caller, describe, resolve, user_where
from backcheck.binding.params import Slot
from backcheck.binding.program import block_lines, read_program
from backcheck.errors import ConfigError, UserCodeError
from backcheck.spec import Config, parse_path

_DEFAULT_DATA = {"X": ("X", "x", "X_train", "inputs", "data_X"), "Y": ("y", "Y", "labels", "y_train", "targets")}


class _Reached(BaseException):
    """Raised by the trace function to stop the program at the first line of a block."""


class PlaceBinding(Binding):
    """The user's blocks of code, evaluated on copies of the namespace their program built."""

    def __init__(self, config: Config, default_params=None):
        super().__init__(config, None)
        code = self.code
        self.file_name = code.file.name
        self.place = code.place
        self.program = read_program(code.file)
        self.notes += self.program.notes
        self.slots = [Slot(k + 1, role, entry[role], entry.get("orient") if role == "W" else None)
                      for k, entry in enumerate(code.params) for role in ("W", "b") if role in entry]
        self.blocks = self._compile()
        frame_globals, frame_locals, line = self._reach()
        self.module_level = frame_locals is None
        self.namespace = frame_globals  # the dict the blocks run in at module level
        self.snapshot = _copied(frame_globals if self.module_level else {**frame_globals, **frame_locals})
        self.notes.append(f"place: the program ran until {self.program.where(line)}, where backcheck took its "
                          f"namespace ({'module level' if self.module_level else 'inside a function'}); the "
                          "blocks are run from copies of it")
        self.live = {}
        for s in self.slots:
            value = self._param(self.snapshot, s)
            arr = np.array(value, dtype=value.dtype if isinstance(value, np.ndarray) and value.dtype.kind == "f"
                           else np.float64, copy=True)
            self.live[s] = arr
        self.data_names = self._data_names()
        self.code_X = np.asarray(self.snapshot[self.data_names["X"]])
        self.code_Y = np.asarray(self.snapshot[self.data_names["Y"]])
        self.attached = None
        self.fixed_lr = None

    # -- the blocks
    def _compile(self) -> dict:
        out = {}
        for name in ("forward", "loss", "backward"):
            spec = getattr(self.place, name)
            if spec is None:
                continue
            where = self.config.where(spec.key)
            lines = block_lines(self.program, spec, where)
            out[name] = (lines, self._block(lines, spec, where))
        return out

    def _block(self, lines: list[int], spec, where: str):
        """The block's lines compiled on their own, dedented, at their own line numbers."""
        src = self.program.lines
        chosen = [src[n - 1] for n in lines]
        body = textwrap.dedent("\n".join(chosen)).splitlines()
        text = [""] * (lines[-1])
        for n, line in zip(lines, body):
            text[n - 1] = line
        try:
            return compile("\n".join(text) + "\n", self.program.filename, "exec")
        except SyntaxError as exc:
            at = self.program.where(exc.lineno) if exc.lineno else spec.text
            raise ConfigError(f"{spec.key}: the lines {spec.text} do not compile by themselves ({exc.msg} at {at}): "
                              "a block must be whole statements (an if, a for or a def with its body)",
                              where) from None

    def _reach(self):
        """Run the program until a block's first line is about to run; (globals, locals or None, line)."""
        starts = {lines[0] for lines, _ in self.blocks.values()}
        filename = self.program.filename
        hit = {}

        def local(frame, event, arg):
            if event == "line" and frame.f_lineno in starts and frame.f_code.co_filename == filename:
                hit["frame"], hit["line"] = frame, frame.f_lineno
                raise _Reached
            return local

        def tracer(frame, event, arg):
            return local if frame.f_code.co_filename == filename else None

        module = self._module()
        run = self.place.run
        code_obj = compile(self.program.source, filename, "exec")
        call = Caller(self.code.file, self.config.check.seed)
        previous = sys.gettrace()
        try:
            if run is None:
                sys.settrace(tracer)
                call(exec, code_obj, module.__dict__, what=f"running {self.file_name}")
            else:
                call(exec, code_obj, module.__dict__, what=f"importing {self.file_name}")
                fn = module.__dict__.get(run.name)
                if not callable(fn):
                    raise ConfigError(f"code.place.run: {self.file_name} defines no function {run.name!r}",
                                      self.config.where("code.place.run"))
                args = list(run.args or ())
                kwargs = dict(run.kwargs or ())
                sys.settrace(tracer)
                call(fn, *args, what=f"{run.name}()", **kwargs)
        except UserCodeError as exc:
            if "frame" not in hit:
                raise
            del exc  # the _Reached that stopped it, seen through the Caller
        except _Reached:
            pass
        finally:
            sys.settrace(previous)
        if "frame" not in hit:
            first = min(starts)
            raise ConfigError(
                f"the program ran to its end without reaching {self.program.where(first)} (the first line of a "
                "block): is it under a branch that does not run, or in a function nobody calls? code.place.run "
                "can name a function to call", self.config.where("code.place"))
        frame = hit["frame"]
        module_level = frame.f_locals is frame.f_globals
        return frame.f_globals, (None if module_level else dict(frame.f_locals)), hit["line"]

    def _module(self):
        import types

        module = types.ModuleType("__main__" if self.place.run is None else f"backcheck_user_{self.code.file.stem}")
        module.__file__ = str(self.code.file)
        module.__dict__["__builtins__"] = __builtins__
        if self.program.cells is not None:
            module.__dict__["display"] = lambda *args, **kwargs: None
        folder = str(self.code.file.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        return module

    # -- names in the namespace
    def _param(self, ns: dict, s: Slot):
        try:
            parts = parse_path(s.code_name)
            value = resolve(ns[parts[0]], list(parts[1:])) if isinstance(parts[0], str) and parts[0] in ns else None
        except (ValueError, KeyError, IndexError, AttributeError, TypeError):
            value = None
        if value is None or not hasattr(value, "shape"):
            raise ConfigError(f"params: {s.code_name} is not an array at {self.program.where(self._start())}; names "
                              f"there: {_names(ns)}", self.config.where(f"code.params[{s.layer - 1}].{s.role}"))
        return value

    def _start(self) -> int:
        return min(lines[0] for lines, _ in self.blocks.values())

    def _data_names(self) -> dict:
        given = dict(self.place.data)
        out = {}
        for key in ("X", "Y"):
            names = (given[key],) if key in given else _DEFAULT_DATA[key]
            found = next((n for n in names if isinstance(self.snapshot.get(n), (np.ndarray, list)) or
                          hasattr(self.snapshot.get(n), "shape")), None)
            if found is None:
                raise ConfigError(
                    f"code.place.data: no {'inputs' if key == 'X' else 'targets'} named {' or '.join(names)} at "
                    f"{self.program.where(self._start())}; name them with data: {{{key}: NAME}} (names there: "
                    f"{_names(self.snapshot)})", self.config.where("code.place"))
            out[key] = found
        return out

    # -- one evaluation
    def _fresh(self) -> dict:
        """A new namespace: the snapshot copied, the probed parameters in place, the data backcheck uses."""
        ns = _copied(self.snapshot)
        for s, arr in self.live.items():
            self._assign(ns, s, arr)
        if self.attached is not None:
            ns[self.data_names["X"]], ns[self.data_names["Y"]] = self.attached
        if self.module_level:
            self.namespace.clear()
            self.namespace.update(ns)
            return self.namespace
        return ns

    def _assign(self, ns: dict, s: Slot, arr) -> None:
        """Put a probed array where the code keeps the parameter, and wherever else the namespace holds
        that same array (``model = {'W1': W1, ...}``), so every name the code reads it by sees it."""
        parts = parse_path(s.code_name)
        if len(parts) == 1:
            old, ns[parts[0]] = ns.get(parts[0]), arr
        else:
            parent = resolve(ns[parts[0]], list(parts[1:-1]))
            last = parts[-1]
            if isinstance(last, str) and not isinstance(parent, dict):
                old = getattr(parent, last, None)
                setattr(parent, last, arr)
            else:
                old = parent[last]
                parent[last] = arr
        if isinstance(old, np.ndarray) and old is not arr:
            _replace_everywhere(ns, old, arr)

    def _run(self, names: tuple, ns: dict) -> None:
        for name in sorted((n for n in names if n in self.blocks), key=lambda n: self.blocks[n][0][0]):
            lines, code = self.blocks[name]
            self.call(exec, code, ns, what=lambda name=name, lines=lines:
                      f"the {name} lines ({self.program.where(lines[0])})")

    def _eval(self, text: str, ns: dict, what: str):
        try:
            return eval(compile(text, f"<{what}>", "eval"), ns)  # noqa: S307 - the user's own expression
        except NameError as exc:
            raise ConfigError(f"{what}: {exc} after the blocks; names there: {_names(ns)}",
                              self.config.where("code.place")) from None
        except Exception as exc:  # noqa: BLE001 - the code's own values misbehaving
            raise UserCodeError(f"{what} = {text} raised {describe(exc)}", user_where(exc, self.code.file)) from None

    # -- what the checker asks
    def arrays(self) -> dict:
        return dict(self.live)

    def swap(self, slot: Slot, arr):
        old, self.live[slot] = self.live[slot], arr
        return old

    def attach(self, X, Y, canonical=None) -> None:
        same = X is None or (np.shape(X) == self.code_X.shape and np.array_equal(X, self.code_X)
                             and np.shape(Y) == self.code_Y.shape and np.array_equal(Y, self.code_Y))
        self.attached = None if same else (X, Y)
        self.X, self.Y = (self.code_X, self.code_Y) if same else (X, Y)
        self.canonical = canonical

    def raw_loss(self):
        if self.code.spec_loss:
            return self.spec_loss()
        ns = self._fresh()
        self._run(("forward", "loss"), ns)
        return self._eval(self.place.value, ns, "code.place.loss.value")

    def loss(self, finite: bool = True) -> float:
        return self.loss_value(self.raw_loss(), "the loss lines", finite)

    def analytic(self) -> dict:
        ns = self._fresh()
        self._run(("forward", "loss", "backward"), ns)
        out = {}
        for s in self.slots:
            text = self.code.grads[s.layer - 1][s.role]
            out[s] = self._array(self._eval(text, ns, f"grads[{s.layer - 1}].{s.role}"), s, "the backward lines")
        return out

    def trace_source(self):
        """For the line pointer: the program and where its backward runs."""
        return self.program

    @property
    def uses_step(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _copied(ns: dict) -> dict:
    """A copy of a namespace in which arrays (and lists or dicts of them) are new objects; an array
    held under two names (``W1`` and ``model['W1']``) is one copy under both, as it was one array."""
    memo: dict = {}

    def copy(x):
        if not isinstance(x, np.ndarray):
            return x
        if id(x) not in memo:
            memo[id(x)] = x.copy()
        return memo[id(x)]

    out = {}
    for k, v in ns.items():
        if isinstance(v, dict) and any(isinstance(x, np.ndarray) for x in v.values()):
            out[k] = {kk: copy(x) for kk, x in v.items()}
        elif isinstance(v, list) and any(isinstance(x, np.ndarray) for x in v):
            out[k] = [copy(x) for x in v]
        else:
            out[k] = copy(v)
    return out


def _replace_everywhere(ns: dict, old: np.ndarray, new) -> None:
    """``new`` in place of ``old`` under every name and in every dict or list of the namespace."""
    for k, v in ns.items():
        if v is old:
            ns[k] = new
        elif isinstance(v, dict):
            for kk, x in v.items():
                if x is old:
                    v[kk] = new
        elif isinstance(v, list):
            for i, x in enumerate(v):
                if x is old:
                    v[i] = new


def _names(ns: dict) -> str:
    shown = sorted(k for k, v in ns.items() if not k.startswith("__") and not callable(v) and not
                   isinstance(v, type(sys)))
    return ", ".join(shown[:20]) + (" ..." if len(shown) > 20 else "")
