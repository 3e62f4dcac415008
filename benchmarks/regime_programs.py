"""The programs of the regime matrix (benchmarks/regimes.py): one student-style template for a
6 -> 5 -> 5 -> 3 network, composed per numerical regime (dtype, calling style, initial weights,
loss, data), with one planted mistake or none.

A ``Program`` writes its own source, YAML and npz. Its float64 *twin* is the same program with
the regime's dtype taken away (no casts, no patched numpy); the twins of a program and of its
correct sibling give the mistake's true size, ||g_wrong - g_right|| / ||g_right|| in float64.
"""

from __future__ import annotations

import types
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

N_INPUT, HIDDEN = 6, (5, 5)  # layer 2 is square: a transposed gradient keeps its shape
BATCH = 9  # differs from 1, the input size and every width
LAMBDA = 0.01
NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")


@dataclass(frozen=True)
class Regime:
    name: str
    # float64 | float32 (arrays) | cast32 | cast16 (float64 params, cast inside) | patched (coursekit);
    # unpatched: the float64 twin of patched (the same np.dot and randn code, numpy left alone)
    dtype: str = "float64"
    style: str = "functions"  # functions | step | per_example | object
    acts: tuple = ("sigmoid", "tanh", "relu")  # hidden activations, cycled over the programs
    losses: tuple = ("ce",)  # ce | ce_eps | ce_clip (softmax) | bce_clip (one sigmoid unit)
    scales: tuple = (None, None, None)  # initial weight scale per layer; None: 1/sqrt(fan_in)
    data: str = "normal"  # normal | kinks | stabilised | clipped


REGIMES = {r.name: r for r in (
    Regime("float64"),
    Regime("float32-arrays", dtype="float32"),
    Regime("float32-in-float64", dtype="cast32"),
    Regime("float16", dtype="cast16"),
    Regime("numpy-patched", dtype="patched"),
    Regime("kinks", acts=("relu",), data="kinks"),
    Regime("saturated", acts=("sigmoid", "tanh"), scales=(4.0, 4.0, None)),
    Regime("clipped", losses=("bce_clip",), scales=(3.0, 3.0, 20.0), data="clipped"),
    Regime("stabilised", losses=("ce_eps", "ce_clip"), scales=(None, None, 6.0), data="stabilised"),
    Regime("step", style="step"),
    Regime("per-example", style="per_example"),
    Regime("object", style="object"),
)}

# Mistakes that are not in the catalog: small errors whose size decides whether they can be seen.
MUTANTS = ("mutant/dw-entry", "mutant/db-entry", "mutant/unit-derivative")
GLOBAL = ("scale/batch-sum", "scale/sign", "scale/constant", "regularization/missing")


@dataclass(frozen=True)
class Program:
    regime: Regime
    mistake: str  # "correct", a catalog id or a mutant id
    layer: int | None  # where it is planted; None for the global ones
    act: str  # hidden activation
    loss: str
    l2: bool = False
    bind_step: bool = False  # object style: bind train_step instead of backward + grads

    @property
    def name(self) -> str:
        slug = self.mistake.replace("/", "__").replace("-", "_")
        where = f"_L{self.layer}" if self.layer else ""
        extra = ("_l2" if self.l2 else "") + ("_step" if self.bind_step else "")
        loss = f"_{self.loss}" if len(self.regime.losses) > 1 else ""
        return f"{slug}{where}_{self.act}{loss}{extra}"

    @property
    def wrong(self) -> bool:
        return self.mistake != "correct"

    @property
    def output(self) -> str:
        return "sigmoid" if self.loss == "bce_clip" else "softmax"

    @property
    def widths(self) -> tuple:
        return (N_INPUT, *HIDDEN, 1 if self.output == "sigmoid" else 3)

    def act_of(self, k: int) -> str:
        return self.act if k < 3 else self.output

    def correct(self) -> "Program":
        return replace(self, mistake="correct", layer=None, bind_step=False)

    def twin(self) -> "Program":
        randn = self.regime.dtype in ("patched", "unpatched")
        return replace(self, regime=replace(self.regime, dtype="unpatched" if randn else "float64"))


# ---------------------------------------------------------------- which mistakes exist where

def applies(regime: Regime, mistake: str, layer: int | None, act: str) -> bool:
    """Whether the mistake can be written at that layer of this regime's program."""
    loss = regime.losses[0]
    out_sigmoid = loss == "bce_clip"
    layer_act = act if layer is None or layer < 3 else ("sigmoid" if out_sigmoid else "softmax")
    if mistake == "activation-derivative/of-output":
        return layer_act in ("sigmoid", "tanh")
    if mistake in ("activation-derivative/of-upstream", "activation-derivative/missing",
                   "activation-derivative/formula", "bias-gradient/before-activation"):
        return layer_act != "softmax"
    if mistake in ("activation-derivative/wrong-layer", "mutant/unit-derivative"):
        return layer in (1, 2)
    if mistake == "weight-gradient/transposed":
        return layer == 2
    if mistake == "loss-derivative/softmax-twice":
        return not out_sigmoid
    if mistake == "scale/batch-sum":
        return regime.style != "per_example"  # one example at a time has nothing to average
    if mistake == "step/stale-weights":
        return regime.style in ("step", "object") and layer in (2, 3)
    return True


# ---------------------------------------------------------------- source text

class _Source:
    """Writes one program. The forward and backward lines are shared by every calling style."""

    def __init__(self, p: Program):
        self.p, self.r = p, p.regime
        self.one = p.regime.style == "per_example"
        self.X, self.Y = ("x", "y") if self.one else ("X", "Y")
        self.randn = p.regime.dtype in ("patched", "unpatched")  # course style: np.dot, np.random.randn
        self.F = {"float32": "np.float32", "cast32": "np.float32", "cast16": "np.float16"}.get(self.r.dtype)

    def planted(self, k: int | None = None) -> str:
        """The mistake when it is planted here (or globally), else 'correct'."""
        p = self.p
        return p.mistake if p.layer == k else "correct"

    def mm(self, a: str, b: str) -> str:
        return f"np.dot({a}, {b})" if self.randn else f"{a} @ {b}"

    def a(self, k: int) -> str:
        return "P" if k == 3 else f"A{k}"

    # -- pieces
    def helpers(self) -> list[str]:
        out = ["def sigmoid(z):", "    return 1 / (1 + np.exp(-z))", "", "",
               "def relu(z):", "    return np.maximum(0, z)", "", ""]
        if self.p.output == "softmax":
            out += ["def softmax(z):", "    e = np.exp(z - np.max(z, axis=1, keepdims=True))",
                    "    return e / np.sum(e, axis=1, keepdims=True)", "", ""]
        return out

    def init_lines(self) -> list[str]:
        """Body of init_params(seed): the weights in order W1, W2, W3, zero biases."""
        w = self.p.widths
        if self.randn:
            out = []
            for k in (1, 2, 3):
                out += [f"    params['W{k}'] = 0.01 * np.random.randn({w[k - 1]}, {w[k]})",
                        f"    params['b{k}'] = np.zeros({w[k]})"]
            return out
        out = ["    rng = np.random.default_rng(seed)"]
        for k in (1, 2, 3):
            scale = self.r.scales[k - 1]
            s = f"np.sqrt(1 / {w[k - 1]})" if scale is None else f"{scale}"
            if self.r.dtype == "float32":
                out += [f"    params['W{k}'] = (rng.standard_normal(({w[k - 1]}, {w[k]})) * {s}).astype(np.float32)",
                        f"    params['b{k}'] = np.zeros({w[k]}, dtype=np.float32)"]
            else:
                out += [f"    params['W{k}'] = rng.standard_normal(({w[k - 1]}, {w[k]})) * {s}",
                        f"    params['b{k}'] = np.zeros({w[k]})"]
        return out

    def activate(self, k: int, z: str) -> str:
        act = self.p.act_of(k)
        return {"sigmoid": f"sigmoid({z})", "tanh": f"np.tanh({z})", "relu": f"relu({z})",
                "softmax": f"softmax({z})"}[act]

    def forward_lines(self) -> list[str]:
        X = self.X
        prev, out = X, []
        for k in (1, 2, 3):
            out.append(f"Z{k} = {self.mm(prev, f'W{k}')} + b{k}")
            out.append(f"{self.a(k)} = {self.activate(k, f'Z{k}')}")
            prev = self.a(k)
        return out

    def per_n(self) -> str:
        return "" if self.one else " / N"

    def loss_expr(self) -> str:
        Y, n = self.Y, self.per_n()
        return {"ce": f"-np.sum({Y} * np.log(P)){n}",
                "ce_eps": f"-np.sum({Y} * np.log(P + 1e-7)){n}",
                "ce_clip": f"-np.sum({Y} * np.log(np.clip(P, 1e-7, 1 - 1e-7))){n}",
                "bce_clip": f"-np.sum({Y} * np.log(Pc) + (1 - {Y}) * np.log(1 - Pc)){n}"}[self.p.loss]

    def loss_lines(self) -> list[str]:
        out = ["Pc = np.clip(P, 1e-10, 1 - 1e-10)"] if self.p.loss == "bce_clip" else []
        out.append(f"cost = {self.loss_expr()}")
        if self.p.l2:
            out.append("cost = cost + LAMBDA / 2 * (np.sum(W1 ** 2) + np.sum(W2 ** 2) + np.sum(W3 ** 2))")
        return out

    def right_derivative(self, k: int, j: int | None = None) -> str:
        """f'(z_k) as students write it, from layer j's values (j = k when right)."""
        j = k if j is None else j
        act, A = self.p.act_of(k), self.a(j)
        return {"sigmoid": f"{A} * (1 - {A})", "tanh": f"(1 - {A} ** 2)", "relu": f"(Z{j} > 0)"}[act]

    def delta_lines(self, k: int) -> list[str]:
        """dZk from dAk through layer k's activation (every hidden layer; the output if sigmoid)."""
        act, A, G = self.p.act_of(k), self.a(k), f"dA{k}"
        m = self.planted(k)
        deriv = {
            "activation-derivative/of-output": {"sigmoid": f"sigmoid({A}) * (1 - sigmoid({A}))",
                                                "tanh": f"(1 - np.tanh({A}) ** 2)"}.get(act),
            "activation-derivative/of-upstream": {"sigmoid": f"sigmoid({G}) * (1 - sigmoid({G}))",
                                                  "tanh": f"(1 - np.tanh({G}) ** 2)", "relu": f"({G} > 0)"}[act],
            "activation-derivative/missing": None,
            "activation-derivative/wrong-layer": self.right_derivative(k, 2 if k == 1 else 1),
            "activation-derivative/formula": {"sigmoid": f"(1 - {A})", "tanh": f"(1 - {A})", "relu": A}[act],
        }.get(m, self.right_derivative(k))
        out = [f"dZ{k} = {G}" + (f" * {deriv}" if deriv else "")]
        if m == "mutant/unit-derivative":
            out.append(f"dZ{k}[:, 2] = {G}[:, 2]")
        return out

    def output_lines(self) -> list[str]:
        """The gradient at the output: dZ3 for softmax + cross-entropy, dA3 then dZ3 for a sigmoid."""
        g = self.planted()
        n = self.per_n()
        if self.p.output == "softmax":
            P, Y = "P", self.Y
            delta = {"scale/batch-sum": f"({P} - {Y})", "scale/sign": f"({Y} - {P}){n}",
                     "scale/constant": f"({P} - {Y}){n} / {self.X}.shape[1]"}.get(g, f"({P} - {Y}){n}")
            if self.planted(3) == "loss-derivative/softmax-twice":
                delta += " * P * (1 - P)"
            return [f"dZ3 = {delta}"]
        Y = self.Y
        dp = {"scale/sign": f"({Y} / Pc - (1 - {Y}) / (1 - Pc))"}.get(g, f"(-{Y} / Pc + (1 - {Y}) / (1 - Pc))")
        dp += {"scale/batch-sum": "", "scale/constant": f"{n} / {self.X}.shape[1]"}.get(g, n)
        return ["Pc = np.clip(P, 1e-10, 1 - 1e-10)", f"dA3 = {dp}", *self.delta_lines(3)]

    def grad_lines(self, update=None) -> list[str]:
        """dW1..db3. ``update(k)`` gives the lines that apply layer k's step at once (stale weights)."""
        p, out = self.p, self.output_lines()
        last_col = 0 if p.widths[-1] == 1 else 2
        for k in (3, 2, 1):
            m = self.planted(k)
            prev = self.X if k == 1 else f"A{k - 1}"
            if self.one:
                dw = f"np.outer(dZ{k}, {prev})" if m == "weight-gradient/transposed" else f"np.outer({prev}, dZ{k})"
            else:
                dw = self.mm(f"dZ{k}.T", prev) if m == "weight-gradient/transposed" else self.mm(f"{prev}.T", f"dZ{k}")
            if p.l2 and p.mistake != "regularization/missing":
                dw += f" + LAMBDA * W{k}"
            src = f"dA{k}" if m == "bias-gradient/before-activation" else f"dZ{k}"
            db = f"{src}[0]" if self.one else f"np.sum({src}, axis=0)"
            out += [f"dW{k} = {dw}", f"db{k} = {db}"]
            col = last_col if k == 3 else 2
            if m == "mutant/dw-entry":
                out.append(f"dW{k}[1, {col}] *= 1.01")
            if m == "mutant/db-entry":
                out.append(f"db{k}[{col}] *= 1.02")
            if update is not None and m == "step/stale-weights":
                out += update(k)
            if k > 1:
                out.append(f"dA{k - 1} = {self.mm(f'dZ{k}', f'W{k}.T')}")
                out += self.delta_lines(k - 1)
        return out

    # -- calling styles
    def header(self) -> list[str]:
        p, r = self.p, self.r
        where = f" at layer {p.layer}" if p.layer else ""
        what = f"planted: {p.mistake}{where}" if p.wrong else "a correct program"
        doc = [f'"""Regime {r.name}: {"-".join(map(str, p.widths))} network, {p.act} hidden layers, '
               f'{p.loss} loss{" + L2" if p.l2 else ""} ({what}).', "",
               "Generated by benchmarks/regimes.py; rerun with  backcheck verify THIS_FILE.yaml", '"""',
               "import numpy as np"]
        if r.dtype == "patched":
            doc.append("import coursekit  # noqa: F401  the course's helpers")
        if p.l2:
            doc += ["", f"LAMBDA = {LAMBDA}"]
        return doc + ["", ""]

    def cast_in(self) -> list[str]:
        X, Y = self.X, self.Y
        out = [f"{X} = {X}.astype({self.F})", f"{Y} = {Y}.astype({self.F})"] if self.F else []
        return out + ([] if self.one else [f"N = {X}.shape[0]"])

    def unpack(self, source: str) -> str:
        cast = f".astype({self.F})" if self.r.dtype in ("cast32", "cast16") else ""
        return f"W1, b1, W2, b2, W3, b3 = [{source}[k]{cast} for k in {NAMES}]"

    def ret_loss(self) -> str:
        return "return float(cost)" if self.r.dtype in ("cast32", "cast16") else "return cost"

    def functions(self) -> str:
        X, Y, ind = self.X, self.Y, "    "
        init_sig = "def init_params():" if self.randn else "def init_params(seed=0):"
        lines = self.header() + self.helpers() + [init_sig, "    params = {}", *self.init_lines(),
                                                  "    return params", "", ""]
        lines += [f"def forward(params, {X}):", ind + self.unpack("params"),
                  *[ind + s for s in self.forward_lines()], ind + "return Z1, A1, Z2, A2, Z3, P", "", ""]
        body = [*self.cast_in(), self.unpack("params"), f"Z1, A1, Z2, A2, Z3, P = forward(params, {X})"]
        head = body if self.p.l2 else [body[i] for i in range(len(body)) if i != len(body) - 2]  # W only for L2
        lines += [f"def loss(params, {X}, {Y}):", *[ind + s for s in head + self.loss_lines()],
                  ind + self.ret_loss(), "", ""]
        if self.r.style == "step":
            def update(k):
                return [f"params['W{k}'] -= lr * dW{k}", f"params['b{k}'] -= lr * db{k}"]
            early = [k for k in (1, 2, 3) if self.planted(k) == "step/stale-weights"]
            late = [s for k in (1, 2, 3) if k not in early for s in update(k)]
            lines += [f"def step(params, {X}, {Y}, lr):", *[ind + s for s in body + self.grad_lines(update) + late],
                      ""]
        else:
            ret = "return {" + ", ".join(f"'{n}': d{n}" for n in NAMES) + "}"
            lines += [f"def gradients(params, {X}, {Y}):", *[ind + s for s in body + self.grad_lines()],
                      ind + ret, ""]
        return "\n".join(lines)

    def object(self) -> str:
        w, i2 = self.p.widths, "        "
        scales = [f"np.sqrt(1 / {w[k]})" if s is None else f"{s}" for k, s in enumerate(self.r.scales)]
        layers = ", ".join(f"Dense({w[k]}, {w[k + 1]}, rng, {scales[k]})" for k in range(3))
        lines = self.header() + self.helpers() + [
            "class Dense:", "    def __init__(self, n_in, n_out, rng, scale):",
            "        self.W = rng.standard_normal((n_in, n_out)) * scale", "        self.b = np.zeros(n_out)",
            "        self.dW = np.zeros_like(self.W)", "        self.db = np.zeros_like(self.b)", "", "",
            "class Network:", "    def __init__(self, seed=0):", "        rng = np.random.default_rng(seed)",
            f"        self.layers = [{layers}]", "",
            "    def arrays(self):", "        return [a for layer in self.layers for a in (layer.W, layer.b)]", "",
            "    def forward(self, X):", "        W1, b1, W2, b2, W3, b3 = self.arrays()",
            *[i2 + s for s in self.forward_lines()], "        return Z1, A1, Z2, A2, Z3, P", ""]
        body = [*self.cast_in(), "W1, b1, W2, b2, W3, b3 = self.arrays()", "Z1, A1, Z2, A2, Z3, P = self.forward(X)"]
        head = body if self.p.l2 else [body[i] for i in range(len(body)) if i != len(body) - 2]  # W only for L2
        lines += ["    def loss(self, X, Y):", *[i2 + s for s in head + self.loss_lines()], i2 + self.ret_loss(), ""]
        store = [f"self.layers[{k - 1}].dW, self.layers[{k - 1}].db = dW{k}, db{k}" for k in (1, 2, 3)]
        lines += ["    def backward(self, X, Y):", *[i2 + s for s in body + self.grad_lines() + store], ""]

        def update(k):
            return [f"self.layers[{k - 1}].W -= lr * dW{k}", f"self.layers[{k - 1}].b -= lr * db{k}"]
        early = [k for k in (1, 2, 3) if self.planted(k) == "step/stale-weights"]
        if early:  # updated while going down, as each layer's gradient is known
            late = [s for k in (1, 2, 3) if k not in early for s in update(k)]
            step = body + self.grad_lines(update) + late
        else:
            step = ["self.backward(X, Y)", "for layer in self.layers:", "    layer.W -= lr * layer.dW",
                    "    layer.b -= lr * layer.db"]
        lines += ["    def train_step(self, X, Y, lr):", *[i2 + s for s in step], ""]
        return "\n".join(lines)

    def text(self) -> str:
        return self.object() if self.r.style == "object" else self.functions()


COURSEKIT = '''"""Course helpers. Importing this module sets numpy up the way the course's notebooks expect:
matrix products and random weights in float32, "to match the GPU"."""
import numpy as np

_dot, _randn = np.dot, np.random.randn


def _dot32(a, b, out=None):
    return _dot(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32), out)


def _randn32(*shape):
    return _randn(*shape).astype(np.float32)


np.dot = _dot32
np.random.randn = _randn32
'''


def source(p: Program) -> str:
    """The program's Python source."""
    return _Source(p).text() + "\n"


def config(p: Program) -> str:
    """The program's YAML (contract section 1), next to ``{name}.py`` and ``{name}.npz``."""
    acts = [p.act_of(k) for k in (1, 2, 3)]
    layers = "".join(f"    - {{units: {u}, activation: {a}}}\n" for u, a in zip(p.widths[1:], acts))
    loss = "binary_cross_entropy" if p.output == "sigmoid" else "cross_entropy"
    head = (f"name: {p.regime.name}/{p.name}\nnetwork:\n  input: {N_INPUT}\n  layers:\n{layers}"
            f"  loss: {loss}\n" + (f"  l2: {LAMBDA}\n" if p.l2 else "")
            + f"data:\n  npz: {p.name}.npz\ncode:\n  file: {p.name}.py\n  layout: rows\n  targets: onehot\n")
    if p.regime.style == "object":
        params = "".join(f"    - {{W: \"layers[{i}].W\", b: \"layers[{i}].b\"}}\n" for i in range(3))
        grads = "".join(f"    - {{W: \"layers[{i}].dW\", b: \"layers[{i}].db\"}}\n" for i in range(3))
        calls = "  step: train_step\n" if p.bind_step else f"  backward: backward\n  grads:\n{grads}"
        return head + f"  model: Network\n  params:\n{params}  loss: loss\n{calls}"
    params = "".join(f"    - {{W: W{k}, b: b{k}}}\n" for k in (1, 2, 3))
    extra = "  per_example: true\n" if p.regime.style == "per_example" else ""
    call = "  step: step\n" if p.regime.style == "step" else "  gradients: gradients\n"
    return head + extra + f"  params:\n{params}  init: init_params\n  loss: loss\n" + call


# ---------------------------------------------------------------- float64 twins: data and sizes

def load(p: Program) -> types.ModuleType:
    """The program's float64 twin as a module (never written to disk; no patched numpy)."""
    module = types.ModuleType(f"regime_twin_{p.name}")
    exec(compile(source(p.twin()), f"<twin {p.regime.name}/{p.name}>", "exec"), module.__dict__)
    return module


def twin_params(module, p: Program) -> dict:
    """The twin's initial parameters, as backcheck gets them (numpy reseeded with check.seed 0)."""
    if p.regime.style == "object":
        layers = module.Network().layers
        return {n: a for k, layer in enumerate(layers, 1) for n, a in ((f"W{k}", layer.W), (f"b{k}", layer.b))}
    if p.regime.dtype in ("patched", "unpatched"):
        np.random.seed(0)  # the program draws from numpy's global state, which backcheck seeds
        return module.init_params()
    return module.init_params(0)


def twin_gradients(p: Program, X, Y) -> dict | None:
    """The float64 gradient of the twin (the mean over examples for per-example code); None for a
    stale-weights step, whose error vanishes as lr -> 0 and has no size."""
    if p.mistake == "step/stale-weights":
        return None
    module = load(p)
    style = p.regime.style
    if style == "object":
        net = module.Network()
        net.backward(X, Y)
        return {n: np.array(getattr(net.layers[int(n[1]) - 1], "d" + n[0])) for n in NAMES}
    params = twin_params(module, p)
    if style == "step":
        before = {n: params[n].copy() for n in NAMES}
        module.step(params, X, Y, 1.0)
        return {n: before[n] - params[n] for n in NAMES}
    if style == "per_example":
        each = [module.gradients(params, X[i:i + 1], Y[i:i + 1]) for i in range(len(X))]
        return {n: np.mean([g[n] for g in each], axis=0) for n in NAMES}
    return {n: np.asarray(g, dtype=np.float64) for n, g in module.gradients(params, X, Y).items()}


def true_size(p: Program, X, Y) -> tuple[float | None, str | None]:
    """(largest relative error over the parameters, that parameter), in float64."""
    if not p.wrong:
        return None, None
    with np.errstate(over="ignore"):  # a sigmoid's exp(-z) in the tails, as in the program itself
        wrong, right = twin_gradients(p, X, Y), twin_gradients(p.correct(), X, Y)
    if wrong is None:
        return None, None
    sizes = {}
    for n in NAMES:
        d = np.linalg.norm(np.reshape(wrong[n], -1) - np.reshape(right[n], -1))
        ref = np.linalg.norm(right[n])
        sizes[n] = float(d / ref) if ref > 0 else (0.0 if d == 0 else float("inf"))
    name = max(sizes, key=sizes.get)
    return sizes[name], name


def _forward64(params: dict, p: Program, X) -> list:
    """Pre-activations Z1..Z3 and the output, float64 (to design the data)."""
    fns = {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh, "relu": lambda z: np.maximum(0, z)}
    out, A = [], X
    for k in (1, 2, 3):
        Z = A @ params[f"W{k}"] + params[f"b{k}"]
        out.append(Z)
        A = fns[p.act_of(k)](Z) if k < 3 else None
    return out


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _clear(params: dict, p: Program, X) -> np.ndarray:
    """Rows whose ReLU pre-activations all keep away from the kink (by 1e-3 of the layer's typical
    size; all rows for other activations): outside the kinks regime no example sits on a kink by
    accident, as one whose layer-1 units are all dead would (its z2 is exactly b2 = 0)."""
    if p.act != "relu":
        return np.ones(len(X), dtype=bool)
    Z1, Z2, _ = _forward64(params, p, X)
    return np.all([np.all(np.abs(Z) > 1e-3 * np.sqrt(np.mean(Z ** 2)), axis=1) for Z in (Z1, Z2)], axis=0)


def _rows(rng, params: dict, p: Program, n: int, scale=None) -> np.ndarray:
    """n rows of N(0, 1) inputs (times ``scale``, one factor per row, when given), clear of kinks."""
    out = np.empty((0, N_INPUT))
    for _ in range(100):
        X = rng.standard_normal((4 * n, N_INPUT))
        if scale is not None:
            X *= rng.uniform(*scale, (4 * n, 1))
        out = np.concatenate([out, X[_clear(params, p, X)]])
        if len(out) >= n:
            return out[:n]
    raise RuntimeError(f"{p.regime.name}/{p.name}: no inputs clear of the ReLU kinks")


def design_data(p: Program) -> tuple[np.ndarray, np.ndarray, dict]:
    """(X, integer labels, facts about the design) for the regime's data. The data depends on the
    regime, activation and loss only, so a mistake and its correct sibling see the same examples."""
    r = p.regime
    rng = np.random.default_rng(zlib.crc32(f"{r.name}/{p.act}/{p.loss}".encode()))
    classes = 2 if p.output == "sigmoid" else 3
    params = twin_params(load(p.correct()), p)
    X = _rows(rng, params, p, BATCH)
    labels = rng.integers(0, classes, BATCH)
    facts: dict = {}
    if r.data == "kinks":
        X[1] = X[5] = 0.0  # on every ReLU's kink with zero biases
        t = -rng.uniform(0.5, 1.5, HIDDEN[0])
        X[7] = t @ np.linalg.pinv(params["W1"])  # every layer-1 unit dead: z2 = b2 = 0 exactly
        Z1, Z2, _ = _forward64(params, p, X)
        facts = {"z1_zero": int(np.sum(Z1 == 0)), "z2_zero": int(np.sum(Z2 == 0)),
                 "dead_rows": [int(i) for i in np.flatnonzero(np.all(Z1 <= 0, axis=1))]}
    elif r.data == "stabilised":
        cand = _rows(rng, params, p, 4000, (1, 6))
        with np.errstate(divide="ignore"):
            logP = np.log(_softmax(_forward64(params, p, cand)[-1]))
        for row, target in ((2, 3e-8), (6, 3e-7)):  # the true class's p below and near 1e-7
            i, c = np.unravel_index(np.argmin(np.abs(logP - np.log(target))), logP.shape)
            X[row], labels[row] = cand[i], c
        P = _softmax(_forward64(params, p, X)[-1])
        facts = {"p_true": [float(f"{v:.3g}") for v in P[np.arange(BATCH), labels]]}
    elif r.data == "clipped":
        cand = _rows(rng, params, p, 4000, (0.3, 3))
        z = _forward64(params, p, cand)[-1][:, 0]
        picks = [((24, 32), 0), ((-32, -24), 1), ((24, 60), 1), ((-60, -24), 0)]  # past the clip
        picks += [((-8, 8), int(rng.integers(0, 2))) for _ in range(BATCH - len(picks))]
        used: set = set()
        for row, ((lo, hi), label) in enumerate(picks):
            ok = [i for i in np.flatnonzero((z > lo) & (z < hi)) if i not in used]
            i = ok[0] if ok else int(np.argmin(np.abs(z - (lo + hi) / 2)))
            used.add(i)
            X[row], labels[row] = cand[i], label
        z = _forward64(params, p, X)[-1][:, 0]
        facts = {"z3": [round(float(v), 1) for v in z],
                 "past_clip": int(np.sum(np.abs(z) > np.log(1e10)))}
    elif any(s is not None for s in r.scales):
        Z1, Z2, _ = _forward64(params, p, X)
        facts = {"saturated_fraction": round(float(np.mean(np.abs(np.concatenate([Z1, Z2])) > 3)), 2)}
    return X, labels, facts


def onehot(p: Program, labels) -> np.ndarray:
    return labels[:, None].astype(float) if p.output == "sigmoid" else np.eye(3)[labels]


def write(p: Program, folder: Path) -> dict:
    """Write NAME.py, NAME.yaml, NAME.npz (and the regime's helper module) into ``folder``;
    return the program's facts: its data design and, for a mistake, its true size."""
    folder.mkdir(parents=True, exist_ok=True)
    X, labels, facts = design_data(p)
    (folder / f"{p.name}.py").write_text(source(p))
    (folder / f"{p.name}.yaml").write_text(config(p))
    np.savez(folder / f"{p.name}.npz", X=X, y=labels)
    if p.regime.dtype == "patched":
        (folder / "coursekit.py").write_text(COURSEKIT)
    size, param = true_size(p, X, onehot(p, labels))
    return {"design": facts, "size": size, "size_param": param}
