"""The Python API: check a loss and its gradients given as Python callables and arrays.

    import backcheck
    result = backcheck.check(loss, gradients, params={"W1": W1, "b1": b1, "W2": W2, "b2": b2},
                             X=X, Y=Y, network="4-5-3 tanh softmax cross_entropy")
    result.ok, result.findings, result.to_json()   # in Jupyter or a terminal, the result shows its report

The same numerics, findings and result as ``backcheck verify``, in the calling process: quick
to call from a notebook cell or a test, but the code is not isolated (it can reach backcheck, and
there is no time limit: an endless loop stops the cell). For isolation and ``check.timeout``,
write the YAML config and call ``backcheck.verify("model.yaml")``, which runs the code in a
sandboxed process.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

ACT = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax")
LOSSES = ("cross_entropy", "binary_cross_entropy", "mse")


def check(loss, gradients, *, params, X, Y, network, layout: str = "rows", targets: str = "onehot",
          eps: float | None = None, tolerance: float | None = None, seed: int = 0, name: str = "api"):
    """Check ``gradients`` against finite differences of ``loss`` at ``params`` on (X, Y).

    ``params``: a dict of arrays named W1, b1, W2, b2, ... (layer k's are ``W{k}``, ``b{k}``), or a
    list with one (W, b) pair (or {"W": W, "b": b}) per layer, input side first. ``loss`` and
    ``gradients`` are called as f(params, X, Y), or f() when they take no arguments; gradients
    returns the same kind of container. ``network``: what the network should be, as a short text
    ("4-5-3 tanh softmax cross_entropy": the widths, one activation per layer, the loss), a dict like
    the YAML's ``network:`` section, or that section as YAML text. Returns a CheckResult."""
    from backcheck.binding.callables import CallableBinding
    from backcheck.runner import Options, check_binding

    config, names = _config(network, params, layout, targets, eps, tolerance, seed, name, loss)
    binding = CallableBinding(config, params, loss, gradients, X, Y, names)
    return check_binding(config, binding, Options(), name)


def _config(network, params, layout, targets, eps, tolerance, seed, name, loss):
    from backcheck.binding.params import Slot
    from backcheck.spec import parse_config

    n_layers = len(params) if not isinstance(params, dict) else len([k for k in params if re.fullmatch(r"W\d+", k)])
    if isinstance(params, dict):
        table = [{"W": f"W{k}", **({"b": f"b{k}"} if f"b{k}" in params else {})} for k in range(1, n_layers + 1)]
    else:
        table = [{"W": f"W{k}", **({"b": f"b{k}"} if _has_bias(layer) else {})}
                 for k, layer in enumerate(params, start=1)]
    text = "network:\n" + _network_yaml(network) + "data:\n  random: {}\n"
    check = {k: v for k, v in (("eps", eps), ("tolerance", tolerance)) if v is not None}
    text += f"check: {{seed: {seed}{''.join(f', {k}: {v!r}' for k, v in check.items())}}}\n"
    source = Path(inspect.getsourcefile(loss) or "<python>").resolve() if callable(loss) else Path("<python>")
    path = Path(f"{name}.yaml")
    config = parse_config(text, path)
    from dataclasses import replace

    from backcheck.spec import CodeSpec, DataSpec

    code = CodeSpec(source, layout, targets, tuple(table), file_given=str(source))
    config = replace(config, code=code, data=DataSpec("code"))
    names = {}
    for k, entry in enumerate(table, start=1):
        for role, code_name in entry.items():
            names[Slot(k, role, code_name)] = code_name if isinstance(params, dict) else \
                ("Wb".index(role) if not isinstance(params[k - 1], dict) else role)
    return config, _keyed(names, params)


def _keyed(names: dict, params) -> dict:
    """The key of each gradient: the same name for a dict, (layer index, position) for a list."""
    if isinstance(params, dict):
        return names
    return {s: (s.layer - 1, key) for s, key in names.items()}


def _has_bias(layer) -> bool:
    return ("b" in layer) if isinstance(layer, dict) else len(layer) > 1 and layer[1] is not None


def _network_yaml(network) -> str:
    """The network as the YAML's network: section (indented by two)."""
    if isinstance(network, str) and "\n" not in network and ":" not in network:
        return _short(network)
    if isinstance(network, dict):
        import json

        lines = [f"  {k}: {json.dumps(v)}" for k, v in network.items()]
        return "\n".join(lines) + "\n"
    text = str(network)
    if text.lstrip().startswith("network:"):
        text = text.split("network:", 1)[1]
    return "\n".join("  " + line if line.strip() else line for line in text.strip("\n").splitlines()) + "\n"


def _short(text: str) -> str:
    """'4-5-3 tanh softmax cross_entropy' -> the network: section."""
    from backcheck.errors import ConfigError

    words = text.split()
    try:
        widths = [int(w) for w in words[0].split("-")]
    except (ValueError, IndexError):
        raise ConfigError(f"network: expected widths like '4-5-3' first, got {text!r}") from None
    acts = [w for w in words[1:] if w in ACT]
    loss = next((w for w in words[1:] if w in LOSSES), None)
    if len(acts) != len(widths) - 1 or loss is None:
        raise ConfigError(f"network: expected one activation per layer ({len(widths) - 1}) and a loss "
                          f"({', '.join(LOSSES)}) after the widths, got {text!r}")
    layers = "".join(f"    - {{units: {u}, activation: {a}}}\n" for u, a in zip(widths[1:], acts))
    return f"  input: {widths[0]}\n  layers:\n{layers}  loss: {loss}\n"
