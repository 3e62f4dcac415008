"""Calls into the user's code (a NAME or {call:, args:, kwargs:, returns:, result:, lr:}) and the
$names their EXPRs may use."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from typing import Any

from backcheck.spec.paths import parse_expr, parse_path
from backcheck.spec.reader import Located, Section, did_you_mean, plain, type_name

# Names an EXPR may start with ($X, $sizes, ...); a call's `returns` adds its own names.
BUILTIN_NAMES = ("X", "Y", "x", "y", "lr", "params", "model", "module", "sizes", "n_input", "n_output",
                 "hidden", "batch", "seed", "float64", "float32")
CHAIN_NAMES = ("self", "input", "grad", "output", "layers", "head")


@dataclass(frozen=True)
class Call:
    """One call into the user's code: what to call, with which arguments, and what its results are named.

    ``args`` None means the default arguments of the key the call stands at (contract v1). EXPRs are
    kept as YAML gave them: literals, lists, mappings, and strings starting with ``$``.
    """

    name: str  # a name, or a $-path to a callable
    key: str  # the config key it stands at, e.g. "code.loss"
    args: tuple | None = None
    kwargs: tuple = ()  # ((name, expr), ...)
    returns: tuple | None = None  # names; one name binds the whole value ("*name")
    result: Any = None  # an EXPR read after the call instead of its return value
    lr: tuple | float | None = None  # step calls: paths where the learning rate is written, or a fixed rate

    def __str__(self) -> str:
        return self.name

    @functools.cached_property  # read on every call into the code
    def names(self) -> tuple[str, ...]:
        return tuple(n.lstrip("*") for n in self.returns or () if n.lstrip("*") != "_")


@dataclass(frozen=True)
class Sequence:
    """Several calls made in order where the YAML gives a list (e.g. a loss object's backward, then
    the model's backward with its result). The last call's value is the key's value."""

    calls: tuple[Call, ...]
    key: str

    def __str__(self) -> str:
        return str(self.calls[-1])

    @property
    def name(self) -> str:
        return self.calls[-1].name

    @property
    def args(self):
        return tuple(a for c in self.calls for a in (c.args or ()))

    @property
    def lr(self):
        return next((c.lr for c in self.calls if c.lr is not None), None)

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(n for c in self.calls for n in c.names)


class Calls:
    """Reads call keys (a NAME or {call:, args:, kwargs:, returns:, result:, lr:}) and checks that
    every $name an EXPR uses is defined somewhere."""

    KEYS = ("call", "args", "kwargs", "returns", "result", "lr")

    def __init__(self, sec: Section):
        self.sec = sec
        self.reader = sec.reader
        self.exprs: list[tuple[str, Any, str]] = []  # (text, node, keypath)
        self.defined: set[str] = set()

    def get(self, key: str, many: bool = False):
        """The call at ``key``; with ``many``, a list of calls is a Sequence made in order."""
        if not self.sec.has(key):
            return None
        loc = self.sec.located(key)
        if key == "loss" and loc.value == "spec":
            return None
        if many and isinstance(loc.value, list):
            if not loc.value:
                self.sec.fail(key, "expected a call or a list of calls")
            return Sequence(tuple(self.parse(item, f"code.{key}[{i}]") for i, item in enumerate(loc.value)),
                            f"code.{key}")
        return self.parse(loc, f"code.{key}")

    def objects(self) -> tuple:
        """code.objects: (name, CALL or EXPR) made once, in order, each then usable as $name."""
        if not self.sec.has("objects"):
            return ()
        loc = self.sec.located("objects")
        if not isinstance(loc.value, dict) or not loc.value:
            self.sec.fail("objects", "expected a mapping of names to calls, such as {loss_fn: {call: CrossEntropy}}")
        out = []
        for name, item in loc.value.items():
            if not name.isidentifier() or name in BUILTIN_NAMES or name in CHAIN_NAMES:
                self.reader.fail(item.node, f"code.objects.{name}", f"'{name}' cannot name an object: choose a name "
                                 "that is not one of backcheck's")
            out.append((name, self.call_or_expr(item, f"code.objects.{name}")))
            self.defined.add(name)
        return tuple(out)

    def parse(self, loc: Located, keypath: str) -> Call:
        if isinstance(loc.value, str):
            self._expr_or_name(loc, keypath)
            return Call(loc.value, keypath)
        if not isinstance(loc.value, dict):
            self.reader.fail(loc.node, keypath, "expected the name of a function or method of the code, or a "
                                                f"mapping such as {{call: NAME, args: [$X, $Y]}}; got "
                                                f"{type_name(plain(loc))}")
        sub = Section(self.reader, loc, keypath, self.KEYS)
        name = sub.get("call", str, required=True, what="the name of a function or method, or a $-path")
        self._expr_or_name(sub.located("call"), f"{keypath}.call")
        args = None
        if sub.has("args"):
            a = sub.located("args")
            if not isinstance(a.value, list):
                sub.fail("args", "expected a list of arguments, such as [$X, $Y]")
            args = tuple(self._walk(item, f"{keypath}.args[{i}]") for i, item in enumerate(a.value))
        kwargs = ()
        if sub.has("kwargs"):
            k = sub.located("kwargs")
            if not isinstance(k.value, dict):
                sub.fail("kwargs", "expected a mapping of argument names to values")
            kwargs = tuple((n, self._walk(v, f"{keypath}.kwargs.{n}")) for n, v in k.value.items())
        returns = None
        if sub.has("returns"):
            r = sub.located("returns")
            items = r.value if isinstance(r.value, list) else None
            names = [plain(i) for i in items] if items is not None else [plain(r)]
            for n in names:
                if not isinstance(n, str) or not n.isidentifier():
                    sub.fail("returns", f"expected a name or a list of names; got {type_name(n)}")
                if n in BUILTIN_NAMES or n in CHAIN_NAMES:
                    sub.fail("returns", f"'{n}' is a name backcheck defines (${n}); choose another")
            returns = tuple(names) if items is not None else ("*" + names[0],)
            self.defined.update(n for n in names if n != "_")
        result = self._walk(sub.located("result"), f"{keypath}.result") if sub.has("result") else None
        lr = None
        if sub.has("lr"):
            v = plain(sub.located("lr"))
            if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= sys.float_info.max:
                lr = float(v)
            elif isinstance(v, str) or (isinstance(v, list) and v and all(isinstance(x, str) for x in v)):
                texts = [v] if isinstance(v, str) else v
                for t in texts:
                    self._path(t, sub.located("lr").node, f"{keypath}.lr")
                lr = tuple(texts)
            else:
                sub.fail("lr", "expected a path where the learning rate is written, a list of paths, "
                               f"or the code's fixed learning rate (a finite number above 0); got {type_name(v)}")
        return Call(name, keypath, args, kwargs, returns, result, lr)

    def call_or_expr(self, loc: Located, keypath: str):
        if isinstance(loc.value, str) and loc.value.startswith("$"):
            return self._walk(loc, keypath)
        return self.parse(loc, keypath)

    def _expr_or_name(self, loc: Located, keypath: str) -> None:
        text = loc.value
        if text.startswith("$"):
            self._walk(loc, keypath)
        elif not text.isidentifier():
            self.reader.fail(loc.node, keypath, f"expected a name or a $-path, got {text!r}")

    def _walk(self, loc: Located, keypath: str):
        """The plain value of an EXPR, recording every $-string for the name check."""
        v = loc.value
        if isinstance(v, list):
            return [self._walk(item, f"{keypath}[{i}]") for i, item in enumerate(v)]
        if isinstance(v, dict):
            return {k: self._walk(item, f"{keypath}.{k}") for k, item in v.items()}
        if isinstance(v, str) and v.startswith("$") and not v.startswith("$$"):
            self._path(v, loc.node, keypath)
        return v

    def _path(self, text: str, node, keypath: str) -> None:
        try:
            parse_expr(text) if text.startswith("$") else parse_path(text)
        except ValueError as exc:
            self.reader.fail(node, keypath, str(exc))
        if text.startswith("$"):
            self.exprs.append((text, node, keypath))

    def note_table(self, text: str, node, keypath: str) -> None:
        if text.startswith("$"):
            self._path(text.replace("{k}", "1").replace("{i}", "0"), node, keypath)

    def check_names(self, chain: bool) -> None:
        known = set(BUILTIN_NAMES) | self.defined | (set(CHAIN_NAMES) if chain else set())
        for text, node, keypath in self.exprs:
            root = parse_expr(text)[0]
            if root not in known:
                same = [n for n in sorted(known) if n.lower() == root.lower()]  # $G for $g, $dw1 for $dW1
                hint = f" (did you mean '{same[0]}'?)" if same else did_you_mean(root, sorted(known))
                self.reader.fail(node, keypath, f"${root} is not defined: expected one of backcheck's names "
                                 f"({', '.join('$' + n for n in BUILTIN_NAMES)}) or a name from a "
                                 f"returns:{hint}")
