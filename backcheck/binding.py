"""Calling the user's code: import it, find its parameters, get its loss and its gradients.

Every call into user code goes through ``Caller``, which turns an exception into a
``UserCodeError`` naming the user's file and line. This module runs in the child process only.
"""

from __future__ import annotations

import ast
import importlib
import math
import importlib.util
import inspect
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backcheck.errors import ConfigError, UserCodeError
from backcheck.spec import WILDCARD, Call, Config, parse_expr, parse_path

# ---------------------------------------------------------------- importing and calling


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

    def __call__(self, fn, *args, what, **kwargs):
        """``what`` names the call in messages: a string, or a function making it (only on errors)."""
        np.random.seed(self.seed)
        try:
            return fn(*args, **kwargs)
        except (KeyboardInterrupt, SystemExit) as exc:
            what = what() if callable(what) else what
            if isinstance(exc, SystemExit):
                raise UserCodeError(f"{what} called sys.exit({exc.code})", self.path.name) from None
            raise
        except Exception as exc:  # noqa: BLE001
            what = what() if callable(what) else what
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


def as_loss(value, what, where: str) -> float:
    """A float from a float, a 0-d array or a size-1 array; anything else breaks the contract.
    ``what`` names the call: a string or a function making it (messages only)."""
    if type(value) in (float, np.float64) and math.isfinite(value):
        return float(value)  # the common case, on the hot path of every probe
    what = what() if callable(what) else what
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


# ---------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Slot:
    """One parameter: layer (from 1), role W or b, and the code's name or path for it."""

    layer: int
    role: str
    code_name: str
    orient: str | None = None  # declared W orientation: in_out or out_in; None: read from the shape

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
        out_in = slot.orient == "out_in" or (slot.orient is None and layout == "columns")
        return (n_out, n_in) if out_in else (n_in, n_out)
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
    if slot.role == "W" and slot.orient is not None:
        want = canon if slot.orient == "in_out" else canon[::-1]
        if shape == want:
            return Orientation(shape, slot.orient == "out_in"), None
    elif slot.role == "W":
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
                      for role in ("W", "b") if role in entry]
        self.notes: list[str] = []
        self.warnings: list = []  # (id, message)
        self.X = self.Y = None
        self.loss_dtype = np.dtype(np.float64)

    # -- set-up
    def attach(self, X: np.ndarray, Y: np.ndarray, canonical=None) -> None:
        """The data in the code's layout; ``canonical`` is (X, Y) in backcheck's (for loss: spec)."""
        self.X, self.Y = X, Y
        self.canonical = canonical

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
        """(before - after) / lr of one plain-SGD step of the code; parameters restored afterwards."""
        raise NotImplementedError

    uses_step = False  # True: gradients are read from step_gradient, not analytic

    def loss_value(self, value, what) -> float:
        dtype = getattr(value, "dtype", None)
        if dtype is not None and dtype.kind == "f" and dtype.itemsize < 8:
            self.loss_dtype = np.dtype(np.float32)
        return as_loss(value, what, getattr(self, "file_name", None) or self.code.file.name)

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


# ---------------------------------------------------------------- expressions


DTYPES = {"float64": np.float64, "float32": np.float32}


class Scope(dict):
    """The values an EXPR may name: $X, $params, $model, a call's `returns` names, ..."""

    def child(this, /, **values) -> "Scope":  # noqa: N805 - values may include 'self' (a chain layer)
        out = Scope(this)
        out.update(values)
        return out


def evaluate(expr, scope: Scope, where: str):
    """The value of an EXPR: a literal, or a $-path into ``scope``; lists and mappings element-wise."""
    if type(expr) is str and expr[:1] == "$" and expr[:2] != "$$":
        root, parts = parse_expr(expr)  # cached: this runs for every argument of every call
        if root in scope:
            if not parts:
                return scope[root]
            try:
                return resolve(scope[root], parts)
            except (AttributeError, KeyError, IndexError, TypeError) as exc:
                raise UserCodeError(f"{expr} does not resolve ({_describe(exc)})", where, kind="contract") from None
    if isinstance(expr, list):
        return [evaluate(e, scope, where) for e in expr]
    if isinstance(expr, dict):
        return {k: evaluate(v, scope, where) for k, v in expr.items()}
    if not isinstance(expr, str) or not expr.startswith("$"):
        return expr
    if expr.startswith("$$"):
        return expr[1:]
    root, parts = parse_expr(expr)
    if root not in scope:
        raise UserCodeError(f"{expr}: ${root} has no value at this point (is it named by a later call's "
                            "returns:?)", where, kind="contract")
    try:
        return resolve(scope[root], parts)
    except (AttributeError, KeyError, IndexError, TypeError) as exc:
        raise UserCodeError(f"{expr} does not resolve ({_describe(exc)})", where, kind="contract") from None


def resolve(root, parts: list):
    obj = root
    for p in parts:
        obj = getattr(obj, p) if isinstance(p, str) and not isinstance(obj, dict) else obj[p]
    return obj


def assign(root, parts: list, value) -> None:
    """Set the value at a path; a [*] step sets it in every element."""
    if WILDCARD in parts:
        i = parts.index(WILDCARD)
        for item in resolve(root, parts[:i]):
            assign(item, parts[i + 1:], value)
        return
    parent = resolve(root, parts[:-1]) if len(parts) > 1 else root
    last = parts[-1]
    if isinstance(last, str) and not isinstance(parent, dict):
        setattr(parent, last, value)
    else:
        parent[last] = value


def _text(expr) -> str:
    if isinstance(expr, str):
        return expr[1:] if expr.startswith("$") else repr(expr)
    return repr(expr)


# ---------------------------------------------------------------- loading the code


@dataclass
class Loaded:
    module: object
    warnings: list  # (id, message)
    notes: list


# Calls that may stay in a module-level assignment under `import: definitions`
_SAFE_CALLS = {"list", "dict", "tuple", "set", "range", "float", "int", "len", "zip", "enumerate", "str"}


def load_code(code) -> Loaded:
    """Import the user's file (as a package module when it sits in a package) and note numpy
    functions its imports replaced."""
    before = _numpy_functions()
    path = code.file
    name, root = _module_name(path, code.root)
    notes: list = []
    if root is None:
        module = _exec_module(path, "backcheck_user_" + re.sub(r"\W", "_", path.stem), str(path.parent),
                              code.import_mode, notes)
    else:
        top = name.split(".")[0]
        for key in [k for k in sys.modules if k == top or k.startswith(top + ".")]:
            del sys.modules[key]  # another check's package of the same name
        if str(root) in sys.path:
            sys.path.remove(str(root))
        sys.path.insert(0, str(root))
        if "." in name:
            try:
                importlib.import_module(name.rsplit(".", 1)[0])
            except Exception as exc:  # noqa: BLE001
                raise UserCodeError(f"importing the package {name.rsplit('.', 1)[0]} raised {_describe(exc)}",
                                    _user_where(exc, path)) from None
        module = _exec_module(path, name, None, code.import_mode, notes)
    changed = [n for n, f in _numpy_functions().items() if before.get(n) is not f]
    warnings = []
    if changed:
        warnings.append(("numpy/patched", f"importing {path.name} replaced numpy.{', numpy.'.join(changed[:5])}"
                         f"{' and more' if len(changed) > 5 else ''} (a library's init()?): the check runs "
                         "with the replaced functions, as the code does"))
    return Loaded(module, warnings, notes)


def _numpy_functions() -> dict:
    out = {n: getattr(np, n) for n in dir(np) if not n.startswith("_")}
    out.update({f"random.{n}": getattr(np.random, n) for n in dir(np.random) if not n.startswith("_")})
    return {n: f for n, f in out.items() if callable(f)}


def _module_name(path: Path, root: Path | None) -> tuple[str, Path | None]:
    """(dotted name, folder for sys.path): the file's package path, or (stem, None) outside packages."""
    if root is None:
        top = path.parent
        if not (top / "__init__.py").is_file():
            return path.stem, None
        while (top.parent / "__init__.py").is_file():
            top = top.parent
        root = top.parent
    rel = path.relative_to(root).with_suffix("")
    return ".".join(rel.parts), root


def load_module(path: Path):
    """Import a file outside any package (its folder first on sys.path for its own imports)."""
    return _exec_module(path, "backcheck_user_" + re.sub(r"\W", "_", path.stem), str(path.parent), "all", [])


def _exec_module(path: Path, name: str, folder: str | None, mode: str, notes: list):
    if folder is not None and folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        if mode == "definitions":
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            tree.body, skipped = _definitions(tree.body)
            if skipped:
                notes.append(f"import: definitions ran {path.name} without the statements at line(s) "
                             f"{', '.join(map(str, skipped[:8]))}{' ...' if len(skipped) > 8 else ''}")
            exec(compile(tree, str(path), "exec"), module.__dict__)  # noqa: S102 - the code under test
        else:
            spec.loader.exec_module(module)
    except SyntaxError as exc:
        where = f"{Path(exc.filename or path).name}:{exc.lineno}"
        raise UserCodeError(f"the file does not compile: SyntaxError: {exc.msg}", where) from None
    except BaseException as exc:  # noqa: BLE001 - whatever the import raised is the user's error
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UserCodeError(f"importing the file raised {_describe(exc)}", _user_where(exc, path)) from None
    return module


def _definitions(body: list) -> tuple[list, list]:
    """The statements of a module that only define things: imports, def, class, and assignments
    whose calls construct the module's own classes or numpy values. (kept, skipped line numbers)"""
    classes = {n.name for n in body if isinstance(n, ast.ClassDef)}
    keep, skipped = [], []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            keep.append(node)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            keep.append(node)  # the docstring
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and \
                all(_safe_call(c, classes) for c in ast.walk(node.value) if isinstance(c, ast.Call)):
            keep.append(node)
        else:
            skipped.append(node.lineno)
    return keep, skipped


def _safe_call(call: ast.Call, classes: set) -> bool:
    f = call.func
    if isinstance(f, ast.Name):
        return f.id in classes or f.id in _SAFE_CALLS
    while isinstance(f, ast.Attribute):
        f = f.value
    return isinstance(f, ast.Name) and f.id in ("np", "numpy")


# ---------------------------------------------------------------- the binding of user code


class CodeBinding(Binding):
    """The user's code as the config's code: section binds it: functions, an object, or a chain
    of layer objects; called per batch or per example."""

    def __init__(self, config: Config, loaded: Loaded, default_params: dict | None):
        super().__init__(config, loaded.module)
        code = self.code
        self.file_name = code.file.name  # for messages; read on every call
        self.notes += loaded.notes
        self.warnings = list(loaded.warnings)
        self.slots = [Slot(k + 1, role, entry[role], entry.get("orient") if role == "W" else None)
                      for k, entry in enumerate(code.params) for role in ("W", "b") if role in entry]
        net = config.network
        hidden = list(net.widths[1:-1])
        self.scope = Scope(module=self.module, sizes=list(net.widths), n_input=net.input,
                           n_output=net.widths[-1], hidden=hidden, seed=config.check.seed, **DTYPES)
        self.chain = code.chain
        self.owner = None  # the object whose methods bare call names are (object style)
        if code.model is not None:
            self.model = self._invoke(code.model, (), self.scope, module_level=True)
            self.scope["model"] = self.owner = self.model
        if self.chain is not None:
            self._build_chain()
        if code.init is not None:
            init_args = () if code.init.args is not None else self._init_args(code.init)
            params = self._invoke(code.init, init_args, self.scope, module_level=True)
            self.scope["params"] = params
        elif code.model is None and self.chain is None:
            self.scope["params"] = self._created_params(default_params)
        self.live = {}
        for s in self.slots:
            arr = self._resolve_param(s, "binding")
            if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.floating) \
                    or not arr.flags.writeable:
                arr = np.array(arr, dtype=arr.dtype if isinstance(arr, np.ndarray) and
                               np.issubdtype(arr.dtype, np.floating) else np.float64)
                self._assign(s, arr)
            self.live[s] = arr
        self.fixed_lr = self._fixed_lr()
        self.copy_inputs = False  # becomes True once the code writes into X or Y
        self.canonical = None  # (X, Y) in backcheck's layout, for loss: spec
        self.orient = None
        if code.spec_loss:
            self.notes.append("loss: spec: the numeric gradient runs through network: at the code's parameters "
                              "(the code has no loss function of its own)")
        if code.per_example != "batch":
            self.notes.append(f"per_example: the code is called once per example"
                              f"{' (1-D arrays)' if code.per_example == 'vector' else ''}; its gradients are "
                              "averaged over the batch")
        if self.fixed_lr:
            self.notes.append(f"the step's learning rate is the code's own {self.fixed_lr:g}: gradients are read "
                              "at that rate only")

    # -- set-up helpers
    def _init_args(self, call) -> tuple:
        fn = self._callable(call, module_level=True, scope=self.scope)
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return ()
        required = [p for p in sig.parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        takes_any = any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
                        for p in sig.parameters.values())
        return ("$seed",) if required or (takes_any and len(sig.parameters) == 1) else ()

    def _created_params(self, default_params) -> dict:
        """Parameters backcheck creates for function-style code without init: a dict by name."""
        out = {}
        for s in self.slots:
            root, parts = self._root_and_parts(s.code_name)
            if root not in (None, "params") or len(parts) != 1 or not isinstance(parts[0], str):
                raise ConfigError(f"without init:, backcheck creates the parameters as a dict and each entry of "
                                  f"code.params must be a plain name; got {s.code_name!r}",
                                  self.config.where("code.params"))
            out[parts[0]] = default_params[s]
        return out

    def _build_chain(self) -> None:
        layers = self.chain.layers
        if isinstance(layers, tuple):
            objects = [self._invoke(item, (), self.scope, module_level=True) if isinstance(item, Call)
                       else evaluate(item, self.scope, self.code.file.name) for item in layers]
        elif isinstance(layers, Call):
            objects = self._invoke(layers, (), self.scope, module_level=True)
        else:
            objects = evaluate(layers, self.scope, self.code.file.name)
        try:
            objects = list(objects)
        except TypeError:
            raise UserCodeError(f"code.chain.layers gave {type(objects).__name__}; expected a list of layer "
                                "objects", self.code.file.name, kind="contract") from None
        self.scope["layers"] = objects
        head = self.chain.head
        if head is not None:
            self.scope["head"] = self._invoke(head, (), self.scope, module_level=True) \
                if isinstance(head, Call) else evaluate(head, self.scope, self.code.file.name)

    def _root_and_parts(self, text: str):
        try:
            return parse_expr(text) if text.startswith("$") else (None, parse_path(text))
        except ValueError as exc:  # already checked when the config was read
            raise ConfigError(str(exc), self.config.where("code.params")) from None

    def _default_root(self, what: str, scope: Scope):
        if self.chain is not None:
            return scope["layers"]
        if what == "grad" and self.code.model is None and "__gradients__" in scope:
            return scope["__gradients__"]
        if what == "param" and self.code.init is not None:
            return scope["params"]
        return scope["model"] if self.code.model is not None else scope["params"]

    def _locate(self, text: str, what: str, scope: Scope):
        root, parts = self._root_and_parts(text)
        base = self._default_root(what, scope) if root is None else scope[root] if root in scope else None
        if root is not None and root not in scope:
            raise UserCodeError(f"{text}: ${root} has no value here", self.code.file.name, kind="contract")
        return base, parts

    def _resolve_param(self, s: Slot, after: str):
        base, parts = self._locate(s.code_name, "param", self.scope)
        try:
            return resolve(base, parts)
        except (AttributeError, KeyError, IndexError, TypeError) as exc:
            raise UserCodeError(f"after {after}, the parameter path {s.code_name} does not resolve "
                                f"({_describe(exc)})", self.code.file.name, kind="contract") from None

    def _assign(self, s: Slot, arr) -> None:
        base, parts = self._locate(s.code_name, "param", self.scope)
        if not parts:
            raise ConfigError(f"{s.code_name} names a whole value, not a place backcheck can put an array",
                              self.config.where("code.params"))
        assign(base, parts, arr)

    def _fixed_lr(self):
        call = self.chain.backward if self.chain is not None else self.code.step
        return call.lr if call is not None and isinstance(call.lr, float) else None

    # -- calling
    def _callable(self, call: Call, module_level: bool, scope: Scope, owner=None):
        if call.name.startswith("$"):
            fn = evaluate(call.name, scope, self.code.file.name)
        else:
            target = owner if owner is not None else None if module_level else self.owner
            if target is None:
                fn = lookup(self.module, call.name, self.config, call.key)
            elif not callable(getattr(target, call.name, None)):
                raise ConfigError(f"the {type(target).__name__} object has no method '{call.name}'",
                                  self.config.where(call.key))
            else:
                fn = getattr(target, call.name)
        if not callable(fn):
            raise ConfigError(f"{call.name} is a {type(fn).__name__}, not something to call",
                              self.config.where(call.key))
        return fn

    def _invoke(self, call: Call, defaults: tuple, scope: Scope, *, module_level=False, owner=None):
        """Call it with its arguments evaluated in ``scope``; bind its `returns` names into scope."""
        where = self.file_name
        fn = self._callable(call, module_level, scope, owner)
        arg_exprs = call.args if call.args is not None else defaults
        args = [evaluate(a, scope, where) for a in arg_exprs]
        kwargs = {k: evaluate(v, scope, where) for k, v in call.kwargs} if call.kwargs else {}
        if isinstance(call.lr, tuple):
            for text in call.lr:
                base, parts = self._locate(text, "lr", scope)
                try:
                    assign(base, parts, scope["lr"])
                except (AttributeError, KeyError, IndexError, TypeError) as exc:
                    raise UserCodeError(f"cannot write the learning rate at {text} ({_describe(exc)})",
                                        where, kind="contract") from None
        def what() -> str:
            shown = ", ".join([_text(a) for a in arg_exprs] + [f"{k}={_text(v)}" for k, v in call.kwargs])
            return f"{call.name}({shown})"

        value = self.call(fn, *args, what=what, **kwargs)
        if call.result is not None:
            value = evaluate(call.result, scope, where)
        if call.returns:
            if call.returns[0].startswith("*"):
                scope[call.returns[0][1:]] = value
            else:
                try:
                    items = list(value)
                except TypeError:
                    items = None
                if items is None or len(items) != len(call.returns):
                    got = f"{len(items)} values" if items is not None else type(value).__name__
                    raise UserCodeError(f"{what()} returned {got}; {call.key}.returns names "
                                        f"{len(call.returns)}", where, kind="contract")
                for n, v in zip(call.returns, items):
                    if n != "_":
                        scope[n] = v
        return value

    # -- the data, per batch or per example
    def _fresh(self):
        """The batch for one call. First read-only views of the data (no copy on the hot path); once
        the code turns out to change its inputs in place, buffers refilled from the data before every
        call, so no call can change the data of the next."""
        if not self.copy_inputs:
            if getattr(self, "_readonly", None) is None or self._readonly[0].base is not self.X:
                views = (self.X.view(), self.Y.view())
                for v in views:
                    v.flags.writeable = False
                self._readonly = views
            return self._readonly
        if getattr(self, "_buffers", None) is None or self._buffers[0].shape != self.X.shape:
            self._buffers = (self.X.copy(), self.Y.copy())
        X, Y = self._buffers
        np.copyto(X, self.X)
        np.copyto(Y, self.Y)
        return X, Y

    def _examples(self):
        """(x, y) per call: the whole batch, or one example at a time."""
        mode, X, Y = self.code.per_example, self.X, self.Y
        if mode == "batch":
            yield self._fresh()
            return
        columns = self.code.layout == "columns"
        n = X.shape[1] if columns else X.shape[0]
        for i in range(n):
            one = slice(i, i + 1) if mode == "example" else i
            x = X[:, one] if columns else X[one]
            if Y.ndim == 1:
                y = Y[one]
            else:
                y = Y[:, one] if columns else Y[one]
            yield x.copy(), (y.copy() if isinstance(y, np.ndarray) else y)

    def _scope(self, x, y, **more) -> Scope:
        X, Y = (x, y) if self.code.per_example == "batch" else self._fresh()
        return self.scope.child(X=X, Y=Y, x=x, y=y, batch=self.X.shape[-1 if self.code.layout == "columns" else 0],
                                **more)

    def _defaults(self, key: str) -> tuple:
        """Contract v1's arguments of each call; one example ($x, $y) per call under per_example."""
        cache = self.__dict__.setdefault("_default_args", {})
        if key not in cache:
            cache[key] = self._default_args_of(key)
        return cache[key]

    def _default_args_of(self, key: str) -> tuple:
        obj = self.code.model is not None
        x, y = ("$X", "$Y") if self.code.per_example == "batch" else ("$x", "$y")
        return {"loss": (x, y) if obj else ("$params", x, y),
                "gradients": ("$params", x, y),
                "backward": (x, y),
                "step": (x, y, "$lr") if obj else ("$params", x, y, "$lr"),
                "forward": (x,) if obj else (x, "$params")}[key]

    # -- the loss
    def raw_loss(self):
        if self.code.spec_loss:
            return self._spec_loss()
        return self._writable_retry(self._raw_loss)

    def _raw_loss(self):
        values = [self._loss_once(x, y) for x, y in self._examples()]
        return values[0] if len(values) == 1 else sum(values) / len(values)

    def _writable_retry(self, run):
        """``run()``; if the code wrote into its read-only inputs, again with copies from then on."""
        try:
            return run()
        except UserCodeError as exc:
            if self.copy_inputs or "read-only" not in exc.message:
                raise
            self.copy_inputs = True
            return run()

    def loss(self) -> float:
        return self.loss_value(self.raw_loss(), self._loss_what)

    def _loss_what(self) -> str:
        return f"{self.code.chain.loss if self.chain else self.code.loss or self._producer()}()"

    def _loss_once(self, x, y):
        scope = self._scope(x, y)
        if self.chain is not None:
            scope["output"] = self._chain_forward(scope)
            value = self._invoke(self.chain.loss, (), scope)
            return scope["loss"] if "loss" in self.chain.loss.names else value
        if self.code.forward is not None:
            self._invoke(self.code.forward, self._defaults("forward"), scope)
        call = self.code.loss
        if call is None:  # the loss comes from the gradient call's returns
            producer = self._producer()
            self._invoke(producer, self._defaults(self._producer_key()), scope)
            return scope["loss"]
        value = self._invoke(call, self._defaults("loss"), scope)
        return scope["loss"] if "loss" in call.names else value

    def _spec_loss(self):
        from backcheck import reference

        if self.orient is None:
            self.orient = {s: orientation(s, a, self.config.network.widths, self.code.layout)[0]
                           for s, a in self.live.items()}
        net = self.config.network
        params = []
        for k, layer in enumerate(net.layers, start=1):
            W = b = None
            for s, a in self.live.items():
                if s.layer == k:
                    value = self.orient[s].canonical_of(a, canonical_shape(s, net.widths))
                    W, b = (value, b) if s.role == "W" else (W, value)
            params.append((W, b if b is not None else np.zeros(layer.units)))
        X, Y = self.canonical
        return reference.loss(net, params, X, Y)

    # -- the gradients
    def _producer(self):
        return self.code.gradients or self.code.backward or self.code.step or self.code.loss

    def _producer_key(self) -> str:
        code = self.code
        return "gradients" if code.gradients else "backward" if code.backward else \
            "step" if code.step else "loss"

    def analytic(self) -> dict[Slot, np.ndarray]:
        return self._writable_retry(self._analytic)

    def _analytic(self) -> dict[Slot, np.ndarray]:
        before = self.snapshot()
        total, n = None, 0
        try:
            for x, y in self._examples():
                g = self._grads_once(x, y)
                self.restore(before)
                total = g if total is None else {s: total[s] + g[s] for s in g}
                n += 1
        finally:
            self._rebind()
            self.restore(before)
        return self._average(total, n)

    def _average(self, total: dict, n: int) -> dict:
        if self.code.gradient_of == "sum":
            n = self.X.shape[-1 if self.code.layout == "columns" else 0]
            if not any(x.startswith("gradient_of: sum") for x in self.notes):
                self.notes.append(f"gradient_of: sum: the code's gradients were divided by the batch size {n} "
                                  "before the comparison (they are of the summed loss on purpose)")
        return {s: g / n for s, g in total.items()} if n > 1 else total

    def _grads_once(self, x, y) -> dict:
        scope = self._scope(x, y)
        if self.chain is not None:
            self._chain_backward(scope)
            return self._read_grads(scope, f"{self.chain.backward}()")
        code = self.code
        if code.forward is not None:
            self._invoke(code.forward, self._defaults("forward"), scope)
        producer_key = self._producer_key()
        if code.model is not None and code.loss is not None and producer_key != "loss":
            self._invoke(code.loss, self._defaults("loss"), scope)  # object code caches its forward pass
        value = self._invoke(self._producer(), self._defaults(producer_key), scope)
        scope["__gradients__"] = value
        return self._read_grads(scope, f"{self._producer()}()")

    def _read_grads(self, scope: Scope, what: str) -> dict:
        table = self.code.grads
        if not table:  # contract v1: gradients() returns a dict keyed by the parameter names
            return self._grads_by_name(scope["__gradients__"], what)
        out = {}
        for s in self.slots:
            text = table[s.layer - 1][s.role]
            base, parts = self._locate(text, "grad", scope)
            try:
                value = resolve(base, parts)
            except (AttributeError, KeyError, IndexError, TypeError) as exc:
                raise UserCodeError(f"after {what}, the gradient path {text} does not resolve ({_describe(exc)})",
                                    self.code.file.name, kind="contract") from None
            out[s] = self._array(np.array(value, copy=True), s, what)
        return out

    def _grads_by_name(self, grads, what: str) -> dict:
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
        return {s: self._array(np.array(grads[s.code_name], copy=True), s, what) for s in self.slots}

    # -- steps
    @property
    def uses_step(self) -> bool:
        return self.code.uses_step

    @property
    def step_name(self) -> str:
        """The call a step's gradients are read from, for messages."""
        return f"{self.chain.backward}" if self.chain is not None else f"{self.code.step}"

    def step_gradient(self, lr: float) -> dict[Slot, np.ndarray]:
        return self._writable_retry(lambda: self._step_gradient(lr))

    def _step_gradient(self, lr: float) -> dict[Slot, np.ndarray]:
        lr = self.fixed_lr or lr
        before = self.snapshot()
        total, n = None, 0
        try:
            for x, y in self._examples():
                after = self._step_once(x, y, lr)
                g = {s: (before[s].astype(np.float64) - after[s]) / lr for s in self.slots}
                self._rebind()
                self.restore(before)
                total = g if total is None else {s: total[s] + g[s] for s in g}
                n += 1
        finally:
            self._rebind()
            self.restore(before)
        out = self._average(total, n)
        self._not_plain_sgd(out)
        return out

    def _step_once(self, x, y, lr) -> dict:
        scope = self._scope(x, y, lr=lr)
        if self.chain is not None:
            self._chain_backward(scope)
            what = f"{self.chain.backward}()"
        else:
            if self.code.forward is not None:
                self._invoke(self.code.forward, self._defaults("forward"), scope)
            value = self._invoke(self.code.step, self._defaults("step"), scope)
            what = f"{self.code.step}()"
            if self.code.model is None and isinstance(value, dict):
                scope = scope.child(params=value)  # a step that returns new parameters
        out = {}
        for s in self.slots:
            base, parts = self._locate(s.code_name, "param", scope)
            try:
                value = resolve(base, parts)
            except (AttributeError, KeyError, IndexError, TypeError) as exc:
                raise UserCodeError(f"{what} left no parameter at {s.code_name} ({_describe(exc)})",
                                    self.code.file.name, kind="contract") from None
            out[s] = self._array(np.array(value, dtype=np.float64, copy=True), s, what)
        return out

    def _not_plain_sgd(self, grads: dict) -> None:
        """Adam, RMSprop and sign-SGD move every entry by the same amount on their first step."""
        for s, g in grads.items():
            mag = np.abs(g).reshape(-1)
            if mag.size >= 8 and mag.max() > 0 and np.ptp(mag) <= 1e-3 * mag.max():
                raise UserCodeError(
                    f"{self._producer() if not self.chain else self.chain.backward}() is not plain SGD: every "
                    f"entry of {s.code_name} moved by the same amount ({mag.max():.3g} x lr), as Adam, RMSprop "
                    "or sign-SGD do; backcheck reads gradients from plain SGD steps only (w -= lr * grad). "
                    "Bind the gradients instead, or switch the optimizer to plain SGD for the check",
                    self.code.file.name, kind="contract")

    # -- the chain
    def _chain_forward(self, scope: Scope):
        a = scope["x"]
        for j, layer in enumerate(scope["layers"]):
            a = self._invoke(self.chain.forward, ("$input",), scope.child(self=layer, input=a), owner=layer)
            if a is None:
                raise UserCodeError(f"{type(layer).__name__}.{self.chain.forward}() (layer object {j}) returned "
                                    "None: if it stores its output, say where with result: $self.output",
                                    self.code.file.name, kind="contract")
        return a

    def _chain_backward(self, scope: Scope) -> None:
        scope["output"] = self._chain_forward(scope)
        if self.chain.loss is not None:
            self._invoke(self.chain.loss, (), scope)
        g = self._invoke(self.chain.loss_grad, (), scope)
        for j, layer in reversed(list(enumerate(scope["layers"]))):
            g = self._invoke(self.chain.backward, ("$grad",), scope.child(self=layer, grad=g), owner=layer)
            if g is None and j > 0:
                raise UserCodeError(f"{type(layer).__name__}.{self.chain.backward}() (layer object {j}) returned "
                                    "None: if it stores the gradient for its input, say where with result: "
                                    "$self.dinputs", self.code.file.name, kind="contract")

    # -- the live arrays
    def arrays(self) -> dict[Slot, np.ndarray]:
        return dict(self.live)

    def swap(self, slot: Slot, arr: np.ndarray) -> np.ndarray:
        old, self.live[slot] = self.live[slot], arr
        self._assign(slot, arr)
        return old

    def _rebind(self) -> None:
        """Code may rebind its arrays: put backcheck's live arrays back at their paths."""
        for s, arr in self.live.items():
            try:
                current = self._resolve_param(s, "a call")
            except UserCodeError:
                current = None
            if current is not arr:
                self._assign(s, arr)


def bind(config: Config, loaded: Loaded, default_params: dict[Slot, np.ndarray] | None) -> Binding:
    return CodeBinding(config, loaded, default_params)


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
        self.slots = [Slot(k + 1, role, f"{role}{k + 1}") for k, layer in enumerate(self.net.layers)
                      for role in ("W", "b") if role == "W" or layer.bias]
        self.notes = []
        self.warnings = []
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

