"""What the network's state says, for ``backcheck diagnose``: saturated or dead hidden units,
the backpropagated signal per layer, the loss at initialisation and the scale of the inputs. Each
function takes arrays and backcheck's reference network (spec'd by the YAML) and returns findings."""

from __future__ import annotations

import math

import numpy as np

from backcheck import reference
from backcheck.results import Finding

FLAT_TAIL = {"sigmoid": lambda a: (a < 0.01) | (a > 0.99), "tanh": lambda a: np.abs(a) > 0.99}
PINNED = 1e-7  # an output this close to 0 or 1 is past the clip of most losses (1e-7 ... 1e-15) or rounds to it
MOST = 0.5  # "most units": more than this share of a layer's units (or unit-activations)
FLOW = 100.0  # "orders of magnitude": the backpropagated signal changes this much from output to input


def gradient_flow(net, params, X: np.ndarray, Y: np.ndarray) -> list:
    """Root-mean-square dL/dz of each layer (the signal backprop carries down, per example and unit)
    in backcheck's reference network at the code's parameters; X (N, in), Y (N, out)."""
    L = len(net.layers)
    if L < 3:
        return []
    with np.errstate(all="ignore"):
        bp = reference.Backprop(net, params, X, Y, reference.forward(net, params, X))
        delta = bp.output_delta()
        rms = {L: _rms(delta)}
        for k in range(L - 1, 0, -1):
            delta = bp.delta_from(delta @ params[k][0].T, k)
            rms[k] = _rms(delta)
    if not all(math.isfinite(v) for v in rms.values()) or rms[L] == 0:
        return []
    detail = ("root-mean-square of dL/dz (the gradient at each layer's pre-activation, per example and unit) at "
              "initialisation: " + ", ".join(f"layer {k}: {rms[k]:.2e}" for k in sorted(rms)))
    if rms[1] == 0:
        # Some layer passes nothing down (every unit has a zero derivative on every example): no ratio to
        # speak of, and every layer from there to the input gets a zero weight gradient.
        top = max(k for k in rms if rms[k] == 0)
        below = " or below" if top > 1 else ""
        return [Finding("train/vanishing-gradient", top, "warning",
                        f"no gradient reaches layer {top}{below}: dL/dz is 0 there",
                        detail + f"; every unit of layer {top} has a zero derivative on every example (ReLUs with "
                        f"z <= 0, or sigmoid/tanh units pinned in their tails), so layers 1 to {top} never learn",
                        "initialise biases at 0 (not negative) and weights with sqrt(2/fan_in) for ReLU (or use "
                        "leaky_relu), 1/sqrt(fan_in) for sigmoid/tanh; scale the inputs", 0.9)]
    ratio = rms[1] / rms[L]
    if ratio < 1 / FLOW:
        return [Finding("train/vanishing-gradient", 1, "warning",
                        f"the gradient shrinks {1 / ratio:.3g}-fold from the output layer to layer 1",
                        detail + "; the layers near the input barely learn",
                        "use ReLU or tanh instead of sigmoid in hidden layers, initialise the weights with "
                        "1/sqrt(fan_in) (Xavier) or sqrt(2/fan_in) for ReLU (He), or use fewer layers", 0.8)]
    if ratio > FLOW:
        return [Finding("train/exploding-gradient", 1, "warning",
                        f"the gradient grows {ratio:.3g}-fold from the output layer to layer 1",
                        detail + "; one learning rate cannot suit every layer",
                        "initialise the weights with sqrt(2/fan_in) (He) for ReLU or 1/sqrt(fan_in) otherwise "
                        "instead of a unit normal, lower the learning rate, or clip the gradient norm", 0.8)]
    return []


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a)))) if a.size else 0.0


def initial_loss(net, f0: float) -> list:
    """The code's loss at its starting parameters against the loss of uninformed outputs."""
    C = net.widths[-1]
    if net.loss == "cross_entropy":
        expected, what = math.log(C), f"ln {C}"
    elif net.loss == "binary_cross_entropy":
        expected, what = C * math.log(2), "ln 2" if C == 1 else f"{C} ln 2"
    else:
        return []
    if f0 > 3 * expected + 1:
        return [Finding("train/initial-loss", None, "warning",
                        f"the loss at initialisation is {f0:.4g}; uninformed outputs give {what} = {expected:.3g}",
                        "the network starts confidently wrong: its initial outputs are far from uniform, so the "
                        "first steps go into undoing the initialisation (and large logits saturate the output)",
                        "initialise the weights smaller (rng.normal(0, 1/sqrt(fan_in)), or smaller still in the "
                        "output layer) and the biases at 0", 0.8)]
    return []


def units(net, params, X: np.ndarray, when: str) -> list:
    """Saturated sigmoid/tanh and dead ReLU hidden layers, and a sigmoid or softmax output layer
    pinned at 0/1, of the reference network at ``params``."""
    with np.errstate(all="ignore"):
        cache = reference.forward(net, params, X)
    out = pinned_output(net, cache.A[-1], when)
    for k, layer in enumerate(net.layers[:-1], start=1):  # hidden layers
        A, Z = cache.A[k], cache.Z[k]
        if layer.activation in FLAT_TAIL:
            share = float(np.mean(FLAT_TAIL[layer.activation](A)))
            if share > MOST:
                out.append(Finding(
                    "train/saturated", k, "warning",
                    f"layer {k} ({layer.activation}): {share:.0%} of its unit-activations sit in the flat tails {when}",
                    f"on the {len(X)} examples, {share:.0%} of layer {k}'s {layer.activation} outputs are "
                    f"{'below 0.01 or above 0.99' if layer.activation == 'sigmoid' else 'beyond +-0.99'}; "
                    f"there the derivative is near 0, so these units barely learn",
                    "scale the inputs to unit variance and initialise the weights with 1/sqrt(fan_in); a smaller "
                    "learning rate keeps them from saturating during training", 0.85))
        elif layer.activation == "relu":
            dead = float(np.mean(np.all(Z <= 0, axis=0)))
            if dead > MOST:
                out.append(Finding(
                    "train/dead-units", k, "warning",
                    f"layer {k} (relu): {dead:.0%} of its units never fire on the data {when}",
                    f"{int(round(dead * Z.shape[1]))} of layer {k}'s {Z.shape[1]} units have z <= 0 for all "
                    f"{len(X)} examples: their gradient is 0, so they never recover",
                    "initialise biases at 0 or slightly positive, use He initialisation, lower the learning rate, "
                    "or use leaky_relu", 0.85))
    return out


def pinned_output(net, P: np.ndarray, when: str) -> list:
    """The output layer's activations P (N, out): sigmoid outputs within PINNED of 0 or 1, or a
    softmax giving one class more than 1 - PINNED, for most of them."""
    L, activation = len(net.layers), net.layers[-1].activation
    if activation == "sigmoid":
        share = float(np.mean((P < PINNED) | (P > 1 - PINNED)))
        what = f"{share:.0%} of its outputs are within 1e-7 of 0 or 1"
        seen = f"on the {len(P)} examples, {share:.0%} of the sigmoid outputs are below 1e-7 or above 1 - 1e-7"
    elif activation == "softmax":
        share = float(np.mean(P.max(axis=1) > 1 - PINNED))
        what = f"on {share:.0%} of the examples one class gets more than 1 - 1e-7"
        seen = (f"on {share:.0%} of the {len(P)} examples the softmax puts more than 1 - 1e-7 on one class (every "
                "other class gets less than 1e-7)")
    else:
        return []
    if not share > MOST:
        return []
    return [Finding(
        "train/saturated", L, "warning",
        f"layer {L} ({activation} output) is pinned at 0/1 {when}: {what}, where a clipped loss has no gradient",
        f"{seen}. That is past the clip of most losses (np.clip(p, 1e-7, 1 - 1e-7), or 1e-10 ... 1e-15): there the "
        "clipped loss no longer changes with the output, so it gets no gradient, and a wrong output stays wrong at "
        "-ln(clip) each (23 for 1e-10), which leaves the loss stuck at a high value; unclipped, log(1 - p) becomes "
        "-inf once p rounds to 1",
        _PINNED_FIX[when == "at initialisation"], 0.85)]


_PINNED_FIX = {
    True: "the output layer's pre-activations are far too large: initialise the weights smaller, rng.normal(0, "
          "1/sqrt(fan_in)) and smaller still in the output layer, with biases at 0, and scale the inputs",
    False: "training drove the output layer's pre-activations far out: fix the gradient if the check found it "
           "wrong, lower train.lr, and keep the initial weights small (rng.normal(0, 1/sqrt(fan_in)))",
}


def dedupe(findings: list) -> list:
    """One finding per (id, layer): the first, e.g. the one seen at initialisation."""
    seen, out = set(), []
    for f in findings:
        if (f.id, f.layer) not in seen:
            seen.add((f.id, f.layer))
            out.append(f)
    return out


def unscaled(X: np.ndarray) -> list:
    """Most features offset far from 0 relative to their spread, spread far from 1, or huge values."""
    mean, std = np.abs(X.mean(axis=0)), X.std(axis=0)
    far = (mean > 5 * np.maximum(std, 1e-12)) | (std > 20) | ((std < 0.05) & (std > 0))
    if np.mean(far) > MOST or float(np.max(np.abs(X))) > 1e3:
        return [Finding("data/unscaled", None, "warning",
                        f"the input features are far from unit scale (|mean| up to {mean.max():.3g}, "
                        f"std from {std.min():.3g} to {std.max():.3g})",
                        f"{int(np.count_nonzero(far))} of {X.shape[1]} features are offset or spread far from unit "
                        f"scale, the largest |value| is {float(np.max(np.abs(X))):.3g}; such inputs saturate "
                        "sigmoid/tanh units and make one learning rate too large for some weights and too small "
                        "for others",
                        "standardise each feature: X = (X - X.mean(axis=0)) / X.std(axis=0) (or divide pixels by 255)",
                        0.8)]
    return []
