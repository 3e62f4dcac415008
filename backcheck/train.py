"""`backcheck diagnose`: train with the code's own gradients and explain why the loss rises or stalls
(contract section 5).

The gradient check comes first (its findings stay); then plain SGD at the config's ``train.lr``
with the code's gradients (or its step), the loss recorded at every step, and findings from
evidence: a line search along -gradient (step too large, not a descent direction), the
activations of backcheck's reference network at the code's parameters (saturated or dead units),
per-layer gradient norms, the loss at initialisation, and the scale of the inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from backcheck import reference
from backcheck.errors import UserCodeError
from backcheck.gradcheck import match_shape
from backcheck.results import Finding

FLAT_TAIL = {"sigmoid": lambda a: (a < 0.01) | (a > 0.99), "tanh": lambda a: np.abs(a) > 0.99}
MOST = 0.5  # "most units": more than this share of a layer's unit-activations


@dataclass(frozen=True)
class Training:
    lr: float
    steps: int
    losses: tuple[float, ...]
    trend: str  # falling | flat | rising | oscillating | diverged
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]

    def to_json(self) -> dict:
        return {"lr": self.lr, "steps": self.steps, "losses": list(self.losses), "trend": self.trend}


def train(config, prep, canonical_params, gradients_right: bool) -> Training:
    """Train the bound code (``prep`` from runner.prepare) and explain what happened.

    ``canonical_params(arrays)`` maps the code's live arrays to backcheck's [(W (in, out), b)] for
    the reference network; ``gradients_right`` is the verdict of the gradient check."""
    binding, data = prep.binding, prep.data
    spec, net = config.train, config.network
    findings, notes = [], []
    findings += _unscaled(data.X)
    arrays = binding.arrays()
    start = {s: a.copy() for s, a in arrays.items()}
    params0 = canonical_params(arrays)
    findings += _initial_loss(net, params0, data)
    findings += _units(net, params0, data.X, "at initialisation")
    X_all, Y_all = binding.X, binding.Y
    batches = _batches(binding, spec.batch, config.code.layout if config.code else "rows")
    if spec.batch:
        notes.append(f"trained on mini-batches of {spec.batch} of the {len(data.X)} examples, in order")
    losses, g0 = [], None
    try:
        for t in range(spec.steps):
            binding.attach(*next(batches), canonical=(data.X, data.Y))
            value = binding.loss()
            losses.append(value)
            g = _gradient(binding, spec.lr)
            if g0 is None:
                g0 = g
            bad = [s.code_name for s, v in g.items() if not np.all(np.isfinite(v))]
            if bad:
                findings.append(_nonfinite(t, f"the gradient of {', '.join(bad)}"))
                break
            for s, a in arrays.items():
                a -= spec.lr * g[s].astype(a.dtype, copy=False)
            if not np.all([np.all(np.isfinite(a)) for a in arrays.values()]):
                findings.append(_nonfinite(t, "the parameters after the update"))
                break
    except UserCodeError as exc:
        if exc.kind != "nan":
            raise
        findings.append(_nonfinite(len(losses), "the loss"))
    finally:
        binding.attach(X_all, Y_all, canonical=(data.X, data.Y))
    trend = _trend(losses, spec.steps)
    findings += _units(net, canonical_params(arrays), data.X, "after training")
    for s, a in arrays.items():  # back to the start for the line search
        np.copyto(a, start[s])
    if g0 is not None:
        findings += _line_search(binding, g0, spec.lr, trend, gradients_right)
        findings += _gradient_flow(net, binding, g0)
    return Training(spec.lr, spec.steps, tuple(float(v) for v in losses), trend, tuple(_dedupe(findings)),
                    tuple(notes))


def _gradient(binding, lr: float) -> dict:
    raw = binding.step_gradient(lr) if binding.uses_step else binding.analytic()
    arrays = binding.arrays()
    out = {}
    for s, a in arrays.items():
        g, _ = match_shape(s, a, np.asarray(raw[s], dtype=np.float64), binding.code.file.name if binding.code else "")
        out[s] = g
    return out


def _batches(binding, batch: int | None, layout: str):
    X, Y = binding.X, binding.Y
    n = X.shape[1] if layout == "columns" else X.shape[0]
    if not batch or batch >= n:
        while True:
            yield X, Y
    start = 0
    while True:
        idx = np.arange(start, start + batch) % n
        start = (start + batch) % n
        xb = X[:, idx] if layout == "columns" else X[idx]
        yb = Y[idx] if Y.ndim == 1 else (Y[:, idx] if layout == "columns" else Y[idx])
        yield np.ascontiguousarray(xb), np.ascontiguousarray(yb)


# ---------------------------------------------------------------- what the losses say


def _trend(losses: list, steps: int) -> str:
    if not losses or len(losses) < steps or not all(math.isfinite(v) for v in losses):
        return "diverged"
    L = np.asarray(losses)
    first, last = L[0], L[-1]
    if last > 10 * max(first, 1e-12):
        return "diverged"
    diffs = np.diff(L)
    ups = np.count_nonzero(diffs > 0)
    if len(diffs) > 4 and ups > 0.3 * len(diffs) and np.count_nonzero(np.diff(np.sign(diffs)) != 0) > 0.3 * len(diffs):
        return "oscillating" if last > 0.9 * first else "falling"
    if last > first * 1.02:
        return "rising"
    if last < first * 0.98:
        return "falling"
    return "flat"


def _nonfinite(step: int, what: str) -> Finding:
    return Finding("train/nonfinite", None, "error", f"{what} became NaN or inf at step {step + 1}",
                   f"training stopped at step {step + 1}: {what} is not finite (overflow in exp, a log of 0, "
                   "or a step so large that the weights blew up)",
                   "lower train.lr; clip the argument of exp and log (np.clip(p, 1e-12, 1)); check the "
                   "gradient first (backcheck verify)", 0.9)


def _line_search(binding, g: dict, lr: float, trend: str, gradients_right: bool) -> list:
    """Losses along -gradient from the starting parameters, at lr and at smaller steps."""
    arrays = binding.arrays()
    start = {s: a.copy() for s, a in arrays.items()}
    f0 = binding.loss()

    def at(step: float) -> float:
        for s, a in arrays.items():
            np.copyto(a, start[s] - step * g[s])
        try:
            return binding.loss()
        except UserCodeError:
            return math.inf
        finally:
            for s, a in arrays.items():
                np.copyto(a, start[s])

    steps = [lr / 2 ** k for k in range(0, 14)]
    values = {s: at(s) for s in steps}
    lower = [s for s in steps if values[s] < f0]
    tiny = [lr * 1e-6, lr * 1e-5, lr * 1e-4]
    if not lower and all(at(s) >= f0 for s in tiny):
        return [Finding(
            "train/not-descent", None, "error", "the loss rises for every small step along -gradient",
            f"from the starting loss {f0:.6g}, steps of {tiny[0]:.1e} to {lr:g} times the gradient all raise "
            "the loss: the code's gradient is not a descent direction",
            "the gradient has a wrong sign or is wrong at some layer: run backcheck verify and fix what it names",
            0.95 if not gradients_right else 0.7)]
    if trend in ("rising", "oscillating", "diverged", "flat") and gradients_right and lower and values[lr] >= f0:
        best = max(lower)
        return [Finding(
            "train/lr-too-large", None, "error" if trend != "flat" else "warning",
            f"the step overshoots: the loss falls along -gradient only for steps up to about {best:.3g}, "
            f"train.lr is {lr:g}",
            f"the gradient is right (the check passed), but one step of lr {lr:g} takes the loss from {f0:.6g} to "
            f"{values[lr]:.6g}; a step of {best:.3g} lowers it to {values[best]:.6g}",
            f"lower the learning rate to about {best / 2:.3g} (or use a schedule that starts there)", 0.9)]
    return []


def _gradient_flow(net, binding, g: dict) -> list:
    norms = {}
    for s, v in g.items():
        if s.role == "W":
            norms[s.layer] = float(np.linalg.norm(v)) / math.sqrt(max(v.size, 1))
    L = len(net.layers)
    if L < 3 or not norms.get(L) or 1 not in norms:
        return []
    ratio = norms[1] / norms[L]
    detail = ", ".join(f"layer {k}: {norms[k]:.2e}" for k in sorted(norms))
    if ratio < 1e-3:
        return [Finding("train/vanishing-gradient", 1, "warning",
                        f"the gradient shrinks {1 / ratio:.0f}-fold from the output layer to layer 1",
                        f"root-mean-square weight gradient per layer: {detail}",
                        "use ReLU or tanh instead of sigmoid in hidden layers, scale the initial weights by "
                        "1/sqrt(fan_in) (Xavier/He), or use fewer layers", 0.8)]
    if ratio > 1e3:
        return [Finding("train/exploding-gradient", 1, "warning",
                        f"the gradient grows {ratio:.0f}-fold from the output layer to layer 1",
                        f"root-mean-square weight gradient per layer: {detail}",
                        "scale the initial weights down (1/sqrt(fan_in)), lower the learning rate, or clip "
                        "gradients", 0.8)]
    return []


# ---------------------------------------------------------------- what the network's state says


def _initial_loss(net, params, data) -> list:
    if net.loss != "cross_entropy":
        return []
    C = net.widths[-1]
    value = reference.loss(net, params, data.X, data.Y)
    expected = math.log(C)
    if value > 3 * expected + 1:
        return [Finding("train/initial-loss", None, "warning",
                        f"the loss at initialisation is {value:.3g}; uninformed outputs give ln {C} = {expected:.3g}",
                        "the network starts confidently wrong: its initial outputs are far from uniform",
                        "initialise the weights smaller (e.g. rng.normal(0, 1/sqrt(fan_in))) and the biases at 0",
                        0.8)]
    return []


def _units(net, params, X, when: str) -> list:
    cache = reference.forward(net, params, X)
    out = []
    for k, layer in enumerate(net.layers[:-1], start=1):  # hidden layers
        A, Z = cache.A[k], cache.Z[k]
        if layer.activation in FLAT_TAIL:
            share = float(np.mean(FLAT_TAIL[layer.activation](A)))
            if share > MOST:
                out.append(Finding(
                    "train/saturated", k, "warning",
                    f"layer {k} ({layer.activation}): {share:.0%} of its unit-activations sit in the flat tails {when}",
                    f"where the {layer.activation} is flat its derivative is near 0, so these units barely learn",
                    "scale the inputs to unit variance and initialise the weights with 1/sqrt(fan_in); a smaller "
                    "learning rate keeps them from saturating during training", 0.85))
        elif layer.activation in ("relu",):
            dead = float(np.mean(np.all(Z <= 0, axis=0)))
            if dead > MOST:
                out.append(Finding(
                    "train/dead-units", k, "warning",
                    f"layer {k} (relu): {dead:.0%} of its units never fire on the data {when}",
                    "a unit whose input is negative for every example has gradient 0 and never recovers",
                    "initialise biases at 0 or slightly positive, use He initialisation, lower the learning rate, "
                    "or use leaky_relu", 0.85))
    return _dedupe(out)


def _dedupe(findings: list) -> list:
    seen, out = set(), []
    for f in findings:
        if (f.id, f.layer) not in seen:
            seen.add((f.id, f.layer))
            out.append(f)
    return out


def _unscaled(X: np.ndarray) -> list:
    mean, std = np.abs(X.mean(axis=0)), X.std(axis=0)
    far = (mean > 5 * np.maximum(std, 1e-12)) | (std > 20) | ((std < 0.05) & (std > 0))
    if np.mean(far) > 0.5 or float(np.max(np.abs(X))) > 1e3:
        return [Finding("data/unscaled", None, "warning",
                        f"the input features are far from unit scale (|mean| up to {mean.max():.3g}, "
                        f"std from {std.min():.3g} to {std.max():.3g})",
                        "large or offset inputs saturate sigmoid/tanh units and make one learning rate too large "
                        "for some weights and too small for others",
                        "standardise each feature: X = (X - X.mean(axis=0)) / X.std(axis=0) (or divide pixels by 255)",
                        0.8)]
    return []
