"""Calling the user's code: every call goes through ``Caller`` (numpy reseeded, an exception
turned into a ``UserCodeError`` naming the user's file and line); the EXPRs of the YAML
(``$X``, ``$grads['dW1']``) evaluated in a ``Scope``."""

from __future__ import annotations

import errno
import math
import os
import traceback
from pathlib import Path

import numpy as np

from backcheck.errors import ConfigError, UserCodeError
from backcheck.sandbox import CONFINED
from backcheck.spec import WILDCARD, Config, parse_expr


def describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.EROFS and os.environ.get(CONFINED):
        text += " (while it is checked, the code may write only in a copy of its own folder and in $TMPDIR)"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def user_where(exc: BaseException, path: Path) -> str:
    """file:line of the deepest traceback frame in the user's folder (a notebook's: its cell and line)."""
    from backcheck.binding.program import program_of

    folder = path.parent.resolve()
    where = path.name
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>: would resolve into the cwd
            continue
        try:
            f = Path(frame.filename).resolve()
        except OSError:
            continue
        if folder in f.parents:
            program = program_of(frame.filename)
            where = program.where(frame.lineno) if program is not None and program.cells is not None else \
                f"{f.relative_to(folder)}:{frame.lineno}"
    return where


class Caller:
    """Calls user functions with numpy's global random state reseeded (dropout masks repeat)."""

    interrupts_are_code = False  # True in the sandboxed process, where no terminal can send one

    def __init__(self, path: Path, seed: int):
        self.path = path
        self.seed = seed

    def __call__(self, fn, *args, what, **kwargs):
        """``what`` names the call in messages: a string, or a function making it (only on errors)."""
        np.random.seed(self.seed)
        try:
            return fn(*args, **kwargs)
        except SystemExit as exc:
            what = what() if callable(what) else what
            raise UserCodeError(f"{what} called sys.exit({exc.code})", user_where(exc, self.path)) from None
        except KeyboardInterrupt as exc:
            if not self.interrupts_are_code:
                raise  # Ctrl-C in a notebook or a terminal stops the check
            what = what() if callable(what) else what
            raise UserCodeError(f"{what} raised KeyboardInterrupt", user_where(exc, self.path)) from None
        except BaseException as exc:  # noqa: BLE001 - Exception, GeneratorExit, the code's own BaseException
            what = what() if callable(what) else what
            raise UserCodeError(f"{what} raised {describe(exc)}", user_where(exc, self.path)) from None


def lookup(module, name: str, config: Config, key: str):
    """The module-level object ``name``; a missing name is an error in the config (exit 2)."""
    if not hasattr(module, name):
        from difflib import get_close_matches

        defined = [n for n in vars(module) if not n.startswith("_")]
        close = get_close_matches(name, defined, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"{config.code.file.name} defines no '{name}'{hint}", config.where(key))
    return getattr(module, name)


def as_loss(value, what, where: str, finite: bool = True) -> float:
    """A float from a float, a 0-d array or a size-1 array; anything else breaks the contract.
    ``what`` names the call: a string or a function making it (messages only). With ``finite``
    False a NaN or inf is returned as it is (the judge says what it was for)."""
    if type(value) in (float, np.float64) and (not finite or math.isfinite(value)):
        return float(value)  # the common case, on the hot path of every probe
    what = what() if callable(what) else what
    kind = _kind_of_loss(value)
    if kind is not None:
        raise UserCodeError(f"{what} returned {kind}; expected a single number (the loss of the batch)",
                            where, kind="contract")
    arr = np.asarray(value)
    if np.iscomplexobj(arr) and arr.reshape(-1)[0].imag != 0:
        raise UserCodeError(f"{what} returned the complex number {complex(arr.reshape(-1)[0])!r}; expected a real "
                            "loss", where, kind="contract")
    out = float(arr.reshape(-1)[0].real)
    if finite and not np.isfinite(out):
        raise UserCodeError(f"{what} returned {out}: the loss is not finite", where, kind="nan")
    return out


def _kind_of_loss(value) -> str | None:
    """Why ``value`` is not a loss, in words, or None when it is a single number."""
    if value is None:
        return "None (a missing return statement?)"
    if isinstance(value, (bool, np.bool_)):
        return f"the truth value {bool(value)} (a comparison?)"
    if isinstance(value, (str, bytes)):
        return f"the text {value[:40]!r}"
    if isinstance(value, (tuple, list, dict, set)):
        return f"a {type(value).__name__} of {len(value)} items (if the loss is one of them, name it with " \
               "returns: [loss, ...])"
    try:
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - an object whose __array__ raises
        return f"a {type(value).__name__} that numpy cannot read ({describe(exc)})"
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        return f"a {type(value).__name__} object"
    if arr.dtype == np.bool_:
        return "an array of truth values"
    if arr.size != 1:
        return f"an array of shape {arr.shape} (a loss per example? reduce it with .mean() or .sum())"
    try:
        float(arr.reshape(-1)[0].real)
    except Exception as exc:  # noqa: BLE001 - __float__ raising
        return f"a {type(value).__name__} whose value cannot be read ({describe(exc)})"
    return None


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
                raise UserCodeError(f"{expr} does not resolve ({describe(exc)})", where, kind="contract") from None
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
        raise UserCodeError(f"{expr} does not resolve ({describe(exc)})", where, kind="contract") from None


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


def expr_text(expr) -> str:
    if isinstance(expr, str):
        return expr[1:] if expr.startswith("$") else repr(expr)
    return repr(expr)
