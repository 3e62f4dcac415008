"""Calling the user's code: import it, find its parameters, get its loss and its gradients.

Every call into user code goes through ``_call``, which turns an exception into a
``UserCodeError`` naming the user's file and line. This module runs in the child process only.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backcheck.errors import ConfigError, UserCodeError
from backcheck.spec import Config

# ---------------------------------------------------------------- importing and calling


def load_module(path: Path):
    """Import the user's file as a fresh module (its folder first on sys.path for its own imports)."""
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = "backcheck_user_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        where = f"{Path(exc.filename or path).name}:{exc.lineno}"
        raise UserCodeError(f"the file does not compile: SyntaxError: {exc.msg}", where) from None
    except BaseException as exc:  # noqa: BLE001 - whatever the import raised is the user's error
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UserCodeError(f"importing the file raised {_describe(exc)}", _user_where(exc, path)) from None
    return module


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _user_where(exc: BaseException, path: Path) -> str:
    """file:line of the deepest traceback frame in the user's folder."""
    folder = path.parent.resolve()
    where = path.name
    for frame in traceback.extract_tb(exc.__traceback__):
        try:
            f = Path(frame.filename).resolve()
        except OSError:
            continue
        if folder in f.parents:
            where = f"{f.relative_to(folder)}:{frame.lineno}"
    return where


class Caller:
    """Calls user functions with numpy's global random state reseeded (dropout masks repeat)."""

    def __init__(self, path: Path, seed: int):
        self.path = path
        self.seed = seed

    def __call__(self, fn, *args, what: str):
        np.random.seed(self.seed)
        try:
            return fn(*args)
        except (KeyboardInterrupt, SystemExit) as exc:
            if isinstance(exc, SystemExit):
                raise UserCodeError(f"{what} called sys.exit({exc.code})", self.path.name) from None
            raise
        except Exception as exc:  # noqa: BLE001
            raise UserCodeError(f"{what} raised {_describe(exc)}", _user_where(exc, self.path)) from None


def lookup(module, name: str, config: Config, key: str):
    """The module-level object ``name``; a missing name is an error in the config (exit 2)."""
    if not hasattr(module, name):
        from difflib import get_close_matches

        defined = [n for n in vars(module) if not n.startswith("_")]
        close = get_close_matches(name, defined, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"{config.code.file.name} defines no '{name}'{hint}", config.where(key))
    return getattr(module, name)


def as_loss(value, what: str, where: str) -> float:
    """A float from a float, a 0-d array or a size-1 array; anything else breaks the contract."""
    arr = np.asarray(value) if not isinstance(value, (tuple, list, dict)) else None
    if arr is None or arr.size != 1 or not np.issubdtype(arr.dtype, np.number):
        kind = type(value).__name__ if arr is None else f"an array of shape {arr.shape}"
        raise UserCodeError(f"{what} returned {kind}; expected a single number (the loss of the batch)",
                            where, kind="contract")
    out = float(arr.reshape(-1)[0].real)
    if not np.isfinite(out):
        raise UserCodeError(f"{what} returned {out}: the loss is not finite at the starting parameters",
                            where, kind="nan")
    return out


# ---------------------------------------------------------------- attribute paths

_TOKEN = re.compile(r"""\s*(?:\.?([A-Za-z_]\w*)|\[\s*(-?\d+)\s*\]|\[\s*(['"])(.*?)\3\s*\])""")


def parse_path(text: str) -> list:
    """'layers[0].weights' -> ['layers', 0, 'weights']; "params['W1']" -> ['params', 'W1']."""
    pos, parts = 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot read '{text}' at position {pos + 1}: expected a name, [index] or ['key']")
        name, index, _, key = m.groups()
        parts.append(name if name is not None else int(index) if index is not None else key)
        pos = m.end()
    if not parts:
        raise ValueError("empty path")
    return parts


def resolve(root, parts: list):
    obj = root
    for p in parts:
        obj = getattr(obj, p) if isinstance(p, str) and not isinstance(obj, dict) else obj[p]
    return obj


def assign(root, parts: list, value) -> None:
    parent = resolve(root, parts[:-1]) if len(parts) > 1 else root
    last = parts[-1]
    if isinstance(last, str) and not isinstance(parent, dict):
        setattr(parent, last, value)
    else:
        parent[last] = value


# ---------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Slot:
    """One parameter: layer (from 1), role W or b, and the code's name or path for it."""

    layer: int
    role: str
    code_name: str

    @property
    def key(self) -> str:
        return f"{self.layer}.{self.role}"


def canonical_shape(slot: Slot, widths: tuple[int, ...]) -> tuple[int, ...]:
    n_in, n_out = widths[slot.layer - 1], widths[slot.layer]
    return (n_in, n_out) if slot.role == "W" else (n_out,)


def code_shape(slot: Slot, widths: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """The shape backcheck creates when the code has no init: contract section 1."""
    n_in, n_out = widths[slot.layer - 1], widths[slot.layer]
    if slot.role == "W":
        return (n_in, n_out) if layout == "rows" else (n_out, n_in)
    return (n_out,) if layout == "rows" else (n_out, 1)


@dataclass(frozen=True)
class Orientation:
    """How one of the code's arrays maps to the canonical (in, out) / (out,) / (N, out) form."""

    shape: tuple[int, ...]
    transpose: bool  # the code's 2-D array is the transpose of the canonical one
    per_example: int = 0  # >0: a bias that holds one row per example (batch size)

    def to_canonical(self, arr: np.ndarray) -> np.ndarray:
        arr = np.asarray(arr, dtype=np.float64)
        return arr.T if self.transpose else arr

    def canonical_of(self, arr: np.ndarray, canon: tuple[int, ...]) -> np.ndarray:
        out = self.to_canonical(arr)
        return out if self.per_example else out.reshape(canon)


def orientation(slot: Slot, arr: np.ndarray, widths: tuple[int, ...], layout: str) -> tuple[Orientation, str | None]:
    """Read how the code stores ``slot``; (orientation, note or None). Raises on an impossible shape."""
    canon = canonical_shape(slot, widths)
    shape = tuple(arr.shape)
    columns = layout == "columns"
    if slot.role == "W":
        if len(shape) == 2 and shape == canon[::-1] and (columns or canon[0] != canon[1]):
            note = None if columns else f"{slot.code_name} is stored (out, in) = {shape}; read as its transpose"
            return Orientation(shape, True), note
        if shape == canon:
            note = f"{slot.code_name} is stored (in, out) = {shape} in columns layout" if columns else None
            return Orientation(shape, False), note
    else:
        n_out = canon[0]
        if arr.size == n_out:
            note = None if shape in ((n_out,), (n_out, 1) if columns else (1, n_out)) else \
                f"{slot.code_name} has shape {shape}; read as a vector of {n_out}"
            return Orientation(shape, columns and len(shape) == 2), note
        if len(shape) == 2 and n_out in shape and arr.size % n_out == 0:
            per = arr.size // n_out
            transpose = shape == (n_out, per)
            return Orientation(shape, transpose, per_example=per), None
    want = code_shape(slot, widths, layout)
    raise UserCodeError(
        f"parameter {slot.code_name} (layer {slot.layer} {slot.role}) has shape {shape}; "
        f"expected {want} for network layer {widths[slot.layer - 1]}->{widths[slot.layer]} in {layout} layout",
        None, kind="contract")


# ---------------------------------------------------------------- the bindings


class Binding:
    """The code under test, bound to its parameters and to the check's data.

    ``arrays()`` are the code's live parameter arrays: perturbing one in place and calling
    ``loss()`` evaluates the code's loss there. ``analytic()`` returns the code's gradients
    in the code's own shapes and leaves the parameters as they were.
    """

    def __init__(self, config: Config, module):
        self.config = config
        self.code = config.code
        self.module = module
        self.call = Caller(self.code.file, config.check.seed)
        self.slots = [Slot(k + 1, role, entry[role]) for k, entry in enumerate(self.code.params)
                      for role in ("W", "b")]
        self.notes: list[str] = []
        self.X = self.Y = None
        self.loss_dtype = np.dtype(np.float64)

    # -- set-up
    def attach(self, X: np.ndarray, Y: np.ndarray) -> None:
        self.X, self.Y = X, Y

    def arrays(self) -> dict[Slot, np.ndarray]:
        raise NotImplementedError

    def snapshot(self) -> dict[Slot, np.ndarray]:
        return {s: a.copy() for s, a in self.arrays().items()}

    def restore(self, saved: dict[Slot, np.ndarray]) -> None:
        for s, a in self.arrays().items():
            np.copyto(a, saved[s])

    def swap(self, slot: Slot, arr: np.ndarray) -> np.ndarray:
        """Make ``arr`` the code's live array for ``slot`` (e.g. a complex copy); returns the old one."""
        raise NotImplementedError

    # -- calls
    def loss(self) -> float:
        return as_loss(self.raw_loss(), "the loss", self.code.file.name if self.code else "")

    def raw_loss(self):
        """The loss exactly as the code returned it (complex under a complex-step probe)."""
        raise NotImplementedError

    def analytic(self) -> dict[Slot, np.ndarray]:
        raise NotImplementedError

    def step_gradient(self, lr: float) -> dict[Slot, np.ndarray]:
        """(before - after) / lr of one plain-SGD step; parameters restored afterwards."""
        before = self.snapshot()
        try:
            after = self._step(lr)
            return {s: (before[s].astype(np.float64) - np.asarray(after[s], dtype=np.float64)) / lr
                    for s in self.slots}
        finally:
            self.restore(before)

    def _step(self, lr: float) -> dict[Slot, np.ndarray]:
        raise NotImplementedError

    @property
    def uses_step(self) -> bool:
        return self.code.step is not None

    def loss_value(self, value, what: str) -> float:
        if isinstance(value, (np.floating, np.ndarray)) and np.asarray(value).dtype in (np.float32, np.float16):
            self.loss_dtype = np.dtype(np.float32)
        return as_loss(value, what, self.code.file.name)

    def _array(self, value, slot: Slot, what: str) -> np.ndarray:
        try:
            arr = np.asarray(value)
            ok = np.issubdtype(arr.dtype, np.number)
        except Exception:  # noqa: BLE001 - ragged lists and the like
            ok = False
        if not ok:
            raise UserCodeError(f"{what} gave {type(value).__name__} for {slot.code_name}; expected an array",
                                self.code.file.name, kind="contract")
        if not np.all(np.isfinite(arr)):
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            raise UserCodeError(f"{what} gave {bad} NaN/inf entries in the gradient of {slot.code_name}",
                                self.code.file.name, kind="nan")
        return arr


class FunctionBinding(Binding):
    """Module functions: loss(params, X, Y), gradients(params, X, Y) or step(params, X, Y, lr)."""

    def __init__(self, config: Config, module, default_params):
        super().__init__(config, module)
        code = self.code
        self.fn_loss = lookup(module, code.loss, config, "code.loss")
        self.fn_grad = lookup(module, code.gradients, config, "code.gradients") if code.gradients else None
        self.fn_step = lookup(module, code.step, config, "code.step") if code.step else None
        if code.init:
            init = lookup(module, code.init, config, "code.init")
            params = self.call(init, *self._init_args(init), what=f"{code.init}()")
            if not isinstance(params, dict):
                raise UserCodeError(f"{code.init}() returned {type(params).__name__}; expected a dict of arrays "
                                    "keyed by the names in code.params", code.file.name, kind="contract")
            missing = [s.code_name for s in self.slots if s.code_name not in params]
            if missing:
                raise UserCodeError(f"{code.init}() returned no {', '.join(missing)}; it has "
                                    f"{', '.join(map(str, params)) or 'nothing'}", code.file.name, kind="contract")
            self.params = dict(params)
            for s in self.slots:
                arr = self.params[s.code_name]
                if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.floating):
                    arr = np.array(arr, dtype=np.float64)
                elif not arr.flags.writeable:
                    arr = arr.copy()
                self.params[s.code_name] = arr
        else:
            self.params = {s.code_name: default_params[s] for s in self.slots}

    def _init_args(self, init) -> tuple:
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            return ()
        required = [p for p in sig.parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        takes_any = any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
                        for p in sig.parameters.values())
        return (self.config.check.seed,) if required or (takes_any and len(sig.parameters) == 1) else ()

    def arrays(self) -> dict[Slot, np.ndarray]:
        return {s: self.params[s.code_name] for s in self.slots}

    def swap(self, slot: Slot, arr: np.ndarray) -> np.ndarray:
        old, self.params[slot.code_name] = self.params[slot.code_name], arr
        return old

    def raw_loss(self):
        return self.call(self.fn_loss, dict(self.params), self.X.copy(), self.Y.copy(),
                         what=f"{self.code.loss}(params, X, Y)")

    def loss(self) -> float:
        return self.loss_value(self.raw_loss(), f"{self.code.loss}(params, X, Y)")

    def analytic(self) -> dict[Slot, np.ndarray]:
        what = f"{self.code.gradients}(params, X, Y)"
        copies = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.params.items()}
        grads = self.call(self.fn_grad, copies, self.X.copy(), self.Y.copy(), what=what)
        if not isinstance(grads, dict):
            raise UserCodeError(f"{what} returned {type(grads).__name__}; expected a dict keyed by the "
                                f"parameter names ({', '.join(s.code_name for s in self.slots)})",
                                self.code.file.name, kind="contract")
        missing = [s.code_name for s in self.slots if s.code_name not in grads]
        if missing:
            raise UserCodeError(f"{what} returned no gradient for {', '.join(missing)}; it returned "
                                f"{', '.join(map(str, grads)) or 'an empty dict'}", self.code.file.name,
                                kind="contract")
        extra = sorted(str(k) for k in grads if k not in {s.code_name for s in self.slots})
        if extra and not any(n.startswith("extra gradient keys") for n in self.notes):
            self.notes.append(f"extra gradient keys ignored: {', '.join(extra)}")
        return {s: self._array(grads[s.code_name], s, what) for s in self.slots}

    def _step(self, lr: float) -> dict[Slot, np.ndarray]:
        what = f"{self.code.step}(params, X, Y, lr)"
        work = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.params.items()}
        out = self.call(self.fn_step, work, self.X.copy(), self.Y.copy(), lr, what=what)
        source = out if isinstance(out, dict) else work
        missing = [s.code_name for s in self.slots if s.code_name not in source]
        if missing:
            raise UserCodeError(f"{what} returned parameters without {', '.join(missing)}",
                                self.code.file.name, kind="contract")
        return {s: self._array(source[s.code_name], s, what) for s in self.slots}


class ObjectBinding(Binding):
    """An object from model:, parameters and gradients at attribute paths."""

    def __init__(self, config: Config, module):
        super().__init__(config, module)
        code = self.code
        factory = lookup(module, code.model, config, "code.model")
        self.model = self.call(factory, what=f"{code.model}()")
        self.paths = {}
        for s in self.slots:
            self.paths[s] = self._parse(s.code_name, f"code.params[{s.layer - 1}].{s.role}")
        self.grad_paths = {}
        for s in self.slots if code.grads else ():
            text = code.grads[s.layer - 1][s.role]
            self.grad_paths[s] = self._parse(text, f"code.grads[{s.layer - 1}].{s.role}")
        method = code.step or code.backward
        for name, key in ((code.loss, "code.loss"), (method, "code.step" if code.step else "code.backward")):
            if not callable(getattr(self.model, name, None)):
                raise ConfigError(f"the object made by {code.model}() has no method '{name}'", config.where(key))
        self.live = {}
        for s in self.slots:
            arr = self._resolve(s, self.paths[s], f"{code.model}()")
            if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.floating):
                arr = np.array(arr, dtype=np.float64)
                assign(self.model, self.paths[s], arr)
            self.live[s] = arr

    def _parse(self, text: str, key: str) -> list:
        try:
            return parse_path(text)
        except ValueError as exc:
            raise ConfigError(f"{exc}", self.config.where(key)) from None

    def _resolve(self, slot: Slot, parts: list, after: str, text: str | None = None):
        try:
            return resolve(self.model, parts)
        except (AttributeError, KeyError, IndexError, TypeError) as exc:
            raise UserCodeError(f"after {after}, the path {text or slot.code_name} does not resolve "
                                f"({_describe(exc)})", self.code.file.name, kind="contract") from None

    def arrays(self) -> dict[Slot, np.ndarray]:
        return dict(self.live)

    def _rebind(self) -> None:
        """Code may rebind its arrays: put backcheck's live arrays back at their paths."""
        for s, arr in self.live.items():
            try:
                current = resolve(self.model, self.paths[s])
            except (AttributeError, KeyError, IndexError, TypeError):
                current = None
            if current is not arr:
                assign(self.model, self.paths[s], arr)

    def swap(self, slot: Slot, arr: np.ndarray) -> np.ndarray:
        old, self.live[slot] = self.live[slot], arr
        assign(self.model, self.paths[slot], arr)
        return old

    def raw_loss(self):
        what = f"{self.code.loss}(X, Y)"
        return self.call(getattr(self.model, self.code.loss), self.X.copy(), self.Y.copy(), what=what)

    def loss(self) -> float:
        return self.loss_value(self.raw_loss(), f"{self.code.loss}(X, Y)")

    def analytic(self) -> dict[Slot, np.ndarray]:
        before = self.snapshot()
        what = f"{self.code.backward}(X, Y)"
        try:
            self.call(getattr(self.model, self.code.loss), self.X.copy(), self.Y.copy(),
                      what=f"{self.code.loss}(X, Y)")
            self.call(getattr(self.model, self.code.backward), self.X.copy(), self.Y.copy(), what=what)
            out = {}
            for s in self.slots:
                text = self.code.grads[s.layer - 1][s.role]
                value = self._resolve(s, self.grad_paths[s], what, text)
                out[s] = self._array(np.array(value, copy=True), s, what)
            return out
        finally:
            self._rebind()
            self.restore(before)

    def _step(self, lr: float) -> dict[Slot, np.ndarray]:
        what = f"{self.code.step}(X, Y, lr)"
        self.call(getattr(self.model, self.code.step), self.X.copy(), self.Y.copy(), lr, what=what)
        after = {s: self._array(np.array(self._resolve(s, self.paths[s], what), copy=True), s, what)
                 for s in self.slots}
        self._rebind()
        return after


def bind(config: Config, module, default_params: dict[Slot, np.ndarray] | None) -> Binding:
    if config.code.model:
        return ObjectBinding(config, module)
    return FunctionBinding(config, module, default_params)


class ReferenceBinding(Binding):
    """backcheck's own implementation of the config's network, bound like user code.

    ``variants`` plant known mistakes in its backward pass (``verify --inject``)."""

    def __init__(self, config: Config, params, variants=()):
        from backcheck import reference

        self.config = config
        self.code = None
        self.reference = reference
        self.net = config.network
        self.params = [(W.copy(), b.copy()) for W, b in params]
        self.variants = tuple(variants)
        self.slots = [Slot(k + 1, role, f"{role}{k + 1}") for k in range(len(self.params)) for role in ("W", "b")]
        self.notes = []
        self.X = self.Y = None
        self.loss_dtype = np.dtype(np.float64)

    def arrays(self) -> dict[Slot, np.ndarray]:
        return {s: self.params[s.layer - 1][0 if s.role == "W" else 1] for s in self.slots}

    def swap(self, slot: Slot, arr: np.ndarray) -> np.ndarray:
        W, b = self.params[slot.layer - 1]
        self.params[slot.layer - 1] = (arr, b) if slot.role == "W" else (W, arr)
        return W if slot.role == "W" else b

    def raw_loss(self):
        return self.reference.loss(self.net, self.params, self.X, self.Y)

    def loss(self) -> float:
        return float(np.real(self.raw_loss()))

    def analytic(self) -> dict[Slot, np.ndarray]:
        grads = self.reference.backward(self.net, self.params, self.X, self.Y, self.variants)
        return {s: np.asarray(grads[s.layer - 1][0 if s.role == "W" else 1]) for s in self.slots}

    @property
    def uses_step(self) -> bool:
        return False
