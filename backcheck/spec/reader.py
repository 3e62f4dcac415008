"""The line-and-column YAML reader: compose the file, walk its nodes, and point at the line of
every mistake. The only module of backcheck that imports ``yaml``.

A config is a few hundred plain values, so the reader refuses what no config needs before it
builds anything: tags (``!!python/...``, ``!foo``, ``!!binary``), more than one document,
nesting deeper than MAX_DEPTH, an alias inside its own anchor, and aliases that expand the file
past MAX_VALUES values (an alias bomb). Every refusal names the line and column.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from backcheck.errors import ConfigError

MAX_BYTES = 1_000_000  # a config is a few kilobytes; a larger file is not one
MAX_DEPTH = 32  # levels of nested lists and mappings; the deepest config needs about 8
MAX_VALUES = 20_000  # values once aliases are expanded; a config has a few hundred

_CORE = "tag:yaml.org,2002:"
_CONSTRUCT = SafeConstructor()
_SCALARS = {  # the tags a scalar may carry, how it is built, and what it is called in a message
    _CORE + "null": (_CONSTRUCT.construct_yaml_null, "nothing"),
    _CORE + "bool": (_CONSTRUCT.construct_yaml_bool, "true or false"),
    _CORE + "int": (_CONSTRUCT.construct_yaml_int, "an integer"),
    _CORE + "float": (_CONSTRUCT.construct_yaml_float, "a number"),
    _CORE + "str": (_CONSTRUCT.construct_scalar, "a string"),
}
# Tags the resolver gives plain scalars that are text to backcheck: a date is not a number, and
# `<<` (merge) and `=` (value) are ordinary keys and names here.
_AS_TEXT = {_CORE + "timestamp", _CORE + "merge", _CORE + "value"}
_CONTROL_NAMES = {0: "NUL", 7: "BEL", 8: "backspace", 0x1B: "ESC", 0x7F: "DEL", 0xFEFF: "byte order mark"}


def read_text(path: Path) -> str:
    """The file's text. Raises ConfigError for a missing, unreadable, oversized or non-UTF-8 file."""
    try:
        if path.is_dir():
            raise ConfigError("this is a folder; expected the YAML config file", str(path))
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("no such file", str(path)) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise ConfigError(f"cannot read the file: {_os_reason(exc)}", shown_path(path)) from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"the file is over {MAX_BYTES:,} bytes; a config is a few kilobytes of YAML", str(path))
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError("the file is UTF-16 text; save it as UTF-8", f"{path}:1:1")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[:exc.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1:].decode("utf-8", errors="replace")) + 1
        raise ConfigError(f"the file is not UTF-8 text: byte 0x{data[exc.start]:02x} here cannot be read; "
                          "save the file as UTF-8", f"{path}:{line}:{column}") from None


def _os_reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno)
    return str(exc)


def shown_path(path) -> str:
    """A path fit for a message: an over-long one is cut in the middle."""
    text = str(path)
    return text if len(text) <= 200 else f"{text[:80]}...{text[-80:]} ({len(text):,} characters)"


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
        if len(text) > MAX_BYTES:
            raise ConfigError(f"the file is over {MAX_BYTES:,} characters; a config is a few kilobytes of YAML",
                              str(self.path))
        try:
            self._screen(text)
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.reader.ReaderError as exc:  # a character YAML does not allow, at a character index
            raise ConfigError(_character_message(exc), self._at_index(text, exc.position)) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or "invalid YAML"
            where = f"{self.path}:{mark.line + 1}:{mark.column + 1}" if mark else str(self.path)
            raise ConfigError(f"invalid YAML: {problem}", where) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid YAML: {exc}", str(self.path)) from None
        if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == _CORE + "null"):
            raise ConfigError("the file holds no settings (only comments, or an empty document); expected a "
                              "mapping with network: and data:", str(self.path))
        return Located(self.value(root, ""), root)

    def _at_index(self, text: str, index: int) -> str:
        line = text.count("\n", 0, index) + 1
        return f"{self.path}:{line}:{index - (text.rfind(chr(10), 0, index) + 1) + 1}"

    def _screen(self, text: str) -> None:
        """One pass over the parser's events before anything is built (see _Screen)."""
        loader = yaml.SafeLoader(text)
        screen = _Screen(self)
        try:
            while loader.check_event():
                screen.see(loader.get_event())
        finally:
            loader.dispose()

    def value(self, node, keypath: str):
        self.marks[keypath] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            self._plain_tag(node, keypath, "map")
            out = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.fail(key_node, keypath, "keys must be plain names")
                self._plain_tag(key_node, keypath, "str", *_SCALARS, *_AS_TEXT)
                key = key_node.value
                child = f"{keypath}.{key}" if keypath else key
                if key in out:
                    self.fail(key_node, child, "this key appears twice")
                out[key] = Located(self.value(value_node, child), value_node)
            return out
        if isinstance(node, yaml.SequenceNode):
            self._plain_tag(node, keypath, "seq")
            return [
                Located(self.value(item, f"{keypath}[{i}]"), item) for i, item in enumerate(node.value)
            ]
        if node.tag in _AS_TEXT:
            return node.value
        self._plain_tag(node, keypath, *_SCALARS)
        build, what = _SCALARS[node.tag]
        try:
            return build(node)
        except Exception:  # noqa: BLE001 - an explicit tag on text that is not of its kind (!!float abc)
            self.fail(node, keypath, f"{_shown_tag(node.tag)} {node.value!r} cannot be read as {what}")

    def _plain_tag(self, node, keypath: str, *allowed: str) -> None:
        tags = {t if t.startswith("tag:") else _CORE + t for t in allowed}
        if node.tag not in tags:
            self.fail(node, keypath, f"the YAML tag {_shown_tag(node.tag)} is not accepted: a config holds plain "
                                     "values (numbers, names, true/false, lists and mappings), never objects; "
                                     "remove the tag")


class _Screen:
    """Refuses, from the parser's events alone, what must not be built: a second document, nesting
    past MAX_DEPTH, an alias inside its own anchor, and more than MAX_VALUES values once aliases are
    expanded. It follows the key path of every event for the messages."""

    def __init__(self, reader: Reader):
        self.reader = reader
        self.frames: list[list] = []  # per open list or mapping: [is_mapping, index or key, at a key]
        self.anchors: list[str | None] = []  # of the open lists and mappings
        self.counts = [0]  # values so far in each open list or mapping (aliases expanded), and in all
        self.sizes: dict[str, int] = {}  # values each anchor stands for
        self.documents = 0

    def see(self, event) -> None:
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                self.reader.fail(event, "", "a second YAML document starts here; backcheck reads one document "
                                            "per file: remove this --- and what follows, or move it to a file "
                                            "of its own")
        elif isinstance(event, yaml.CollectionStartEvent):
            self._start()
            if len(self.anchors) >= MAX_DEPTH:
                self.fail(event, f"nested more than {MAX_DEPTH} levels deep; a config needs a handful of levels")
            self.frames.append([isinstance(event, yaml.MappingStartEvent), -1, True])
            self.anchors.append(event.anchor)
            self.counts.append(1)
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, n = self.anchors.pop(), self.counts.pop()
            if anchor:
                self.sizes[anchor] = n
            self.frames.pop()
            self._add(event, n)
            self._end()
        elif isinstance(event, yaml.AliasEvent):
            self._start()
            if event.anchor in self.anchors:
                self.fail(event, f"the alias *{event.anchor} stands inside the list or mapping &{event.anchor} "
                                 "it repeats: a value that would contain itself")
            self._add(event, self.sizes.get(event.anchor, 1))
            self._end()
        elif isinstance(event, yaml.ScalarEvent):
            self._start(event.value)
            if event.anchor:
                self.sizes[event.anchor] = 1
            self._add(event, 1)
            self._end()

    def fail(self, event, message: str):
        self.reader.fail(event, self.here(), message)

    def here(self) -> str:
        """The key path of the value at the current event."""
        out = ""
        for is_mapping, at, _ in self.frames:
            out += (f".{at}" if out else str(at)) if is_mapping else f"[{at}]"
        return out

    def _add(self, event, n: int) -> None:
        self.counts[-1] += n
        if sum(self.counts) > MAX_VALUES:
            self.fail(event, _too_many(isinstance(event, yaml.AliasEvent)))

    def _start(self, key: str | None = None) -> None:
        """A value starts: the enclosing list's next index, or the enclosing mapping's key."""
        if self.frames:
            frame = self.frames[-1]
            if not frame[0]:
                frame[1] += 1
            elif frame[2]:
                frame[1] = key if key is not None else "?"

    def _end(self) -> None:
        """A value ended: in a mapping, a key is followed by its value and a value by a key."""
        if self.frames and self.frames[-1][0]:
            self.frames[-1][2] = not self.frames[-1][2]


def _too_many(alias: bool) -> str:
    if alias:
        return (f"with this alias the file stands for more than {MAX_VALUES:,} values (each *name repeats all "
                "that its &name holds); a config has a few hundred: write the values out")
    return f"the file holds more than {MAX_VALUES:,} values; a config has a few hundred"


def _character_message(exc) -> str:
    code = exc.character if isinstance(exc.character, int) else ord(exc.character)
    name = _CONTROL_NAMES.get(code)
    shown = f"U+{code:04X}" + (f" ({name})" if name else "")
    return f"the file holds the character {shown} here, which YAML does not allow; a config is plain text: remove it"


def _shown_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


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
    if isinstance(v, dict):
        return "a mapping" if v else "an empty mapping"
    if isinstance(v, list):
        return "a list" if v else "an empty list"
    if isinstance(v, float) and not math.isfinite(v):
        return ".nan" if v != v else ".inf" if v > 0 else "-.inf"  # as YAML writes them
    if isinstance(v, int) and abs(v) >= 10**15:
        return f"{float(v):.3g}"
    return repr(v)


_EXPECTED = {int: "an integer", float: "a number", str: "a name", bool: "true or false"}


class Section:
    """One mapping of the config, with checked access to its keys.

    A key whose value is null (``eps:`` or ``eps: null``) counts as absent: an optional key takes its
    default, a required one is an error ("expected ..., got nothing").
    """

    def __init__(self, reader: Reader, located: Located, keypath: str, allowed: tuple[str, ...]):
        self.reader = reader
        self.keypath = keypath
        self.node = located.node
        if not isinstance(located.value, dict):
            reader.fail(located.node, keypath, f"expected a mapping, got {type_name(plain(located))}")
        self.items: dict[str, Located] = {k: v for k, v in located.value.items() if v.value is not None}
        self.nulls: dict[str, Located] = {k: v for k, v in located.value.items() if v.value is None}
        for key in located.value:
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
        """Whether ``key`` has a value (a null one does not count)."""
        return key in self.items

    def given(self, key: str) -> bool:
        """Whether ``key`` is written in the file, even with a null value."""
        return key in self.items or key in self.nulls

    def located(self, key: str) -> Located:
        return self.items[key]

    def require(self, key: str, what: str = "a value") -> Located:
        if key in self.nulls:
            self.fail(key, f"expected {what}, got nothing")
        if key not in self.items:
            self.reader.fail(self.node, self.path(key), "missing; this key is required")
        return self.items[key]

    def node_of(self, key: str):
        """The YAML node of ``key``'s value, or of this mapping when the key is absent."""
        located = self.items.get(key) or self.nulls.get(key)
        return located.node if located is not None else self.node

    def fail(self, key: str, message: str):
        self.reader.fail(self.node_of(key), self.path(key), message)

    def get(self, key: str, kind, default=None, *, required=False, minimum=None, maximum=None, positive=False,
            below=None, why="", choices=None, what=None):
        """The value at ``key``: an int, a finite float, a str or a bool (``kind``), or one of ``choices``.

        An absent key or null is ``default`` ("null means the default"), or an error when ``required``.
        ``minimum``/``maximum`` bound it inclusively, ``positive`` and ``below`` exclusively; ``why``
        says why in a bound's message, ``what`` names the expected value in place of the kind's name.
        """
        expected = what or (f"one of {', '.join(choices)}" if choices is not None else _EXPECTED[kind])
        if key not in self.items:
            if required:
                self.require(key, expected)
            return default
        v = plain(self.items[key])
        if choices is not None:
            if not isinstance(v, str) or v not in choices:
                hint = did_you_mean(str(v), choices)
                self.fail(key, f"expected one of {', '.join(choices)}; got {type_name(v)}{hint}")
            return v
        ok = isinstance(v, kind) and not (isinstance(v, bool) and kind is not bool)
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            try:
                v, ok = float(v), True
            except OverflowError:  # an integer past 1.8e308
                v, ok = math.inf, True
        if kind is float and isinstance(v, str):
            try:  # YAML 1.1 reads 1e-6 (no dot) as a string
                v, ok = float(v), True
            except ValueError:
                pass
        if not ok:
            self.fail(key, f"expected {expected}, got {type_name(v)}")
        if kind is float and not math.isfinite(v):
            self.fail(key, f"expected a finite number, got {type_name(v)}")
        low = (positive and not v > 0) or (minimum is not None and v < minimum)
        high = (below is not None and not v < below) or (maximum is not None and v > maximum)
        if low or high:
            noun = "a number" if kind is float else "an integer"
            if minimum is not None and maximum is not None:
                bounds = f"{noun} from {minimum:,} to {maximum:,}"
            elif minimum is not None:
                bounds = f"at least {minimum:,}"
            else:
                bounds = f"{noun} " + " and ".join(b for b in (
                    "above 0" if positive else None,
                    f"below {below:g}" if below is not None else f"at most {maximum:,}" if maximum is not None
                    else None) if b)
            self.fail(key, f"expected {bounds}" + (f" ({why})" if why else "") + f", got {type_name(v)}")
        return v

    def on_disk(self, key: str, path: Path) -> str | None:
        """'file', 'folder' or None (nothing there) for ``path``, given at ``key``. A path the system
        cannot look up (too long, a NUL character) is an error at the key."""
        try:
            return "folder" if path.is_dir() else "file" if path.exists() else None
        except (OSError, ValueError) as exc:  # ENAMETOOLONG; ValueError: an embedded NUL
            size = len(str(path))
            self.fail(key, f"the system cannot look up this path: {_os_reason(exc)}"
                           + (f" (the path is {size:,} characters long)" if size > 255 else ""))


def _key_mark(mapping_node, key):
    for key_node, _ in mapping_node.value:
        if key_node.value == key:
            return key_node.start_mark
    return mapping_node.start_mark


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
