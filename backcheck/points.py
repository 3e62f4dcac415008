"""Where the gradients are checked.

A gradient bug is a bug at every point, so a check may choose where it looks:

- the code's own starting parameters, always;
- a **nearby point** (every parameter moved by a small random amount) for probes that sit on a
  kink at the start, such as ReLU units at exactly z = 0 from zero inputs and zero biases;
- a **well-conditioned point** when the start is degenerate (units in their flat tails, outputs
  at the loss's clip, dead ReLU layers, vanishing pre-activations): the same shapes, each layer
  rescaled unit by unit so that its pre-activations on the data have mean about 0 and standard
  deviation 1. Mistakes are named there, where the gradient shows them.

The analysis runs backcheck's reference network at the code's parameters (canonical layout: X
is (N, in), W is (in, out)); the config's ``network:`` is what it assumes the code computes.
"""

from __future__ import annotations

import numpy as np

from backcheck import reference

NEARBY = 1e-3  # the first nearby point moves each entry by about this share of its parameter's scale
SATURATED_Z = {"sigmoid": 4.6, "tanh": 2.65}  # |z| beyond which the derivative is below ~1% of its peak
MOST = 0.5  # a layer is saturated or dead when more than this share of it is
AT_CLIP = 1e-6  # an output probability this close to 0 or 1 is where a loss's clip or epsilon acts
CLIPPED_SHARE = 0.25  # ... and the start is degenerate when this share of the examples are there


def nearby(values: dict, attempt: int, seed: int = 0) -> dict:
    """Every parameter moved by a random relative amount: NEARBY, then 4 and 16 times more for
    later attempts. A parameter that is all zeros (zero biases) moves by its layer's weight scale."""
    rng = np.random.default_rng([seed, 7, attempt])
    rho = NEARBY * 4.0**attempt
    by_layer = {}
    for s, v in values.items():
        if s.role == "W":
            by_layer[s.layer] = float(np.sqrt(np.mean(np.square(v.astype(np.float64))))) if v.size else 0.0
    out = {}
    for s, v in values.items():
        x = v.astype(np.float64)
        rms = float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0
        scale = np.maximum(np.abs(x), rms or by_layer.get(s.layer) or 0.1)
        moved = x + rho * scale * rng.standard_normal(x.shape)
        out[s] = moved.astype(v.dtype) if v.dtype.kind == "f" else moved
    return out


def start_problems(net, params, X: np.ndarray, Y: np.ndarray) -> list[str]:
    """Why the starting parameters are a poor place to see a gradient, in words; empty when fine."""
    with np.errstate(all="ignore"):
        cache = reference.forward(net, params, X)
    out = []
    L = len(net.layers)
    for k, layer in enumerate(net.layers, start=1):
        Z, A = cache.Z[k], cache.A[k]
        if not np.all(np.isfinite(Z)):
            out.append(f"layer {k}'s pre-activations overflow")
            continue
        if k < L and layer.activation in SATURATED_Z:
            share = float(np.mean(np.abs(Z) > SATURATED_Z[layer.activation]))
            if share > MOST:
                out.append(f"{share:.0%} of layer {k}'s {layer.activation} units sit in their flat tails")
        elif k < L and layer.activation == "relu":
            dead = float(np.mean(np.all(Z <= 0, axis=0)))
            if dead > MOST:
                out.append(f"{dead:.0%} of layer {k}'s ReLU units are dead on every example")
        if k == L and layer.activation in ("sigmoid", "softmax"):
            near = (A < AT_CLIP) | (A > 1 - AT_CLIP)
            share = float(np.mean(np.any(near, axis=1))) if layer.activation == "sigmoid" else \
                float(np.mean(np.max(A, axis=1) > 1 - AT_CLIP))
            if share > CLIPPED_SHARE:
                out.append(f"{share:.0%} of the examples have an output probability within {AT_CLIP:g} of 0 or 1, "
                           "where a loss's clip or epsilon flattens it")
        scale = float(np.std(Z)) if Z.size else 0.0
        if 0 < scale < 1e-3:
            out.append(f"layer {k}'s pre-activations are tiny (standard deviation {scale:.1e})")
    return out


def rescaled(net, params, X: np.ndarray, seed: int = 0) -> list:
    """The same shapes with every layer's units rescaled on the data X: unit j's weights divided by
    the standard deviation of its pre-activation, its bias set so that the mean is small (a random
    0.1 N(0, 1)); a unit whose pre-activation does not vary gets fresh Glorot weights first."""
    rng = np.random.default_rng([seed, 11])
    out = []
    A = np.asarray(X, dtype=np.float64)
    for (W, b), layer in zip(params, net.layers):
        W2 = np.array(W, dtype=np.float64)
        b2 = np.array(b, dtype=np.float64)
        if not np.all(np.isfinite(W2)):
            W2 = np.zeros_like(W2)
        fan_in, units = W2.shape
        Z = A @ W2
        sd = Z.std(axis=0)
        flat = ~(sd > 1e-8) | ~np.isfinite(sd)
        if flat.any():
            W2[:, flat] = rng.standard_normal((fan_in, int(flat.sum()))) * np.sqrt(2.0 / (fan_in + units))
            Z = A @ W2
            sd = Z.std(axis=0)
        sd = np.where(sd > 1e-12, sd, 1.0)
        W2 = W2 / sd
        if layer.bias:
            target = 0.1 * rng.standard_normal(units) - (A @ W2).mean(axis=0)
            b2 = np.broadcast_to(target, b2.shape).copy() if b2.ndim == 2 else target
        else:
            b2 = np.zeros_like(b2)
        out.append((W2, b2))
        A = reference.ACTIVATIONS[layer.activation].f(A @ W2 + b2, layer.alpha)
    return out
