"""The training loop of ``backcheck diagnose`` and what the loss says: plain SGD with the code's
gradients, the trend of the curve, a loss or gradient that stops being finite, and a line search
along -gradient for a step that overshoots or a gradient that is not a descent direction."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from backcheck.errors import UserCodeError
from backcheck.gradcheck import match_shape
from backcheck.results import Finding

LINE_STEPS = 14  # the line search tries lr, lr/2, ..., lr/2**13
_TREND_VERB = {"flat": "does not fall", "rising": "rises", "oscillating": "oscillates", "diverged": "diverges",
               "falling": "falls"}


@dataclass
class Run:
    """What the SGD loop leaves behind."""

    losses: list
    nonfinite: Finding | None = None
    timed_out: bool = False
    best: dict | None = None  # the parameters with the lowest loss, and that loss
    best_loss: float = math.inf


def sgd(ev, prep, spec, values: dict, batch: int | None, deadline: float | None, progress=None) -> Run:
    """Plain SGD at spec.lr for spec.steps steps from ``values`` (changed in place to where training
    ends); the loss on all of the data before each step."""
    data = prep.data
    full = (prep.X, prep.Y, (data.X, data.Y))
    batches = mini_batches(prep.X, prep.Y, data, batch, prep.layout)
    run = Run([])
    try:
        for t in range(spec.steps):
            if progress is not None:
                progress("train", t, spec.steps)
            if deadline is not None and time.monotonic() > deadline:
                run.timed_out = True
                break
            if batch:
                ev.attach(*full)
            value = loss_or_none(ev, values)
            if value is None:
                run.nonfinite = nonfinite(t, "the loss", "", run.losses)
                break
            run.losses.append(value)
            if value < run.best_loss:
                run.best, run.best_loss = {s: a.copy() for s, a in values.items()}, value
            if batch:
                ev.attach(*next(batches))
            g = gradient(ev, spec.lr, values, prep.where)
            for s, a in values.items():
                a -= spec.lr * g[s].astype(a.dtype, copy=False)
    except UserCodeError as exc:
        if exc.kind != "nan":
            raise
        # the loss of this step was finite, its gradient is not
        run.nonfinite = nonfinite(len(run.losses) - 1, "the gradient", exc.message, run.losses)
    finally:
        if batch:
            ev.attach(*full)
    return run


def loss_or_none(ev, values: dict | None = None) -> float | None:
    """The code's loss (at ``values``, when given), or None when it is NaN or inf."""
    try:
        if values is not None:
            ev.set_values(values)
        return ev.loss()
    except UserCodeError as exc:
        if exc.kind != "nan":
            raise
        return None


def gradient(ev, lr: float, values: dict, where: str = "") -> dict:
    """The code's gradient at ``values`` (or (before - after) / lr of its step) in the shape of each
    parameter, float64."""
    ev.set_values(values)
    raw = ev.step_gradient(lr) if ev.uses_step else ev.gradient()
    return {s: match_shape(s, values[s], np.asarray(raw[s], dtype=np.float64), where)[0] for s in values}


def batch_size(batch: int | None, prep, n: int) -> tuple[int | None, list]:
    """train.batch, unless it covers the data or the code keeps one bias per example (whose shape
    fixes the batch)."""
    if not batch or batch >= n:
        return None, []
    if any(o.per_example for o in prep.orient.values()):
        return None, [f"train.batch {batch} ignored: the code keeps one bias per example, so every step uses "
                      f"the whole batch of {n}"]
    return batch, [f"trained on mini-batches of {batch} of the {n} examples, in order; the recorded loss is "
                   "on all of them"]


def mini_batches(X, Y, data, batch: int | None, layout: str):
    """Endless mini-batches in order, wrapping around: (X, Y) in the code's layout, and canonical."""
    if not batch:
        return
    n = len(data.X)
    start = 0
    while True:
        idx = np.arange(start, start + batch) % n
        start = (start + batch) % n
        xb = X[:, idx] if layout == "columns" else X[idx]
        yb = Y[idx] if Y.ndim == 1 else (Y[:, idx] if layout == "columns" else Y[idx])
        yield np.ascontiguousarray(xb), np.ascontiguousarray(yb), (data.X[idx], data.Y[idx])


SPIKE = 0.5  # a spike: one step raises the loss by more than this share of its value (and by 1% of its largest)
UNSTEADY = 1 / 3  # an unstable run rises on at least this share of its steps, with a spike


def spikes(losses) -> list:
    """The steps t (0-based) where the loss jumped: losses[t + 1] - losses[t] is more than SPIKE
    times |losses[t]| and more than 1% of the largest |loss| (so noise near 0 is no spike)."""
    L = np.asarray(losses, dtype=float)
    if len(L) < 2:
        return []
    d = np.diff(L)
    return [int(t) for t in np.flatnonzero((d > SPIKE * np.abs(L[:-1])) & (d > 0.01 * np.abs(L).max()))]


def _turns(d: np.ndarray) -> int:
    signs = np.sign(d[d != 0])
    return int(np.count_nonzero(signs[1:] != signs[:-1]))


def unsteady(losses) -> bool:
    """The loss rises on at least a third of its steps, jumps at least once, and changes direction
    at least twice and in at least 10% of the steps: unstable, wherever it ends."""
    d = np.diff(np.asarray(losses, dtype=float))
    return (len(d) > 0 and np.count_nonzero(d > 0) >= UNSTEADY * len(d) and bool(spikes(losses))
            and _turns(d) >= max(2, 0.1 * len(d)))


def trend_of(losses: list) -> str:
    """falling | flat | rising | oscillating | diverged, from the finite losses of a run (the rules
    are listed in docs/diagnose.md)."""
    if not losses:
        return "diverged"
    L = np.asarray(losses, dtype=float)
    first, last, low = L[0], L[-1], L.min()
    if last > 10 * max(first, 1e-12):
        return "diverged"
    d = np.diff(L)
    moved = float(np.abs(d).sum())
    if moved == 0:
        return "flat"
    up = float(d[d > 0].sum()) / moved  # the share of the loss's movement that went up
    turns = _turns(d)
    gain, given_back = first - low, last - low
    kept_most = given_back <= 0.5 * gain
    if up >= 0.25 and turns >= max(2, 0.1 * len(d)) and not (last <= 0.9 * first and kept_most):
        return "oscillating"
    if unsteady(L):  # ending lower does not make a spiking loss a falling one
        return "oscillating"
    if last > 1.02 * first or (low < 0.9 * first and not kept_most):
        return "rising"
    if last < 0.98 * first:
        return "falling"
    return "flat"


def nonfinite(step: int, what: str, message: str, losses: list) -> Finding:
    said = f" ({message})" if message else ""
    before = f"; until then the loss went from {losses[0]:.4g} to {losses[-1]:.4g}" if losses else ""
    return Finding("train/nonfinite", None, "error", f"{what} became NaN or inf at step {step + 1}",
                   f"training stopped at step {step + 1} of plain SGD: {what} is not finite{said}{before}. Usual "
                   "causes: exp overflowing (a softmax without subtracting the max), a log of 0, or a step so "
                   "large that the weights blew up",
                   "lower train.lr; subtract the row max before exp in the softmax and clip the argument of log "
                   "(np.log(np.clip(p, 1e-12, 1))); check the gradient first (backcheck verify)", 0.9)


def line_search(ev, at: dict, g: dict, f0: float, lr: float, trend: str, gradients_right: bool,
                where: str, descent: bool = True, record: dict | None = None) -> list:
    """Losses along -gradient from the parameters ``at``, at lr and at smaller steps.

    ``descent``: also test whether the gradient is a descent direction at all. ``record`` gets the
    measured numbers for the reports to draw: "loss" (f0), "steps" (largest first) and "losses"
    (inf where the loss is not finite)."""

    def loss_at(step: float) -> float:
        value = loss_or_none(ev, {s: at[s] - step * g[s] for s in at})
        return math.inf if value is None else value

    steps = [lr / 2**k for k in range(LINE_STEPS)]
    values = {s: loss_at(s) for s in steps}
    lower = [s for s in steps if values[s] < f0]
    tiny = [lr * 1e-6, lr * 1e-5, lr * 1e-4]
    at_tiny = [loss_at(s) for s in tiny] if descent and not lower else []
    if record is not None:
        tried = steps + (tiny[::-1] if at_tiny else [])
        record.update(loss=f0, steps=tried, losses=[values[s] for s in steps] + at_tiny[::-1])
    # uphill: no step lowers the loss and some raise it (a zero gradient moves nothing: it is not uphill)
    if at_tiny and all(v >= f0 for v in at_tiny) and any(v > f0 for v in [*at_tiny, *values.values()]):
        return [_not_descent(f0, tiny[0], lr, gradients_right)]
    if trend in ("rising", "oscillating", "diverged", "flat") and gradients_right and lower and values[lr] >= f0:
        return [_too_large(lr, f0, values[lr], max(lower), values[max(lower)], trend, where)]
    return []


def gradient_scale(ev, at: dict, g: dict) -> float:
    """How many times the code's gradient ``g`` is the slope of the code's own loss along it, at the
    parameters ``at``: |g|^2 over the central difference of the loss along g (N for a gradient summed
    over N examples, 1/N for one divided by N twice)."""
    norm2 = float(sum(np.sum(g[s] ** 2) for s in at))
    size = math.sqrt(float(sum(np.sum(at[s] ** 2) for s in at)))
    h = 1e-6 * max(1.0, size) / math.sqrt(norm2) if norm2 > 0 else 0.0

    def loss_at(step: float) -> float | None:
        return loss_or_none(ev, {s: at[s] - step * g[s] for s in at})

    down, up = (loss_at(-h), loss_at(h)) if h else (None, None)
    if down is None or up is None or down == up:
        return math.nan
    return norm2 / ((down - up) / (2 * h))


def unstable(losses: list, lr: float, trend: str, gradients_right: bool, summed: tuple | None) -> Finding:
    """The loss rises and falls in jumps, and no line search explains it.

    ``summed`` = (examples per step, whether the gradient is that many times too large or too small),
    when the gradient check found scale/batch-sum: the step it takes is then lr x N (or lr / N)."""
    L = np.asarray(losses, dtype=float)
    d = np.diff(L)
    jumps = spikes(L)
    # the jump by the largest factor (a rise from 0 counts as the largest)
    t = max(jumps or [int(np.argmax(d))], key=lambda j: L[j + 1] / L[j] if L[j] > 0 else math.inf)
    low = int(np.argmin(L))  # losses[i] is the loss after i steps
    lowest = "at the start" if low == 0 else f"after step {low}"
    shape = (f"the loss went from {L[0]:.4g} to {L[-1]:.4g}, lowest {L[low]:.4g} {lowest}; it rose on "
             f"{np.count_nonzero(d > 0)} of {len(d)} steps, {len(jumps)} of them by more than half (the largest: "
             f"from {L[t]:.4g} to {L[t + 1]:.4g} in step {t + 1})")
    if summed is not None:
        n, larger = summed
        step = lr * n if larger else lr / n
        why = (f"the gradient check found every gradient {n} times too {'large' if larger else 'small'} "
               f"(scale/batch-sum), so each step of lr {lr:g} is in effect a step of "
               f"lr {'x' if larger else '/'} N = {lr:g} {'x' if larger else '/'} {n} = {step:.3g} along the right "
               "gradient")
        fix = (f"each step is in effect lr {'x' if larger else '/'} N = {lr:g} {'x' if larger else '/'} {n} = "
               f"{step:.3g}; {'average' if larger else 'divide'} the gradient over the batch once (scale/batch-sum's "
               f"fix) and it is {lr:g}")
    elif gradients_right:
        why = ("the gradient is right (the check passed), and a line search along -gradient from the starting "
               "parameters and from those of the lowest loss finds no single step of lr that overshoots: the steps "
               "are too large where the loss is steeper than at either point (or mini-batches disagree)")
        fix = f"lower train.lr (try {lr / 4:.3g}) or decay it during training; with train.batch, a larger batch"
    else:
        why = ("the gradient check found wrong gradients: a step along a wrong gradient can raise the loss at any "
               "learning rate")
        fix = "fix the gradients the check names first, then look at the curve again"
    verb = "oscillates" if trend == "oscillating" else "jumps up and down before it diverges"
    return Finding("train/unstable", None, "warning",
                   f"training is unstable: the loss rises on {np.count_nonzero(d > 0)} of {len(d)} steps, in jumps "
                   f"of up to {L[t + 1] / L[t]:.3g} times its value" if L[t] > 0 else
                   f"training is unstable: the loss rises on {np.count_nonzero(d > 0)} of {len(d)} steps, in jumps",
                   f"{shape}: it {verb} instead of falling; {why}", fix, 0.8)


def effective_step(lr: float, summed: tuple) -> str:
    """A note for a gradient summed over the batch (or divided by it twice): the step SGD really takes."""
    n, larger = summed
    step = lr * n if larger else lr / n
    return (f"the gradients are {n} times too {'large' if larger else 'small'} (scale/batch-sum): each step of "
            f"lr {lr:g} is in effect a step of lr {'x' if larger else '/'} N = {lr:g} {'x' if larger else '/'} "
            f"{n} = {step:.3g} along the right gradient")


def _not_descent(f0: float, smallest: float, lr: float, gradients_right: bool) -> Finding:
    return Finding(
        "train/not-descent", None, "error", "the loss rises for every small step along -gradient",
        f"from the starting loss {f0:.6g}, steps of {smallest:.1e} to {lr:g} times the gradient all raise "
        "the loss: the code's gradient is not a descent direction",
        "the gradient has a wrong sign or is wrong at some layer: run backcheck verify and fix what it names",
        0.95 if not gradients_right else 0.7)


def _too_large(lr: float, f0: float, f_lr: float, best: float, f_best: float, trend: str, where: str) -> Finding:
    return Finding(
        "train/lr-too-large", None, "error" if trend != "flat" else "warning",
        f"the step overshoots: the loss falls along -gradient only for steps up to about {best:.3g}, "
        f"train.lr is {lr:g}",
        f"the gradient is right (the check passed), but from {where} one step of lr {lr:g} takes the loss from "
        f"{f0:.6g} to {f_lr:.6g}, while a step of {best:.3g} lowers it to {f_best:.6g}; the loss "
        f"{_TREND_VERB[trend]} over {'training' if trend != 'diverged' else 'the steps it took'}",
        f"lower the learning rate to about {best / 2:.3g} (or use a schedule that starts there)", 0.9)
