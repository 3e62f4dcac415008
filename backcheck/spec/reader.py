"""The line-and-column YAML reader: compose the file, walk its nodes, and point at the line of
every mistake. The only module of backcheck that imports ``yaml``."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from backcheck.errors import ConfigError


@dataclass
class Located:
    """A value of the config and the YAML node it came from (for its line and column)."""

    value: Any
    node: Any


class Reader:
    """Walks a composed YAML node tree, converting values and recording every key's position."""

    def __init__(self, path: Path, code_base: Path | None = None, require_code: bool = True):
        self.path = path
        self.code_base = code_base or path.parent  # code.file and code.root are relative to this folder
        self.require_code = require_code  # False: code.file need not exist yet (an assignment's config)
        self.marks: dict[str, tuple[int, int]] = {}

    def fail(self, node_or_mark, keypath: str, message: str):
        mark = getattr(node_or_mark, "start_mark", node_or_mark)
        loc = f"{self.path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(self.path)
        prefix = f"{keypath}: " if keypath else ""
        raise ConfigError(f"{prefix}{message}", loc)

    def document(self, text: str) -> Located:
        """The file's one mapping, with the position of every node."""
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or "invalid YAML"
            where = f"{self.path}:{mark.line + 1}:{mark.column + 1}" if mark else str(self.path)
            raise ConfigError(f"invalid YAML: {problem}", where) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid YAML: {exc}", str(self.path)) from None
        if root is None:
            raise ConfigError("the file is empty; expected a mapping with network: and data:", str(self.path))
        return Located(self.value(root, ""), root)

    def value(self, node, keypath: str):
        self.marks[keypath] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            out = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.fail(key_node, keypath, "keys must be plain names")
                key = key_node.value
                child = f"{keypath}.{key}" if keypath else key
                if key in out:
                    self.fail(key_node, child, "this key appears twice")
                out[key] = Located(self.value(value_node, child), value_node)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [
                Located(self.value(item, f"{keypath}[{i}]"), item) for i, item in enumerate(node.value)
            ]
        return yaml.safe_load(yaml.serialize(node)) if node.tag != "tag:yaml.org,2002:str" else node.value


def plain(located):
    """Strip positions: the plain Python value."""
    v = located.value if isinstance(located, Located) else located
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def type_name(v) -> str:
    if v is None:
        return "nothing"
    if isinstance(v, bool):
        return f"{v!r}".lower()
    if isinstance(v, (dict,)):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    return repr(v)


class Section:
    """One mapping of the config, with checked access to its keys."""

    def __init__(self, reader: Reader, located: Located, keypath: str, allowed: tuple[str, ...]):
        self.reader = reader
        self.keypath = keypath
        self.node = located.node
        if not isinstance(located.value, dict):
            reader.fail(located.node, keypath, f"expected a mapping, got {type_name(plain(located))}")
        self.items: dict[str, Located] = located.value
        for key, item in self.items.items():
            if key not in allowed:
                hint = did_you_mean(key, allowed)
                reader.fail(
                    _key_mark(located.node, key),
                    self.path(key),
                    f"unknown key; expected one of {', '.join(allowed)}{hint}",
                )

    def path(self, key: str) -> str:
        return f"{self.keypath}.{key}" if self.keypath else key

    def has(self, key: str) -> bool:
        return key in self.items

    def located(self, key: str) -> Located:
        return self.items[key]

    def require(self, key: str) -> Located:
        if key not in self.items:
            self.reader.fail(self.node, self.path(key), "missing; this key is required")
        return self.items[key]

    def fail(self, key: str, message: str):
        node = self.items[key].node if key in self.items else self.node
        self.reader.fail(node, self.path(key), message)

    def get(self, key: str, kind, default=None, *, minimum=None, positive=False, choices=None):
        if key not in self.items or self.items[key].value is None:
            return default
        v = plain(self.items[key])
        if choices is not None:
            if not isinstance(v, str) or v not in choices:
                hint = did_you_mean(str(v), choices)
                self.fail(key, f"expected one of {', '.join(choices)}; got {type_name(v)}{hint}")
            return v
        ok = isinstance(v, kind) and not (isinstance(v, bool) and kind is not bool)
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v, ok = float(v), True
        if kind is float and isinstance(v, str):
            try:  # YAML 1.1 reads 1e-6 (no dot) as a string
                v, ok = float(v), True
            except ValueError:
                pass
        if not ok:
            expected = {int: "an integer", float: "a number", str: "a name", bool: "true or false"}[kind]
            self.fail(key, f"expected {expected}, got {type_name(v)}")
        if positive and not v > 0:
            self.fail(key, f"expected a number above 0, got {type_name(v)}")
        if minimum is not None and v < minimum:
            self.fail(key, f"expected at least {minimum}, got {type_name(v)}")
        return v


def _key_mark(mapping_node, key):
    for key_node, _ in mapping_node.value:
        if key_node.value == key:
            return key_node.start_mark
    return mapping_node.start_mark


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
