"""Recording one backward pass of the code, line by line, for the line pointer.

Runs where the code runs. ``record`` calls the code's gradient once under ``sys.settrace`` and
keeps, for every statement of the user's files that assigns an array, what it assigned (a copy)
and which earlier values it read: the arguments a function was called with, the values lines
assigned, what functions returned. It judges nothing: the judge compares the values with the
right ones and finds the first line that departs (``backcheck.lines``).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAX_EVENTS = 4000
MAX_ENTRIES = 2_000_000  # numbers kept in all


@dataclass
class Event:
    index: int
    kind: str  # "line" (an assignment), "arg" (a function's argument), "return"
    where: str  # "net.py:71" or "net.ipynb cell 3, line 5"
    file: str  # the file's name
    line: int  # in the file (a notebook's joined source)
    source: str
    name: str
    value: np.ndarray
    deps: list = field(default_factory=list)  # indices of the events whose values the statement read
    helper: bool = False  # a "return" of a one-statement function (def f(x): return ..., a lambda)
    cell: tuple | None = None  # in a notebook: (the code cell's number, the line in it), both from 1


class _Statements:
    """Per file: line -> (names assigned, names read) of the statement starting there."""

    def __init__(self):
        self.by_file: dict = {}

    def of(self, filename: str, source: str | None = None) -> dict:
        if filename not in self.by_file:
            self.by_file[filename] = _statements(source if source is not None else _read(filename))
        return self.by_file[filename]


def _read(filename: str) -> str:
    import linecache

    lines = linecache.getlines(filename)
    return "".join(lines) if lines else (Path(filename).read_text(encoding="utf-8") if Path(filename).exists()
                                          else "")


def _statements(source: str) -> dict:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    out: dict = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            stores = [n for t in targets for n in _names(t)]
            reads = _reads(node.value) if node.value is not None else []
            if isinstance(node, ast.AugAssign):
                reads += stores
            for t in targets:  # x[i] = ... reads x and i
                if isinstance(t, ast.Subscript):
                    reads += _reads(t)
            entry = out.setdefault(node.lineno, ([], []))
            entry[0].extend(stores)
            entry[1].extend(reads)
        elif isinstance(node, ast.Return) and node.value is not None:
            out.setdefault(node.lineno, ([], []))[1].extend(_reads(node.value))
    return out


def _names(t) -> list:
    if isinstance(t, ast.Name):
        return [t.id]
    if isinstance(t, (ast.Tuple, ast.List)):
        return [n for e in t.elts for n in _names(e)]
    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name):
        return [f"{t.value.id}.{t.attr}"]
    if isinstance(t, ast.Subscript):
        if isinstance(t.value, ast.Name) and isinstance(t.slice, ast.Constant) and \
                isinstance(t.slice.value, (str, int)):
            return [f"{t.value.id}[{t.slice.value!r}]"]  # grads["W1"] = ...: the entry is the value
        return _names(t.value)
    return []


def _reads(node) -> list:
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
            out.append(n.id)
        elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and isinstance(n.ctx, ast.Load):
            out.append(f"{n.value.id}.{n.attr}")
    return out


def record(run, folder: Path, where_of, shapes: set) -> list[Event]:
    """Call ``run()`` (one gradient of the code) and record what the code's statements assigned.

    ``folder``: only frames of files in it are the code's; ``where_of(filename, line)`` says a
    line the way the user finds it, and in a notebook its cell: (where, (cell, line in it) or None); ``shapes``: the shapes (and their transposes) worth keeping."""
    folder = folder.resolve()
    stmts = _Statements()
    events: list[Event] = []
    latest: dict = {}  # (frame id, name) -> event index
    by_object: dict = {}  # id of a returned array -> event index (arguments made of it)
    pending: dict = {}  # frame id -> the line that is running in it
    budget = [MAX_ENTRIES]
    mine: dict = {}

    own = Path(__file__).resolve().parent.parent  # backcheck's package: never the code under test

    def is_mine(filename: str) -> bool:
        if filename not in mine:
            try:
                path = Path(filename).resolve()
                mine[filename] = folder in path.parents and own not in path.parents
            except (OSError, ValueError):
                mine[filename] = False
        return mine[filename]

    def keep(value):
        if isinstance(value, np.ndarray) and value.dtype.kind in "fc" and value.ndim <= 2 and \
                (tuple(value.shape) in shapes or tuple(value.shape[::-1]) in shapes) and \
                value.size <= budget[0] and len(events) < MAX_EVENTS:
            budget[0] -= value.size
            return np.array(value, dtype=np.float64, copy=True)
        return None

    def scope(frame) -> int:
        """Where a frame's names live: its module's dict at module level (blocks run one after another in
        the same namespace share it), else the frame itself."""
        return id(frame.f_globals) if frame.f_locals is frame.f_globals else id(frame)

    def add(frame, kind, line, name, value, deps):
        kept = keep(value)
        if kept is None:
            return None
        filename = frame.f_code.co_filename
        where, cell = where_of(filename, line)
        e = Event(len(events), kind, where, Path(filename).name, line, _source(filename, line), name, kept, deps,
                  cell=cell)
        events.append(e)
        latest[(scope(frame), name)] = e.index
        if kind == "return":
            by_object[id(value)] = e.index
        return e.index

    def value_of(frame, name):
        if name.endswith("]") and "[" in name:
            base, key = name[:-1].split("[", 1)
            container = frame.f_locals.get(base, frame.f_globals.get(base))
            try:
                return container[ast.literal_eval(key)]
            except (KeyError, IndexError, TypeError, ValueError, SyntaxError):
                return None
        if "." in name:
            base, attr = name.split(".", 1)
            obj = frame.f_locals.get(base)
            return getattr(obj, attr, None) if obj is not None else None
        return frame.f_locals.get(name, frame.f_globals.get(name))

    def finish(frame, line) -> None:
        table = stmts.of(frame.f_code.co_filename)
        if line not in table:
            return
        stores, reads = table[line]
        here = scope(frame)
        deps = sorted({latest[(here, r)] for r in reads if (here, r) in latest})
        for name in stores:
            add(frame, "line", line, name, value_of(frame, name), deps)

    def local(frame, event, arg):
        key = id(frame)
        if event in ("line", "return") and key in pending and pending[key] is not None:
            finish(frame, pending[key])
        if event == "line":
            pending[key] = frame.f_lineno
        elif event == "return":
            pending.pop(key, None)
            table = stmts.of(frame.f_code.co_filename)
            line = frame.f_lineno
            reads = table.get(line, ([], []))[1]
            here = scope(frame)
            deps = sorted({latest[(here, r)] for r in reads if (here, r) in latest})
            idx = add(frame, "return", line, "<return>", arg, deps)
            if idx is not None:
                events[idx].helper = _one_statement(frame.f_code, stmts.of(frame.f_code.co_filename))
        return local

    def tracer(frame, event, arg):
        if not is_mine(frame.f_code.co_filename):
            return None
        if event == "call":
            for name, value in list(frame.f_locals.items()):
                if isinstance(value, np.ndarray):
                    source_event = by_object.get(id(value))
                    idx = add(frame, "arg", frame.f_lineno, name, value, [] if source_event is None else [source_event])
                    if idx is None and source_event is not None:
                        latest[(scope(frame), name)] = source_event
        return local

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(previous)
    return events


_SMALL = {}  # (filename, first line) -> whether the function there is a small formula


def _one_statement(code, table: dict) -> bool:
    """A lambda, or a function of at most three statements (``s = sigmoid(x); return s * (1 - s)``): a
    formula that its caller applies; the caller's line decides what it is applied to."""
    if code.co_name == "<lambda>":
        return True
    key = (code.co_filename, code.co_firstlineno)
    if key not in _SMALL:
        _SMALL[key] = False
        try:
            tree = ast.parse(_read(code.co_filename))
        except (SyntaxError, ValueError, OSError):
            return False
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == code.co_name and \
                    code.co_firstlineno in (node.lineno, *(d.lineno for d in node.decorator_list)):
                body = [b for b in node.body if not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))]
                _SMALL[key] = len(body) <= 3 and not any(isinstance(b, (ast.For, ast.While, ast.If, ast.With))
                                                         for b in body)
    return _SMALL[key]


def _source(filename: str, line: int) -> str:
    """The statement's line as written, without a trailing comment (a '#' inside a string stays)."""
    import io
    import linecache
    import tokenize

    text = linecache.getline(filename, line)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT:
                return text[:tok.start[1]].strip()
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass  # a line that continues a bracket: as it is
    return text.strip()
