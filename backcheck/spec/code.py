"""code: the implementation under test, its calling style and its parameter tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backcheck.spec.calls import Call, Calls, Sequence
from backcheck.spec.network import LayerSpec
from backcheck.spec.paths import mentions, parse_expr, parse_path
from backcheck.spec.reader import Section, plain, shown_path, type_name

LAYOUTS = ("rows", "columns")
TARGETS = ("onehot", "labels")
ROLES = ("W", "b")
ORIENTS = ("in_out", "out_in")
CODE_KEYS = ("file", "root", "import", "layout", "targets", "per_example", "gradient_of", "objects", "params",
             "model", "init", "forward", "loss", "gradients", "backward", "step", "grads", "chain", "place", "cwd")
PLACE_KEYS = ("forward", "loss", "backward", "data", "run")
CODE_SUFFIXES = (".py", ".ipynb")


@dataclass(frozen=True)
class LinesSpec:
    """Where a block of code is: lines of the file, or cells of a notebook (resolved once it is read).

    ``items``: ("lines", first, last) | ("cell", n, first or None, last or None) |
    ("tag", name, first or None, last or None); lines from 1, inclusive."""

    items: tuple
    text: str  # as the YAML wrote it, for messages
    key: str  # e.g. "code.place.backward"


@dataclass(frozen=True)
class PlaceSpec:
    """Binding by place (docs/binding.md, binding by place): the blocks of a script or notebook the check runs itself."""

    backward: LinesSpec
    forward: LinesSpec | None = None
    loss: LinesSpec | None = None
    value: str | None = None  # the loss after the blocks: a name or a Python expression
    data: tuple = ()  # (("X", name), ("Y", name)): the code's own inputs and targets
    run: Call | None = None  # a function to call (after importing the file) instead of running it as __main__


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
    place: PlaceSpec | None = None  # bound by place: lines or cells, not functions
    cwd: Path | None = None  # the code's working directory; None: the folder of code.file

    @property
    def notebook(self) -> bool:
        return self.file.suffix == ".ipynb"
    @property
    def style(self) -> str:
        """functions | object | chain | place, with -step when gradients are read from a step."""
        base = "place" if self.place else "chain" if self.chain else "object" if self.model else "functions"
        return base + ("-step" if self.uses_step else "")

    @property
    def uses_step(self) -> bool:
        if self.chain:
            back = self.chain.backward
            return back.lr is not None or mentions(back.args, "lr")
        return self.step is not None


def read_code(sec: Section, layers: tuple[LayerSpec, ...]) -> CodeSpec:
    file = sec.get("file", str, required=True, what="the path of the Python file (.py) to check")
    resolved = sec.reader.code_base / file
    _check_code_file(sec, file, resolved)
    root = None
    if sec.get("root", str, what="a folder") is not None:
        root = sec.reader.code_base / sec.get("root", str)
        if sec.reader.require_code and sec.on_disk("root", root) != "folder":
            sec.fail("root", f"no such folder: {shown_path(root)}")
        if root.resolve() not in resolved.resolve().parents and sec.reader.require_code:
            sec.fail("root", f"the folder {root} does not contain code.file {file}")
        root = root.resolve()
    cwd = None
    if sec.get("cwd", str, what="a folder") is not None:
        cwd = (sec.reader.code_base / sec.get("cwd", str)).resolve()
        if sec.reader.require_code and sec.on_disk("cwd", cwd) != "folder":
            sec.fail("cwd", f"no such folder: {shown_path(cwd)}")
    if sec.has("place"):
        return _placed(sec, layers, file, resolved, root, cwd)
    calls = Calls(sec)
    model = calls.get("model")
    objects = calls.objects()
    chain = _chain(Section(sec.reader, sec.located("chain"), "code.chain",
                           ("layers", "forward", "backward", "head", "loss", "loss_grad")), calls) \
        if sec.has("chain") else None
    spec_loss = sec.has("loss") and plain(sec.located("loss")) == "spec"
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
            sec.require("loss", "the name of the code's loss function (or loss: spec)")
    if chain is not None and chain.loss is None and not spec_loss:
        sec.reader.fail(sec.located("chain").node, "code.chain.loss", "missing; this key is required "
                        "(or loss: spec for code without a loss function)")
    if step is not None and step.lr is None and not mentions(step.args, "lr") and \
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
        sec.require("grads", _TABLE)
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
        spec_loss=spec_loss, file_given=file, objects=objects, cwd=cwd)


def _check_code_file(sec: Section, file: str, resolved: Path) -> None:
    """code.file names a .py file (that exists, unless the config is an assignment's)."""
    name = Path(file).name if file.strip() else ""
    if not name:
        sec.fail("file", f"expected the path of the Python file (.py) to check, got {file!r}")
    found = sec.on_disk("file", resolved) if sec.reader.require_code else "file"
    if found == "folder":
        sec.fail("file", f"expected a Python file (.py), got the folder {shown_path(resolved)}")
    if not name.endswith(CODE_SUFFIXES):
        sec.fail("file", f"expected a Python file ending in .py (or a notebook, .ipynb), got {shown_path(file)!r}")
    if found is None:
        sec.fail("file", f"no such file: {shown_path(resolved)}")


def chain_is_step(chain: ChainSpec) -> bool:
    return chain.backward.lr is not None or mentions(chain.backward.args, "lr")


def _per_example(sec: Section):
    if not sec.has("per_example"):
        return False
    v = plain(sec.located("per_example"))
    if v not in (True, False, "vector"):
        sec.fail("per_example", f"expected true, false or vector; got {type_name(v)}")
    return v


def _chain(sec: Section, calls: "Calls") -> ChainSpec:
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
        sec.require(key, "the name of a method or {call: NAME, args: [...]}")
    return ChainSpec(layers, calls.parse(sec.located("forward"), "code.chain.forward"),
                     calls.parse(sec.located("backward"), "code.chain.backward"),
                     calls.parse(sec.located("loss"), "code.chain.loss") if sec.has("loss") else None,
                     calls.parse(sec.located("loss_grad"), "code.chain.loss_grad"), head)


def _param_table(sec: Section, key: str, layers: tuple[LayerSpec, ...], orient: bool = True,
                 calls: "Calls | None" = None, expressions: bool = False) -> tuple[dict, ...]:
    """Per layer {"W": path, "b": path, "orient": ...}: from a list, or from one template mapping
    with {k} (layer from 1) and {i} (from 0)."""
    loc = sec.require(key, _TABLE)
    n_layers = len(layers)
    allowed = ROLES + (("orient",) if orient else ())
    if isinstance(loc.value, dict):
        psec = Section(sec.reader, loc, f"code.{key}", allowed)
        entries = [(psec, _roles(psec, allowed), True)] * n_layers
    elif isinstance(loc.value, list):
        if len(loc.value) != n_layers:
            sec.fail(key, f"expected {n_layers} entries (one per layer of network.layers), got {len(loc.value)}")
        entries = []
        for i, item in enumerate(loc.value):
            psec = Section(sec.reader, item, f"code.{key}[{i}]", allowed)
            entries.append((psec, _roles(psec, allowed), False))
    else:
        sec.fail(key, f"expected {_TABLE}, got {type_name(plain(loc))}")
    table = []
    for i, ((psec, raw, template), layer) in enumerate(zip(entries, layers)):
        entry = {}
        for role in ROLES:
            if role == "b" and not layer.bias:
                if "b" in raw and not template:
                    psec.fail("b", f"layer {i + 1} has bias: false in network:; remove b")
                continue
            if role not in raw:
                psec.get(role, str, required=True, what=_PATH)
            text = raw[role].replace("{k}", str(i + 1)).replace("{i}", str(i))
            if expressions:  # binding by place: a Python expression in the code's namespace
                _expression(psec, role, text)
                entry[role] = text
                continue
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


_TABLE = "a list with one entry per layer, such as - {W: W1, b: b1}, or one template such as {W: 'W{k}', b: 'b{k}'}"
_PATH = "a name or a path such as W1, layers[0].weights or params['W1']"


def _roles(psec: Section, allowed: tuple[str, ...]) -> dict:
    """The entry's keys that have a value (null is as good as absent)."""
    return {r: v for r in allowed if (v := psec.get(r, str, what=_PATH if r in ROLES else None)) is not None}


# ---------------------------------------------------------------- binding by place


def _placed(sec: Section, layers: tuple[LayerSpec, ...], file: str, resolved: Path, root, cwd) -> CodeSpec:
    """code: with place: (docs/binding.md, binding by place): blocks of lines, names in the code's namespace."""
    for key in ("model", "init", "forward", "loss", "gradients", "backward", "step", "chain", "objects",
                "per_example", "gradient_of"):
        if sec.has(key):
            sec.fail(key, f"{key} does not go with place:; place: says where the code's blocks are")
    psec = Section(sec.reader, sec.located("place"), "code.place", PLACE_KEYS)
    backward = _lines(psec, "backward", required=True)
    forward = _lines(psec, "forward") if psec.has("forward") else None
    loss, value, spec_loss = None, None, False
    if psec.has("loss"):
        raw = plain(psec.located("loss"))
        if raw == "spec":
            spec_loss = True
        elif isinstance(raw, dict):
            lsec = Section(sec.reader, psec.located("loss"), "code.place.loss", ("lines", "value", "cell", "tag"))
            if lsec.has("cell") or lsec.has("tag"):  # {cell: 5, lines: 8-9, value: ...}: lines inside a cell
                loss = _lines(psec, "loss", keep=("cell", "tag", "lines"))
            else:
                loss = _lines(lsec, "lines") if lsec.has("lines") else None
            value = lsec.get("value", str, required=True, what="the name (or a Python expression) of the loss")
            _expression(lsec, "value", value)
        else:
            psec.fail("loss", "expected spec, or {lines: LINES, value: NAME-OR-EXPRESSION} (the lines that compute "
                              "the loss and the name holding it; in a notebook {cell: N, lines: a-b, value: NAME})")
    else:
        psec.require("loss", "{lines: LINES, value: NAME}, or spec when the code computes no loss")
    data = ()
    if psec.has("data"):
        dsec = Section(sec.reader, psec.located("data"), "code.place.data", ("X", "Y"))
        data = tuple((k, dsec.get(k, str, what="a name in the code")) for k in ("X", "Y") if dsec.has(k))
        for k, name in data:
            _expression(dsec, k, name)
    run = None
    if psec.has("run"):
        run = Calls(sec).parse(psec.located("run"), "code.place.run")
    params = _param_table(sec, "params", layers)
    grads = _param_table(sec, "grads", layers, orient=False, expressions=True)
    place = PlaceSpec(backward, forward, loss, value, data, run)
    return CodeSpec(
        resolved.resolve() if resolved.exists() else resolved.absolute(),
        sec.get("layout", str, default="rows", choices=LAYOUTS),
        sec.get("targets", str, default="onehot", choices=TARGETS),
        params, grads=grads, root=root,
        import_mode=sec.get("import", str, default="all", choices=("all", "definitions")),
        spec_loss=spec_loss, file_given=file, place=place, cwd=cwd)


_LINES_HELP = ("LINES: 12, '12-20', a list of those, or in a notebook {cell: 3}, {cell: 3, lines: 2-9}, "
               "{tag: backward}")


def _lines(sec: Section, key: str, required: bool = False, keep: tuple = ()) -> LinesSpec:
    """A LINES value (docs/binding.md, binding by place); ``keep``: read only those keys of a mapping
    (the loss's {cell, lines} beside its value)."""
    if required:
        sec.require(key, _LINES_HELP)
    loc = sec.located(key)
    raw = plain(loc)
    if keep and isinstance(raw, dict):
        raw = {k: v for k, v in raw.items() if k in keep}
    keypath = sec.path(key)
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        sec.fail(key, f"expected {_LINES_HELP}")
    items = []
    for v in values:
        if isinstance(v, dict):
            extra = set(v) - {"cell", "tag", "lines"}
            if extra or ("cell" in v) == ("tag" in v):
                sec.fail(key, f"expected {{cell: N}} or {{tag: NAME}}, with lines: inside the cell if needed; got {v}")
            first, last = _range(sec, key, v["lines"]) if "lines" in v else (None, None)
            if "cell" in v:
                if not isinstance(v["cell"], int) or isinstance(v["cell"], bool) or v["cell"] < 1:
                    sec.fail(key, f"cell: expected the cell's number among the code cells, from 1; got {v['cell']!r}")
                items.append(("cell", v["cell"], first, last))
            else:
                if not isinstance(v["tag"], str) or not v["tag"].strip():
                    sec.fail(key, f"tag: expected the name of a cell's tag; got {v['tag']!r}")
                items.append(("tag", v["tag"].strip(), first, last))
        else:
            items.append(("lines",) + _range(sec, key, v))
    return LinesSpec(tuple(items), _show(raw), keypath)


def _range(sec: Section, key: str, v) -> tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        first = last = v
    elif isinstance(v, str) and v.replace(" ", "").replace("-", "").isdigit() and v.count("-") <= 1:
        a, _, b = v.replace(" ", "").partition("-")
        first, last = int(a), int(b or a)
    else:
        sec.fail(key, f"expected a line (12) or a range of lines ('12-20'), got {v!r}")
    if first < 1 or last < first:
        sec.fail(key, f"expected lines from 1 with the first no later than the last, got {v!r}")
    return first, last


def _show(raw) -> str:
    return ", ".join(str(x) for x in raw) if isinstance(raw, list) else str(raw)


def _expression(sec: Section, key: str, text: str) -> None:
    """A Python expression evaluated in the code's namespace: it must at least compile."""
    try:
        compile(text, f"<{sec.path(key)}>", "eval")
    except SyntaxError as exc:
        sec.fail(key, f"expected a name or a Python expression, got {text!r} ({exc.msg})")
