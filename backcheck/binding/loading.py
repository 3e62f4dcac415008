"""Importing the user's file: a plain module, a package module (relative imports work), or only
its definitions; numpy functions its imports replaced are noted."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backcheck.binding.calls import Caller, describe, user_where
from backcheck.binding.program import read_program
from backcheck.errors import UserCodeError


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
                raise UserCodeError(f"importing the package {name.rsplit('.', 1)[0]} raised {describe(exc)}",
                                    user_where(exc, path)) from None
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
    if spec is None:  # a notebook: no import machinery knows the suffix
        import types

        module = types.ModuleType(name)
        module.__file__ = str(path)
    else:
        module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    program = read_program(path)
    notes.extend(program.notes)
    if program.cells is not None:  # a notebook: what Jupyter gives every cell for free
        module.__dict__.setdefault("display", lambda *args, **kwargs: None)
    try:
        if mode == "definitions":
            tree = ast.parse(program.source, str(path))
            tree.body, skipped = _definitions(tree.body)
            if skipped:
                shown = [str(n) if program.cells is None else program.where(n) for n in skipped[:8]]
                notes.append(f"import: definitions ran {path.name} without the statements at "
                             f"{'line(s) ' if program.cells is None else ''}{', '.join(shown)}"
                             f"{' ...' if len(skipped) > 8 else ''}")
            exec(compile(tree, str(path), "exec"), module.__dict__)  # noqa: S102 - the code under test
        elif program.cells is not None:
            exec(compile(program.source, str(path), "exec"), module.__dict__)  # noqa: S102 - the code under test
        else:
            spec.loader.exec_module(module)
    except SyntaxError as exc:
        where = program.where(exc.lineno) if exc.filename == str(path) else f"{Path(exc.filename or path).name}:{exc.lineno}"
        raise UserCodeError(f"the file does not compile: SyntaxError: {exc.msg}", where) from None
    except BaseException as exc:  # noqa: BLE001 - whatever the import raised is the user's error
        if isinstance(exc, KeyboardInterrupt) and not Caller.interrupts_are_code:
            raise
        raise UserCodeError(f"importing the file raised {describe(exc)}", user_where(exc, path)) from None
    return module


def _definitions(body: list) -> tuple[list, list]:
    """The statements of a module that only define things: imports, def, class, and assignments
    whose calls construct the module's own classes or numpy values. (kept, skipped line numbers)"""
    classes = {n.name for n in body if isinstance(n, ast.ClassDef)}
    numpy_names = {"np", "numpy"}  # grows with kept names holding numpy values (rng = np.random.default_rng())
    keep, skipped = [], []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            keep.append(node)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            keep.append(node)  # the docstring
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and \
                all(_safe_call(c, classes, numpy_names) for c in ast.walk(node.value) if isinstance(c, ast.Call)):
            keep.append(node)
            calls = [c for c in ast.walk(node.value) if isinstance(c, ast.Call)]
            if calls and all(_root_name(c.func) in numpy_names for c in calls):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                numpy_names.update(t.id for t in targets if isinstance(t, ast.Name))
        else:
            skipped.append(node.lineno)
    return keep, skipped


def _safe_call(call: ast.Call, classes: set, numpy_names: set) -> bool:
    """A call that builds a value: the module's own class, a builtin constructor, or numpy (including
    methods of numpy values such as a random generator); not a function that might train."""
    f = call.func
    if isinstance(f, ast.Name):
        return f.id in classes or f.id in _SAFE_CALLS
    return _root_name(f) in numpy_names


def _root_name(f) -> str | None:
    while isinstance(f, ast.Attribute):
        f = f.value
    return f.id if isinstance(f, ast.Name) else None
