"""When the config, not the code, is wrong: which setting of the YAML fits the code.

A ``layout:`` or ``targets:`` that does not match the code makes its first call fail with numpy's
own error (shapes that do not align, one-hot targets used as indices); a ``network:`` whose loss
or activations differ from the code's makes every name of a mistake wrong. Here the plausible
alternatives are tried on the code itself, and when one fits exactly, the check stops with a
config error (exit 2) that names the key and the value that fits.
"""

from __future__ import annotations

import dataclasses

from backcheck import reference
from backcheck.errors import BackcheckError, ConfigError

_OTHER = {"layout": {"rows": "columns", "columns": "rows"}, "targets": {"onehot": "labels", "labels": "onehot"}}


def data_form(config, ev, data, first: BackcheckError) -> ConfigError | None:
    """The first call of the code failed with ``first``: a layout or target form it accepts, as the
    config error to raise instead (None when no other form works either)."""
    code = config.code
    if code is None or code.place is not None or config.data.kind == "code":
        return None
    tries = [("layout", _OTHER["layout"][code.layout], code.targets),
             ("targets", code.layout, _OTHER["targets"][code.targets]),
             ("layout and targets", _OTHER["layout"][code.layout], _OTHER["targets"][code.targets])]
    original = data.for_code(code.layout, code.targets)
    try:
        for what, layout, targets in tries:
            if targets == "labels" and data.labels is None:
                continue
            X, Y = data.for_code(layout, targets)
            try:
                ev.attach(X, Y, (data.X, data.Y))
                ev.loss()
                if ev.uses_step:
                    ev.step_gradient(1e-3)  # a loss: spec runs whatever the data: the step must run too
                else:
                    ev.gradient()
            except BackcheckError:
                continue
            said = []
            if layout != code.layout:
                said.append(f"layout: {layout} (X is {'(features, batch)' if layout == 'columns' else '(batch, features)'}"
                            " in this code)")
            if targets != code.targets:
                said.append(f"targets: {targets} ({'integer class labels' if targets == 'labels' else 'one-hot rows'}"
                            " in this code)")
            key = "code.layout" if layout != code.layout else "code.targets"
            return ConfigError(
                f"{key}: the code fails with the config's {what} ({first.message}), and runs with "
                f"{' and '.join(said)}: set that in the YAML", config.where(key))
    finally:
        ev.attach(*original, (data.X, data.Y))
    return None


def network_fit(config, params, X, Y, f0: float, tol: float) -> ConfigError | None:
    """The code's loss differs from the network's: a network: setting under which it is exactly the
    code's, as the config error to raise (None when nothing fits: then the code itself differs)."""
    net = config.network
    for keypath, text, alt in _alternatives(net):
        try:
            value = float(reference.loss(alt, params, X, Y))
        except (ValueError, FloatingPointError, KeyError, IndexError):
            continue
        if abs(value - f0) <= tol * max(abs(f0), 1e-12):
            return ConfigError(
                f"{keypath}: the code's loss is {f0:.9g}, the network in the config gives a different one at the "
                f"same parameters, and with {text} it gives exactly the code's: the config does not describe this "
                "code; set that in the YAML (or fix the code's forward pass if the config is the assignment)",
                config.where(keypath))
    return None


def _alternatives(net):
    """(key path, what to set, the network with it) for the usual ways a config misdescribes code."""
    last = net.layers[-1]
    losses = []
    for loss, act in (("cross_entropy", "softmax"), ("binary_cross_entropy", "sigmoid"), ("mse", None)):
        acts = [act] if act else sorted({last.activation, "identity", "sigmoid"} - {"softmax"})
        for a in acts:
            for reduction in (("mean", "sum", "mean_all") if loss == "mse" else ("mean",)):
                for scale in ((1.0, 0.5) if loss == "mse" else (1.0,)):
                    if (loss, a, reduction, scale) == (net.loss, last.activation, net.reduction, net.scale):
                        continue
                    if loss == "cross_entropy" and last.units < 2:
                        continue
                    layers = net.layers[:-1] + (dataclasses.replace(last, activation=a),)
                    alt = dataclasses.replace(net, loss=loss, reduction=reduction, scale=scale, layers=layers)
                    text = f"network.loss: {loss}" + (f" (reduction: {reduction})" if reduction != "mean" else "") + \
                        (f" (scale: {scale:g})" if scale != 1 else "") + \
                        (f" and the output layer's activation: {a}" if a != last.activation else "")
                    losses.append(("network.loss", text, alt))
    yield from losses
    hidden = net.layers[:-1]
    for a in ("identity", "sigmoid", "tanh", "relu", "leaky_relu"):  # every hidden layer the same
        if len(hidden) > 1 and any(layer.activation != a for layer in hidden):
            layers = tuple(dataclasses.replace(layer, activation=a) for layer in hidden) + (last,)
            yield ("network.layers[0].activation", f"activation: {a} on every hidden layer",
                   dataclasses.replace(net, layers=layers))
    for k, layer in enumerate(net.layers[:-1]):
        for a in ("identity", "sigmoid", "tanh", "relu", "leaky_relu"):
            if a == layer.activation:
                continue
            layers = net.layers[:k] + (dataclasses.replace(layer, activation=a),) + net.layers[k + 1:]
            yield (f"network.layers[{k}].activation", f"network.layers[{k}].activation: {a}",
                   dataclasses.replace(net, layers=layers))
