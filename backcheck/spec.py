"""The YAML config (contract section 1): read, validate, and point at the line of every mistake.

Errors read ``model.yaml:7:5: network.layers[1].activation: expected one of ...; got 'rleu'
(did you mean 'relu'?)``. This is the only module that imports ``yaml``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from backcheck.errors import ConfigError

ACTIVATIONS = ("identity", "leaky_relu", "relu", "sigmoid", "softmax", "tanh")
LOSSES = ("binary_cross_entropy", "cross_entropy", "mse")
METHODS = ("central", "complex", "richardson")
LAYOUTS = ("rows", "columns")
TARGETS = ("onehot", "labels")
ROLES = ("W", "b")
MAX_CSV_ROWS = 64


@dataclass(frozen=True)
class LayerSpec:
    units: int
    activation: str
    alpha: float = 0.01  # leaky_relu slope for negative inputs


@dataclass(frozen=True)
class NetworkSpec:
    input: int
    layers: tuple[LayerSpec, ...]
    loss: str
    reduction: str = "mean"  # mse only: mean or sum over the batch
    l2: float = 0.0

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.input,) + tuple(layer.units for layer in self.layers)

    def label(self, index: int) -> str:
        """Label of layer ``index`` (from 1), e.g. 'dense 4->5 tanh'."""
        layer = self.layers[index - 1]
        return f"dense {self.widths[index - 1]}->{layer.units} {layer.activation}"


@dataclass(frozen=True)
class DataSpec:
    kind: str  # random | csv | npz
    batch: int | None = None  # random only; None means "pick one"
    path: Path | None = None
    target: str | None = None
    rows: int | None = None


@dataclass(frozen=True)
class CodeSpec:
    file: Path
    layout: str = "rows"
    targets: str = "onehot"
    params: tuple[dict, ...] = ()  # per layer: {"W": name-or-path, "b": name-or-path}
    init: str | None = None
    loss: str = "loss"
    gradients: str | None = None
    step: str | None = None
    model: str | None = None
    backward: str | None = None
    grads: tuple[dict, ...] = ()

    @property
    def style(self) -> str:
        """functions | functions-step | object | object-step"""
        base = "object" if self.model else "functions"
        return base + ("-step" if self.step else "")


@dataclass(frozen=True)
class CheckSpec:
    method: str = "central"
    eps: float | None = None  # None: 1e-6 for float64 code, chosen for float32 code
    tolerance: float | None = None  # None: 1e-6 for float64 code, chosen for float32 code
    seed: int = 0
    timeout: float = 60.0


@dataclass(frozen=True)
class TrainSpec:
    lr: float = 0.1
    steps: int = 200
    batch: int | None = None


@dataclass(frozen=True)
class Config:
    path: Path
    name: str
    network: NetworkSpec
    data: DataSpec
    code: CodeSpec | None
    check: CheckSpec
    train: TrainSpec
    marks: dict = field(default_factory=dict, compare=False, repr=False)  # key path -> (line, col)

    def where(self, keypath: str) -> str:
        """'model.yaml:LINE:COL' of a key path such as 'code.gradients', for later errors."""
        line, col = self.marks.get(keypath, (None, None))
        return f"{self.path}:{line}:{col}" if line else str(self.path)

    def resolve(self, relative: Path | str) -> Path:
        return (self.path.parent / relative).resolve()


# ---------------------------------------------------------------- reading with positions


class _Reader:
    """Walks a composed YAML node tree, converting values and recording every key's position."""

    def __init__(self, path: Path):
        self.path = path
        self.marks: dict[str, tuple[int, int]] = {}

    def fail(self, node_or_mark, keypath: str, message: str):
        mark = getattr(node_or_mark, "start_mark", node_or_mark)
        loc = f"{self.path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(self.path)
        prefix = f"{keypath}: " if keypath else ""
        raise ConfigError(f"{prefix}{message}", loc)

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
                out[key] = _Located(self.value(value_node, child), value_node)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [
                _Located(self.value(item, f"{keypath}[{i}]"), item) for i, item in enumerate(node.value)
            ]
        return yaml.safe_load(yaml.serialize(node)) if node.tag != "tag:yaml.org,2002:str" else node.value


@dataclass
class _Located:
    value: Any
    node: Any


def _plain(located):
    """Strip positions: the plain Python value."""
    v = located.value if isinstance(located, _Located) else located
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _type_name(v) -> str:
    if v is None:
        return "nothing"
    if isinstance(v, bool):
        return f"{v!r}".lower()
    if isinstance(v, (dict,)):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    return repr(v)


class _Section:
    """One mapping of the config, with checked access to its keys."""

    def __init__(self, reader: _Reader, located: _Located, keypath: str, allowed: tuple[str, ...]):
        self.reader = reader
        self.keypath = keypath
        self.node = located.node
        if not isinstance(located.value, dict):
            reader.fail(located.node, keypath, f"expected a mapping, got {_type_name(_plain(located))}")
        self.items: dict[str, _Located] = located.value
        for key, item in self.items.items():
            if key not in allowed:
                hint = _did_you_mean(key, allowed)
                reader.fail(
                    _key_mark(located.node, key),
                    self.path(key),
                    f"unknown key; expected one of {', '.join(allowed)}{hint}",
                )

    def path(self, key: str) -> str:
        return f"{self.keypath}.{key}" if self.keypath else key

    def has(self, key: str) -> bool:
        return key in self.items

    def located(self, key: str) -> _Located:
        return self.items[key]

    def require(self, key: str) -> _Located:
        if key not in self.items:
            self.reader.fail(self.node, self.path(key), "missing; this key is required")
        return self.items[key]

    def fail(self, key: str, message: str):
        node = self.items[key].node if key in self.items else self.node
        self.reader.fail(node, self.path(key), message)

    def get(self, key: str, kind, default=None, *, minimum=None, positive=False, choices=None):
        if key not in self.items or self.items[key].value is None:
            return default
        v = _plain(self.items[key])
        if choices is not None:
            if not isinstance(v, str) or v not in choices:
                hint = _did_you_mean(str(v), choices)
                self.fail(key, f"expected one of {', '.join(choices)}; got {_type_name(v)}{hint}")
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
            self.fail(key, f"expected {expected}, got {_type_name(v)}")
        if positive and not v > 0:
            self.fail(key, f"expected a number above 0, got {_type_name(v)}")
        if minimum is not None and v < minimum:
            self.fail(key, f"expected at least {minimum}, got {_type_name(v)}")
        return v


def _key_mark(mapping_node, key):
    for key_node, _ in mapping_node.value:
        if key_node.value == key:
            return key_node.start_mark
    return mapping_node.start_mark


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ---------------------------------------------------------------- the schema


def load_config(path: str | Path) -> Config:
    """Read and validate a config file. Raises ConfigError with file:line:col."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such file", str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", str(path)) from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    reader = _Reader(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"invalid YAML: {problem}", where) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", str(path)) from None
    if root is None:
        raise ConfigError("the file is empty; expected a mapping with network: and data:", str(path))
    top = _Section(reader, _Located(reader.value(root, ""), root), "",
                   ("name", "network", "data", "code", "check", "train"))
    network = _network(_Section(reader, top.require("network"), "network",
                                ("input", "layers", "loss", "l2")))
    data = _data(_Section(reader, top.require("data"), "data", ("random", "csv", "npz", "target", "rows")))
    code = None
    if top.has("code"):
        code = _code(_Section(reader, top.located("code"), "code",
                              ("file", "layout", "targets", "params", "init", "loss", "gradients",
                               "step", "model", "backward", "grads")), len(network.layers))
    check = _check(_Section(reader, top.located("check"), "check",
                            ("method", "eps", "tolerance", "seed", "timeout"))) if top.has("check") else CheckSpec()
    train = _train(_Section(reader, top.located("train"), "train",
                            ("lr", "steps", "batch"))) if top.has("train") else TrainSpec()
    name = top.get("name", str, default=path.stem)
    return Config(path, name, network, data, code, check, train, marks=reader.marks)


def _network(sec: _Section) -> NetworkSpec:
    n_in = sec.get("input", int, minimum=1)
    if n_in is None:
        sec.require("input")
    layers_loc = sec.require("layers")
    if not isinstance(layers_loc.value, list) or not layers_loc.value:
        sec.fail("layers", "expected a list of layers such as {units: 5, activation: tanh}")
    layers = []
    for i, item in enumerate(layers_loc.value):
        lsec = _Section(sec.reader, item, f"network.layers[{i}]", ("units", "activation", "alpha"))
        units = lsec.get("units", int, minimum=1)
        if units is None:
            lsec.require("units")
        act = lsec.get("activation", str, default="identity", choices=ACTIVATIONS)
        alpha = lsec.get("alpha", float, default=0.01)
        if lsec.has("alpha") and act != "leaky_relu":
            lsec.fail("alpha", f"alpha is the slope of leaky_relu; this layer is {act}")
        if act == "softmax" and i != len(layers_loc.value) - 1:
            lsec.fail("activation", "softmax is allowed on the last layer only")
        layers.append(LayerSpec(units, act, alpha))
    reduction = "mean"
    loss_loc = sec.require("loss")
    if isinstance(loss_loc.value, dict):
        lsec = _Section(sec.reader, loss_loc, "network.loss", ("type", "reduction"))
        loss = lsec.get("type", str, choices=LOSSES)
        if loss is None:
            lsec.require("type")
        reduction = lsec.get("reduction", str, default="mean", choices=("mean", "sum"))
        if reduction != "mean" and loss != "mse":
            lsec.fail("reduction", f"reduction applies to mse only; {loss} is a mean over the batch")
    else:
        loss = sec.get("loss", str, choices=LOSSES)
    last = layers[-1]
    if loss == "cross_entropy" and last.activation != "softmax":
        sec.fail("loss", f"cross_entropy expects a softmax output layer; the last layer is {last.activation}")
    if loss == "binary_cross_entropy" and last.activation != "sigmoid":
        sec.fail("loss", "binary_cross_entropy expects a sigmoid output layer; "
                 f"the last layer is {last.activation}")
    l2 = sec.get("l2", float, default=0.0, minimum=0.0)
    return NetworkSpec(n_in, tuple(layers), loss, reduction, l2)


def _data(sec: _Section) -> DataSpec:
    sources = [k for k in ("random", "csv", "npz") if sec.has(k)]
    if len(sources) != 1:
        where = sources[1] if len(sources) > 1 else None
        msg = ("expected exactly one of random, csv, npz; got " + " and ".join(sources)) if sources \
            else "expected exactly one of random, csv, npz; got none"
        sec.reader.fail(sec.located(where).node if where else sec.node, sec.keypath, msg)
    kind = sources[0]
    if kind != "csv":
        for key in ("target", "rows"):
            if sec.has(key) and not (key == "rows" and kind == "npz"):
                sec.fail(key, f"{key} belongs to csv data; this data is {kind}")
    if kind == "random":
        loc = sec.located("random")
        batch = None
        if loc.value is not None:
            rsec = _Section(sec.reader, loc, "data.random", ("batch",))
            batch = rsec.get("batch", int, minimum=1)
        return DataSpec("random", batch=batch)
    path = sec.get(kind, str)
    if path is None:
        sec.fail(kind, f"expected the path of a {kind} file")
    if kind == "csv":
        target = sec.get("target", str)
        if target is None:
            sec.require("target")
    else:
        target = None
    rows = sec.get("rows", int, minimum=1)
    resolved = (sec.reader.path.parent / path)
    if not resolved.is_file():
        sec.fail(kind, f"no such file: {resolved}")
    return DataSpec(kind, path=resolved.resolve(), target=target, rows=rows)


def _code(sec: _Section, n_layers: int) -> CodeSpec:
    file = sec.get("file", str)
    if file is None:
        sec.require("file")
    resolved = sec.reader.path.parent / file
    if not resolved.is_file():
        sec.fail("file", f"no such file: {resolved}")
    layout = sec.get("layout", str, default="rows", choices=LAYOUTS)
    targets = sec.get("targets", str, default="onehot", choices=TARGETS)
    model = sec.get("model", str)
    names = {k: sec.get(k, str) for k in ("init", "loss", "gradients", "step", "backward")}
    if names["loss"] is None:
        sec.require("loss")
    params = _param_table(sec, "params", n_layers)
    grads = ()
    if model is None:
        for key in ("backward", "grads"):
            if sec.has(key):
                sec.fail(key, f"{key} belongs to object-style code (with model:); without model:, "
                              "use gradients: or step:")
        if (names["gradients"] is None) == (names["step"] is None):
            sec.reader.fail(sec.node, "code", "expected exactly one of gradients: or step:")
    else:
        if names["init"] is not None:
            sec.fail("init", "init belongs to function-style code; model: creates the parameters")
        if sec.has("gradients"):
            sec.fail("gradients", "object-style code (model:) reports gradients with backward: and grads:")
        if names["step"] is None:
            if names["backward"] is None:
                sec.reader.fail(sec.node, "code", "expected backward: (with grads:) or step: for model: code")
            grads = _param_table(sec, "grads", n_layers)
        elif names["backward"] is not None:
            sec.fail("backward", "expected one of backward: or step:, not both")
    return CodeSpec(resolved.resolve(), layout, targets, params, names["init"], names["loss"],
                    names["gradients"], names["step"], model, names["backward"], grads)


def _param_table(sec: _Section, key: str, n_layers: int) -> tuple[dict, ...]:
    loc = sec.require(key)
    if not isinstance(loc.value, list):
        sec.fail(key, "expected a list with one entry per layer, such as - {W: W1, b: b1}")
    if len(loc.value) != n_layers:
        sec.fail(key, f"expected {n_layers} entries (one per layer of network.layers), got {len(loc.value)}")
    table = []
    for i, item in enumerate(loc.value):
        psec = _Section(sec.reader, item, f"code.{key}[{i}]", ROLES)
        entry = {}
        for role in ROLES:
            name = psec.get(role, str)
            if name is None:
                psec.require(role)
            entry[role] = name
        table.append(entry)
    return tuple(table)


def _check(sec: _Section) -> CheckSpec:
    return CheckSpec(
        method=sec.get("method", str, default="central", choices=METHODS),
        eps=sec.get("eps", float, positive=True),
        tolerance=sec.get("tolerance", float, positive=True),
        seed=sec.get("seed", int, default=0),
        timeout=sec.get("timeout", float, default=60.0, positive=True),
    )


def _train(sec: _Section) -> TrainSpec:
    return TrainSpec(
        lr=sec.get("lr", float, default=0.1, positive=True),
        steps=sec.get("steps", int, default=200, minimum=1),
        batch=sec.get("batch", int, minimum=1),
    )
