"""The code's parameters against the network: default values, orientations, canonical shapes, a forward that does not match."""

from __future__ import annotations

import numpy as np

from backcheck import reference
from backcheck.binding import Slot, canonical_shape, code_shape, orientation
from backcheck.errors import ConfigError, UserCodeError
from backcheck.results import CheckWarning
from backcheck.spec import Config


def default_params(config: Config) -> tuple[list, dict]:
    """backcheck's own initial parameters (canonical), and the same in the code's shapes for code without init."""
    net = config.network
    canon = reference.init_params(net, np.random.default_rng([config.check.seed, 1]))
    defaults = {}
    if config.code is not None:
        layout = config.code.layout
        for k, entry in enumerate(config.code.params, start=1):
            W, b = canon[k - 1]
            slot = Slot(k, "W", entry["W"], entry.get("orient"))
            defaults[slot] = np.ascontiguousarray(W.T if code_shape(slot, net.widths, layout) != W.shape else W)
            if "b" in entry:
                defaults[Slot(k, "b", entry["b"])] = b.reshape(code_shape(Slot(k, "b", ""), net.widths, layout)).copy()
    return canon, defaults


def _units_fit(values: dict, widths, config_where):
    """The code's weights chain layers of other widths than network: says: the units key that is wrong."""
    if config_where is None:
        return None
    Ws = sorted((s for s in values if s.role == "W"), key=lambda s: s.layer)
    chain = [widths[0]]
    for s in Ws:
        shape = values[s].shape
        if len(shape) != 2 or chain[-1] not in shape:
            return None
        chain.append(shape[1] if shape[0] == chain[-1] else shape[0])
    if len(chain) != len(widths):
        return None
    for k, (want, got) in enumerate(zip(widths[1:], chain[1:])):
        if want != got:
            return ConfigError(f"network.layers[{k}].units: the code's {Ws[k].code_name} has shape "
                               f"{values[Ws[k]].shape}: its layer has {got} units, not {want}; set units: {got}",
                               config_where(f"network.layers[{k}].units"))
    return None


def param_orientations(values: dict, widths, layout, config_where=None) -> tuple[dict, list[str], list]:
    """How each of the code's arrays maps to the canonical network; notes and warnings on the way."""
    out, notes, warnings = {}, [], []
    for s, arr in values.items():
        try:
            o, note = orientation(s, arr, widths, layout)
        except UserCodeError as exc:
            raise _units_fit(values, widths, config_where) or exc
        out[s] = o
        if note:
            notes.append(note)
    shaped = [(s, arr) for s, arr in values.items() if out[s].per_example]
    if shaped:  # one warning for them all: it is one habit of the code
        batch = out[shaped[0][0]].per_example
        what = ", ".join(f"{s.code_name} {arr.shape}" for s, arr in shaped)
        fit = ", ".join(f"{(widths[s.layer], 1) if layout == 'columns' else (1, widths[s.layer])}" for s, _ in shaped)
        one = len(shaped) == 1
        warnings.append(CheckWarning(
            "bias/batch-shaped",
            f"{what}: one bias per example of the batch of {batch}. "
            "Each example then has its own bias, and the code only runs on batches of exactly that size; "
            f"{'a bias' if one else 'biases'} of shape {fit} broadcast{'s' if one else ''} over any batch"))
    return out, notes, warnings


def canonical_params(slots, arrays, orient, net):
    """[(W, b)] in the reference's layout; a layer without a bias gets a constant zero vector."""
    by = {(s.layer, s.role): s for s in slots}

    def value(k, r):
        s = by.get((k, r))
        if s is None:
            return np.zeros(net.layers[k - 1].units)
        return orient[s].canonical_of(arrays[s], canonical_shape(s, net.widths))

    return [(value(k, "W"), value(k, "b")) for k in range(1, len(net.layers) + 1)]


def forward_mismatch(net, params_c, data, f0: float, precision) -> CheckWarning | None:
    try:
        expected = reference.loss(net, params_c, data.X, data.Y)
    except (ValueError, FloatingPointError):
        return None
    tol = 1e-6 if precision.dtype == "float64" else 1e-3
    if abs(f0 - expected) <= tol * max(abs(f0), abs(expected), 1e-12):
        return None
    ratio = f0 / expected if expected else float("inf")
    hint = ""
    n = data.batch
    if abs(ratio - n) < 1e-6 * n:
        hint = f" (= the batch size {n}: a sum over the batch where network.loss is a mean?)"
    elif abs(ratio - 0.5) < 1e-9:
        hint = " (a 1/2 in front of the squared error?)"
    return CheckWarning(
        "forward/mismatch",
        f"the code's loss is {f0:.6g}; the network in the config gives {expected:.6g} at the same parameters "
        f"and data (ratio {ratio:.6g}{hint}). The check still differentiates the code's own loss; the names "
        "of mistakes assume the config's network")
