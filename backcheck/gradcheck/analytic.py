"""The code's own gradient, read off its gradients, its backward pass or its training step."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from backcheck.errors import UserCodeError
from backcheck.gradcheck.thresholds import SIGMAS, STEP_RATES
from backcheck.results import Finding


@dataclass
class Analytic:
    """The code's gradient per slot (its own shapes, float64), the bound of its own error per entry
    (gradients read off steps carry the rounding of the update), and what was noticed on the way.

    ``stale`` are the layers whose step-read gradient changes with the learning rate; ``at_rate``
    their gradients at the step's rate ``rate``, which is what the table compares."""

    grads: dict
    uncertainty: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    stale: set = field(default_factory=set)
    at_rate: dict = field(default_factory=dict)
    rate: float | None = None


def analytic_gradient(ev, values: dict, precision_dtype: str = "float64", rate: float = 0.1,
                      fixed_lr: float | None = None, step_name: str = "step", top_layer: int = 1,
                      where: str | None = None) -> Analytic:
    """Call the code's gradients, or read them off plain-SGD steps: (before - after) / lr at two
    rates, extrapolated to lr -> 0 (a gradient that changes with lr is stale weights or not SGD)."""
    if not ev.uses_step:
        grads = ev.gradient()
        return Analytic({s: np.asarray(g, dtype=np.float64) for s, g in grads.items()},
                        {s: 0.0 for s in grads})
    if fixed_lr:  # the code's own rate: one read, nothing to extrapolate
        g = ev.step_gradient(fixed_lr)
        return Analytic(g, {s: _step_rounding(values[s], g[s], fixed_lr) for s in g})
    lr1, lr2 = STEP_RATES if precision_dtype == "float64" else (1e-2, 1e-1)
    g1, g2 = ev.step_gradient(lr1), ev.step_gradient(lr2)
    u1 = {s: _step_rounding(values[s], g1[s], lr1) for s in g1}
    u2 = {s: _step_rounding(values[s], g2[s], lr2) for s in g2}
    out = Analytic({s: g1[s] - lr1 * (g2[s] - g1[s]) / (lr2 - lr1) for s in g1},  # extrapolated to lr -> 0
                   {s: u1[s] * (1 + lr1 / (lr2 - lr1)) + u2[s] * lr1 / (lr2 - lr1) for s in g1})
    out.notes.append(f"gradients read from {step_name}() as (before - after) / lr at lr = {lr1:g} and "
                     f"{lr2:g}, extrapolated to lr -> 0")
    moved = set()
    for s in ev.slots:
        diff = np.abs(g2[s] - g1[s])
        allowed = SIGMAS * (u1[s] + u2[s]) + 1e-7 * (np.abs(g1[s]) + np.abs(g2[s]))
        if np.linalg.norm(diff) > np.linalg.norm(allowed) and np.any(diff > allowed):
            moved.add(s.layer)
    if not moved:
        return out
    if top_layer in moved:
        raise UserCodeError(
            f"{step_name}() is not plain SGD: the update of the output layer is not lr times a fixed "
            "gradient (momentum, Adam or a schedule?); backcheck reads gradients from plain SGD steps only. "
            "Bind the gradients instead (gradients:, or backward: with grads:; see docs/binding.md)", where,
            kind="contract")
    k = max(moved) + 1
    g_rate = ev.step_gradient(rate)
    out.stale, out.rate = moved, rate
    out.at_rate = {s: g_rate[s] for s in ev.slots if s.layer in moved}
    out.uncertainty.update({s: _step_rounding(values[s], g_rate[s], rate) for s in out.at_rate})
    out.findings.append(Finding(
        "step/stale-weights", k, "error",
        f"layer {k} passes its gradient down through weights it has already updated",
        f"the gradients of layers {', '.join(map(str, sorted(moved)))} change with the learning rate "
        f"(lr {lr1:g} vs {lr2:g}): layer {k} updates its weights in place before computing the gradient it "
        f"sends to the layer below, so that layer learns from weights of the next step; the table compares "
        f"those layers' gradients at lr {rate:g}",
        f"in layer {k}'s backward, compute the gradient for the layer below (delta @ W.T, or W.T @ delta) "
        "with the weights as they were, before `W -= lr * dW`; or compute every gradient first and update "
        "afterwards", 0.95))
    return out


def _step_rounding(before: np.ndarray, grad: np.ndarray, lr: float) -> np.ndarray:
    """The error of (before - after) / lr from rounding before and after to the parameter's dtype."""
    dtype = before.dtype if before.dtype.kind == "f" else np.dtype(np.float64)
    after = np.abs(before.astype(np.float64)) + lr * np.abs(grad)
    return 2.0 * float(np.finfo(dtype).eps) * (np.abs(before.astype(np.float64)) + after) / lr


def match_shape(slot, param: np.ndarray, grad: np.ndarray, where: str) -> tuple[np.ndarray, bool]:
    """The gradient in the parameter's own shape, and whether it came transposed (a non-square
    weight gradient whose shape is the parameter's reversed)."""
    if grad.shape == param.shape:
        return grad, False
    if grad.ndim == 2 and param.ndim == 2 and grad.shape == param.shape[::-1]:
        return grad.T, True
    if grad.size == param.size:
        return grad.reshape(param.shape), False
    raise UserCodeError(
        f"the gradient of {slot.code_name} has shape {grad.shape} ({grad.size} numbers); the parameter has "
        f"shape {param.shape} ({param.size} numbers): they cannot be compared", where, kind="contract")


def transposed_finding(slot, param_shape, grad_shape) -> Finding:
    return Finding(
        "weight-gradient/transposed", slot.layer, "error", f"the gradient of {slot.code_name} is transposed",
        f"{slot.code_name} has shape {tuple(param_shape)}, its gradient {tuple(grad_shape)}",
        "swap the factors of the product, e.g. X.T @ delta (rows) or delta @ X.T (columns)", 0.99)
