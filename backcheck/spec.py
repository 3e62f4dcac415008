"""The YAML config (contract section 1): read, validate, and point at the line of every mistake.

Errors read ``model.yaml:7:5: network.layers[1].activation: expected one of ...; got 'rleu'
(did you mean 'relu'?)``. This is the only module that imports ``yaml``.
"""

from __future__ import annotations

import difflib
import functools
import re
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
    bias: bool = True  # False: the layer has no bias parameter


@dataclass(frozen=True)
class NetworkSpec:
    input: int
    layers: tuple[LayerSpec, ...]
    loss: str
    reduction: str = "mean"  # mse only: mean over the batch, sum, or mean_all (over every element)
    l2: float = 0.0  # the loss has l2/2 * sum(W**2); {strength: s, half: false} is stored as l2 = 2s
    scale: float = 1.0  # the loss is multiplied by this (mse with 0.5 in front: 0.5)

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


@dataclass(frozen=True)
class ChainSpec:
    """A list of layer objects backcheck drives forward and backward itself."""

    layers: Any  # a Call or an EXPR giving the list, or a tuple of Calls/EXPRs (one per object)
    forward: Call
    backward: Call
    loss: Call | None
    loss_grad: Call
    head: Any = None  # a Call or an EXPR: the loss object, $head


@dataclass(frozen=True)
class CodeSpec:
    file: Path
    layout: str = "rows"
    targets: str = "onehot"
    params: tuple[dict, ...] = ()  # per layer: {"W": path, "b": path (absent without a bias), "orient": ...}
    init: Call | None = None
    loss: Call | None = None  # None: the loss comes from another call's `returns`
    gradients: Call | None = None
    step: Call | None = None
    model: Call | None = None
    backward: Call | None = None
    grads: tuple[dict, ...] = ()
    forward: Call | None = None
    chain: ChainSpec | None = None
    root: Path | None = None
    import_mode: str = "all"  # all | definitions
    per_example: str = "batch"  # batch | example | vector
    gradient_of: str = "mean"  # mean | sum
    spec_loss: bool = False  # loss: spec
    file_given: str = ""  # code.file as the YAML wrote it
    objects: tuple = ()  # ((name, Call or EXPR), ...) made once after model: and init:

    @property
    def style(self) -> str:
        """functions | object | chain, with -step when gradients are read from a step."""
        base = "chain" if self.chain else "object" if self.model else "functions"
        return base + ("-step" if self.uses_step else "")

    @property
    def uses_step(self) -> bool:
        if self.chain:
            back = self.chain.backward
            return back.lr is not None or _mentions(back.args, "lr")
        return self.step is not None


def _mentions(expr, name: str) -> bool:
    if isinstance(expr, str):
        return expr.startswith("$" + name) and not expr.startswith("$$") and \
            parse_expr(expr)[0] == name
    if isinstance(expr, (list, tuple)):
        return any(_mentions(e, name) for e in expr)
    if isinstance(expr, dict):
        return any(_mentions(e, name) for e in expr.values())
    return False


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


def load_config(path: str | Path, code_base: Path | None = None, require_code: bool = True) -> Config:
    """Read and validate a config file. Raises ConfigError with file:line:col."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such file", str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", str(path)) from None
    return parse_config(text, path, code_base, require_code)


def parse_config(text: str, path: Path, code_base: Path | None = None, require_code: bool = True) -> Config:
    """The config in ``text``, read from ``path``. ``code_base``: the folder code.file is relative to,
    when it is not the YAML's own (``backcheck grade`` reads each submission's code from its folder);
    ``require_code`` False checks everything but the existence of code.file and code.root."""
    reader = _Reader(path, code_base, require_code)
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
                                ("input", "bias", "layers", "loss", "l2")))
    data = _data(_Section(reader, top.require("data"), "data", ("random", "csv", "npz", "target", "rows")))
    code = None
    if top.has("code"):
        code = _code(_Section(reader, top.located("code"), "code",
                              ("file", "root", "import", "layout", "targets", "per_example", "gradient_of", "objects",
                               "params", "model", "init", "forward", "loss", "gradients", "backward",
                               "step", "grads", "chain")), network.layers)
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
    bias = sec.get("bias", bool, default=True)
    for i, item in enumerate(layers_loc.value):
        lsec = _Section(sec.reader, item, f"network.layers[{i}]", ("units", "activation", "alpha", "bias"))
        units = lsec.get("units", int, minimum=1)
        if units is None:
            lsec.require("units")
        act = lsec.get("activation", str, default="identity", choices=ACTIVATIONS)
        alpha = lsec.get("alpha", float, default=0.01)
        if lsec.has("alpha") and act != "leaky_relu":
            lsec.fail("alpha", f"alpha is the slope of leaky_relu; this layer is {act}")
        if act == "softmax" and i != len(layers_loc.value) - 1:
            lsec.fail("activation", "softmax is allowed on the last layer only")
        layers.append(LayerSpec(units, act, alpha, lsec.get("bias", bool, default=bias)))
    reduction, scale = "mean", 1.0
    loss_loc = sec.require("loss")
    if isinstance(loss_loc.value, dict):
        lsec = _Section(sec.reader, loss_loc, "network.loss", ("type", "reduction", "scale"))
        loss = lsec.get("type", str, choices=LOSSES)
        if loss is None:
            lsec.require("type")
        reduction = lsec.get("reduction", str, default="mean", choices=("mean", "sum", "mean_all"))
        scale = lsec.get("scale", float, default=1.0, positive=True)
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
    if sec.has("l2") and isinstance(sec.located("l2").value, dict):
        l2sec = _Section(sec.reader, sec.located("l2"), "network.l2", ("strength", "half"))
        strength = l2sec.get("strength", float, minimum=0.0)
        if strength is None:
            l2sec.require("strength")
        l2 = strength if l2sec.get("half", bool, default=True) else 2.0 * strength
    else:
        l2 = sec.get("l2", float, default=0.0, minimum=0.0)
    return NetworkSpec(n_in, tuple(layers), loss, reduction, l2, scale)


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


def _code(sec: _Section, layers: tuple[LayerSpec, ...]) -> CodeSpec:
    file = sec.get("file", str)
    if file is None:
        sec.require("file")
    resolved = sec.reader.code_base / file
    if sec.reader.require_code and not resolved.is_file():
        sec.fail("file", f"no such file: {resolved}")
    root = None
    if sec.has("root"):
        root = sec.reader.code_base / sec.get("root", str)
        if sec.reader.require_code and not root.is_dir():
            sec.fail("root", f"no such folder: {root}")
        if root.resolve() not in resolved.resolve().parents and sec.reader.require_code:
            sec.fail("root", f"the folder {root} does not contain code.file {file}")
        root = root.resolve()
    calls = _Calls(sec)
    model = calls.get("model")
    objects = calls.objects()
    chain = _chain(_Section(sec.reader, sec.located("chain"), "code.chain",
                            ("layers", "forward", "backward", "head", "loss", "loss_grad")), calls) \
        if sec.has("chain") else None
    spec_loss = sec.has("loss") and _plain(sec.located("loss")) == "spec"
    init, forward = calls.get("init"), calls.get("forward", many=True)
    loss = None if spec_loss else calls.get("loss", many=True)
    gradients, step, backward = (calls.get(k, many=True) for k in ("gradients", "step", "backward"))
    if chain is not None:
        for key in ("model", "init", "gradients", "step", "backward", "forward", "loss"):
            if sec.has(key) and not (key == "loss" and spec_loss):
                sec.fail(key, f"{key} does not go with chain:; the chain's own keys say how it is called")
    elif model is None:
        for key in ("backward",):
            if sec.has(key):
                sec.fail(key, f"{key} belongs to object-style code (with model:); without model:, "
                              "use gradients: or step:")
        if gradients is not None and step is not None:
            sec.reader.fail(sec.node, "code", "expected exactly one of gradients: or step:, not both")
    else:
        if sec.has("gradients"):
            sec.fail("gradients", "object-style code (model:) reports gradients with backward: and grads:")
        if backward is not None and step is not None:
            sec.fail("backward", "expected one of backward: or step:, not both")
    has_grads = sec.has("grads")
    producer = gradients or backward or step
    if producer is None and chain is None:
        if loss is None or not (has_grads and loss.names):
            want = "backward: (with grads:) or step:" if model else "gradients: or step:"
            sec.reader.fail(sec.node, "code", f"expected {want}, or a loss: whose returns: give the "
                                              "gradients (read with grads:)")
    if not spec_loss and loss is None and chain is None:
        if not (producer is not None and "loss" in producer.names):
            sec.require("loss")
    if chain is not None and chain.loss is None and not spec_loss:
        sec.reader.fail(sec.located("chain").node, "code.chain.loss", "missing; this key is required "
                        "(or loss: spec for code without a loss function)")
    if step is not None and step.lr is None and not _mentions(step.args, "lr") and \
            (isinstance(step, Sequence) or step.args is not None):
        sec.fail("step", "this step takes no $lr argument: say where backcheck writes the learning rate "
                         "(lr: a path such as $module.LEARNING_RATE or layers[*].optimizer.lr) or give the "
                         "code's fixed rate (lr: 0.1)")
    params = _param_table(sec, "params", layers, calls=calls)
    grads = ()
    needs_grads = (chain is not None and not chain_is_step(chain)) or backward is not None or \
        (producer is None and chain is None)
    if has_grads:
        if step is not None or (chain is not None and chain_is_step(chain)):
            sec.fail("grads", "a step's gradients are read from the update of the parameters; remove grads:")
        grads = _param_table(sec, "grads", layers, orient=False, calls=calls)
    elif needs_grads:
        sec.require("grads")
    calls.check_names(chain is not None)
    if sec.has("gradient_of") and sec.get("gradient_of", str, choices=("mean", "sum")) == "sum" \
            and _per_example(sec) is not False:
        sec.fail("gradient_of", "gradient_of: sum is for code that takes the whole batch; with per_example "
                                "backcheck averages the examples' gradients itself")
    return CodeSpec(
        resolved.resolve() if resolved.exists() else resolved.absolute(),
        sec.get("layout", str, default="rows", choices=LAYOUTS),
        sec.get("targets", str, default="onehot", choices=TARGETS),
        params, init, loss, gradients, step, model, backward, grads, forward, chain, root,
        import_mode=sec.get("import", str, default="all", choices=("all", "definitions")),
        per_example={False: "batch", True: "example", "vector": "vector"}[_per_example(sec)],
        gradient_of=sec.get("gradient_of", str, default="mean", choices=("mean", "sum")),
        spec_loss=spec_loss, file_given=file, objects=objects)


def chain_is_step(chain: ChainSpec) -> bool:
    return chain.backward.lr is not None or _mentions(chain.backward.args, "lr")


def _per_example(sec: _Section):
    if not sec.has("per_example"):
        return False
    v = _plain(sec.located("per_example"))
    if v not in (True, False, "vector"):
        sec.fail("per_example", f"expected true, false or vector; got {_type_name(v)}")
    return v


def _chain(sec: _Section, calls: "_Calls") -> ChainSpec:
    layers_loc = sec.require("layers")
    if isinstance(layers_loc.value, list):
        if not layers_loc.value:
            sec.fail("layers", "expected the layer objects, input side first")
        layers = tuple(calls.call_or_expr(item, f"code.chain.layers[{i}]")
                       for i, item in enumerate(layers_loc.value))
    else:
        layers = calls.call_or_expr(layers_loc, "code.chain.layers")
    head = calls.call_or_expr(sec.located("head"), "code.chain.head") if sec.has("head") else None
    for key in ("forward", "backward", "loss_grad"):
        sec.require(key)
    return ChainSpec(layers, calls.parse(sec.located("forward"), "code.chain.forward"),
                     calls.parse(sec.located("backward"), "code.chain.backward"),
                     calls.parse(sec.located("loss"), "code.chain.loss") if sec.has("loss") else None,
                     calls.parse(sec.located("loss_grad"), "code.chain.loss_grad"), head)


class _Calls:
    """Reads call keys (a NAME or {call:, args:, kwargs:, returns:, result:, lr:}) and checks that
    every $name an EXPR uses is defined somewhere."""

    KEYS = ("call", "args", "kwargs", "returns", "result", "lr")

    def __init__(self, sec: _Section):
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

    def parse(self, loc: _Located, keypath: str) -> Call:
        if isinstance(loc.value, str):
            self._expr_or_name(loc, keypath)
            return Call(loc.value, keypath)
        sub = _Section(self.reader, loc, keypath, self.KEYS)
        name = sub.get("call", str)
        if name is None:
            sub.require("call")
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
            names = [_plain(i) for i in items] if items is not None else [_plain(r)]
            for n in names:
                if not isinstance(n, str) or not n.isidentifier():
                    sub.fail("returns", f"expected a name or a list of names; got {_type_name(n)}")
                if n in BUILTIN_NAMES or n in CHAIN_NAMES:
                    sub.fail("returns", f"'{n}' is a name backcheck defines (${n}); choose another")
            returns = tuple(names) if items is not None else ("*" + names[0],)
            self.defined.update(n for n in names if n != "_")
        result = self._walk(sub.located("result"), f"{keypath}.result") if sub.has("result") else None
        lr = None
        if sub.has("lr"):
            v = _plain(sub.located("lr"))
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
                lr = float(v)
            elif isinstance(v, str) or (isinstance(v, list) and v and all(isinstance(x, str) for x in v)):
                texts = [v] if isinstance(v, str) else v
                for t in texts:
                    self._path(t, sub.located("lr").node, f"{keypath}.lr")
                lr = tuple(texts)
            else:
                sub.fail("lr", "expected a path where the learning rate is written, a list of paths, "
                               f"or the code's fixed learning rate (a number above 0); got {_type_name(v)}")
        return Call(name, keypath, args, kwargs, returns, result, lr)

    def call_or_expr(self, loc: _Located, keypath: str):
        if isinstance(loc.value, str) and loc.value.startswith("$"):
            return self._walk(loc, keypath)
        return self.parse(loc, keypath)

    def _expr_or_name(self, loc: _Located, keypath: str) -> None:
        text = loc.value
        if text.startswith("$"):
            self._walk(loc, keypath)
        elif not text.isidentifier():
            self.reader.fail(loc.node, keypath, f"expected a name or a $-path, got {text!r}")

    def _walk(self, loc: _Located, keypath: str):
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
                hint = f" (did you mean '{same[0]}'?)" if same else _did_you_mean(root, sorted(known))
                self.reader.fail(node, keypath, f"${root} is not defined: expected one of backcheck's names "
                                 f"({', '.join('$' + n for n in BUILTIN_NAMES)}) or a name from a "
                                 f"returns:{hint}")


def _param_table(sec: _Section, key: str, layers: tuple[LayerSpec, ...], orient: bool = True,
                 calls: "_Calls | None" = None) -> tuple[dict, ...]:
    """Per layer {"W": path, "b": path, "orient": ...}: from a list, or from one template mapping
    with {k} (layer from 1) and {i} (from 0)."""
    loc = sec.require(key)
    n_layers = len(layers)
    allowed = ROLES + (("orient",) if orient else ())
    if isinstance(loc.value, dict):
        psec = _Section(sec.reader, loc, f"code.{key}", allowed)
        entries = [(psec, {r: psec.get(r, str) for r in allowed if psec.has(r)}, True)] * n_layers
    elif isinstance(loc.value, list):
        if len(loc.value) != n_layers:
            sec.fail(key, f"expected {n_layers} entries (one per layer of network.layers), got {len(loc.value)}")
        entries = []
        for i, item in enumerate(loc.value):
            psec = _Section(sec.reader, item, f"code.{key}[{i}]", allowed)
            entries.append((psec, {r: psec.get(r, str) for r in allowed if psec.has(r)}, False))
    else:
        sec.fail(key, "expected a list with one entry per layer, such as - {W: W1, b: b1}, or one "
                      "template such as {W: 'W{k}', b: 'b{k}'}")
    table = []
    for i, ((psec, raw, template), layer) in enumerate(zip(entries, layers)):
        entry = {}
        for role in ROLES:
            if role == "b" and not layer.bias:
                if "b" in raw and not template:
                    psec.fail("b", f"layer {i + 1} has bias: false in network:; remove b")
                continue
            if role not in raw:
                psec.require(role)
            text = raw[role].replace("{k}", str(i + 1)).replace("{i}", str(i))
            try:
                parse_expr(text) if text.startswith("$") else parse_path(text)
            except ValueError as exc:
                psec.fail(role, str(exc))
            if calls is not None:  # a $name in a table is checked like one in a call's arguments
                calls.note_table(text, psec.located(role).node, psec.path(role))
            entry[role] = text
        if "orient" in raw:
            if raw["orient"] not in ORIENTS:
                psec.fail("orient", f"expected one of {', '.join(ORIENTS)}; got {raw['orient']!r}")
            entry["orient"] = raw["orient"]
        table.append(entry)
    return tuple(table)


ORIENTS = ("in_out", "out_in")

# ---------------------------------------------------------------- paths and expressions

WILDCARD = "*"  # [*] in a path: every element of a list

_TOKEN = re.compile(r"""\s*(?:\.?([A-Za-z_]\w*)|\[\s*(-?\d+)\s*\]|\[\s*(\*)\s*\]|\[\s*(['"])(.*?)\4\s*\])""")


@functools.lru_cache(maxsize=4096)  # paths are read on every call into the code: parse each once
def parse_path(text: str) -> tuple:
    """'layers[0].weights' -> ('layers', 0, 'weights'); "params['W1']" -> ('params', 'W1');
    'layers[*].lr' -> ('layers', '*' , 'lr') (every element)."""
    pos, parts = 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot read '{text}' at position {pos + 1}: expected a name, [index] or ['key']")
        name, index, star, _, key = m.groups()
        parts.append(name if name is not None else int(index) if index is not None else
                     WILDCARD if star else key)
        pos = m.end()
    if not parts:
        raise ValueError("empty path")
    return tuple(parts)


@functools.lru_cache(maxsize=4096)
def parse_expr(text: str) -> tuple[str, tuple]:
    """'$grads['dW1']' -> ('grads', ['dW1']); '$module.LR' -> ('module', ['LR'])."""
    m = re.match(r"\$([A-Za-z_]\w*)", text)
    if not m:
        raise ValueError(f"cannot read '{text}': expected $name, such as $X or $grads['dW1']")
    rest = text[m.end():]
    return m.group(1), (parse_path(rest) if rest.strip() else ())


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
