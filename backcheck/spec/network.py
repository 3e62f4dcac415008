"""network: what the network should be (layers, activations, loss, l2)."""

from __future__ import annotations

from dataclasses import dataclass

from backcheck.spec.reader import Section, plain, type_name

ACTIVATIONS = ("identity", "leaky_relu", "relu", "sigmoid", "softmax", "tanh")
LOSSES = ("binary_cross_entropy", "cross_entropy", "mse")
NETWORK_KEYS = ("input", "bias", "layers", "loss", "l2")
MAX_WIDTH = 100_000  # inputs or units of one layer
MAX_PARAMS = 50_000_000  # weights and biases of the whole network: 400 MB in float64, and each is probed


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


def read_network(sec: Section) -> NetworkSpec:
    n_in = sec.get("input", int, required=True, minimum=1, maximum=MAX_WIDTH, why=_WIDTH_WHY)
    layers_loc = sec.require("layers", _LAYERS)
    if not isinstance(layers_loc.value, list) or not layers_loc.value:
        sec.fail("layers", f"expected {_LAYERS}, got {type_name(plain(layers_loc))}")
    layers = []
    bias = sec.get("bias", bool, default=True)
    for i, item in enumerate(layers_loc.value):
        lsec = Section(sec.reader, item, f"network.layers[{i}]", ("units", "activation", "alpha", "bias"))
        units = lsec.get("units", int, required=True, minimum=1, maximum=MAX_WIDTH, why=_WIDTH_WHY)
        act = lsec.get("activation", str, default="identity", choices=ACTIVATIONS)
        alpha = lsec.get("alpha", float, default=0.01)
        if lsec.has("alpha") and act != "leaky_relu":
            lsec.fail("alpha", f"alpha is the slope of leaky_relu; this layer is {act}")
        if act == "softmax" and i != len(layers_loc.value) - 1:
            lsec.fail("activation", "softmax is allowed on the last layer only")
        layers.append(LayerSpec(units, act, alpha, lsec.get("bias", bool, default=bias)))
    reduction, scale = "mean", 1.0
    loss_loc = sec.require("loss", f"one of {', '.join(LOSSES)}, or {{type: mse, reduction: sum}}")
    if isinstance(loss_loc.value, dict):
        lsec = Section(sec.reader, loss_loc, "network.loss", ("type", "reduction", "scale"))
        loss = lsec.get("type", str, required=True, choices=LOSSES)
        reduction = lsec.get("reduction", str, default="mean", choices=("mean", "sum", "mean_all"))
        scale = lsec.get("scale", float, default=1.0, positive=True)
        if reduction != "mean" and loss != "mse":
            lsec.fail("reduction", f"reduction applies to mse only; {loss} is a mean over the batch")
    else:
        loss = sec.get("loss", str, required=True, choices=LOSSES)
    last = layers[-1]
    if loss == "cross_entropy" and last.activation != "softmax":
        sec.fail("loss", f"cross_entropy expects a softmax output layer; the last layer is {last.activation}")
    if loss == "binary_cross_entropy" and last.activation != "sigmoid":
        sec.fail("loss", "binary_cross_entropy expects a sigmoid output layer; "
                 f"the last layer is {last.activation}")
    if sec.has("l2") and isinstance(sec.located("l2").value, dict):
        l2sec = Section(sec.reader, sec.located("l2"), "network.l2", ("strength", "half"))
        strength = l2sec.get("strength", float, required=True, minimum=0)
        l2 = strength if l2sec.get("half", bool, default=True) else 2.0 * strength
    else:
        l2 = sec.get("l2", float, default=0.0, minimum=0)
    net = NetworkSpec(n_in, tuple(layers), loss, reduction, l2, scale)
    size = sum(a * b + b for a, b in zip(net.widths, net.widths[1:]))
    if size > MAX_PARAMS:
        sec.fail("layers", f"these layers have {size:,} weights and biases; backcheck checks networks of at most "
                           f"{MAX_PARAMS:,} (each is probed with finite differences)")
    return net


_LAYERS = "a list of layers such as {units: 5, activation: tanh}"
_WIDTH_WHY = "backcheck's limit on a layer's width"
