"""network: what the network should be (layers, activations, loss, l2)."""

from __future__ import annotations

from dataclasses import dataclass

from backcheck.spec.reader import Section

ACTIVATIONS = ("identity", "leaky_relu", "relu", "sigmoid", "softmax", "tanh")
LOSSES = ("binary_cross_entropy", "cross_entropy", "mse")
NETWORK_KEYS = ("input", "bias", "layers", "loss", "l2")


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
    n_in = sec.get("input", int, minimum=1)
    if n_in is None:
        sec.require("input")
    layers_loc = sec.require("layers")
    if not isinstance(layers_loc.value, list) or not layers_loc.value:
        sec.fail("layers", "expected a list of layers such as {units: 5, activation: tanh}")
    layers = []
    bias = sec.get("bias", bool, default=True)
    for i, item in enumerate(layers_loc.value):
        lsec = Section(sec.reader, item, f"network.layers[{i}]", ("units", "activation", "alpha", "bias"))
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
        lsec = Section(sec.reader, loss_loc, "network.loss", ("type", "reduction", "scale"))
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
        l2sec = Section(sec.reader, sec.located("l2"), "network.l2", ("strength", "half"))
        strength = l2sec.get("strength", float, minimum=0.0)
        if strength is None:
            l2sec.require("strength")
        l2 = strength if l2sec.get("half", bool, default=True) else 2.0 * strength
    else:
        l2 = sec.get("l2", float, default=0.0, minimum=0.0)
    return NetworkSpec(n_in, tuple(layers), loss, reduction, l2, scale)
