"""`backcheck diagnose`: train with the code's own gradients and explain why the loss rises or stalls
(contract section 5).

The gradient check comes first (its findings stay); then plain SGD at the config's ``train.lr``
with the code's gradients (or its step), the loss on the data recorded at every step, and findings
from evidence: a line search along -gradient (step too large, not a descent direction), the
activations of backcheck's reference network at the code's parameters (saturated or dead units),
the backpropagated signal per layer (vanishing or exploding), the loss at initialisation, and the
scale of the inputs. ``curve`` runs the training and reads the loss; ``state`` reads the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backcheck.results import Finding
from backcheck.diagnose.curve import (batch_size, effective_step, gradient, gradient_scale, line_search,
                                     loss_or_none, sgd, trend_of, unstable, unsteady)
from backcheck.diagnose.state import dedupe, gradient_flow, initial_loss, units, unscaled


@dataclass(frozen=True)
class Training:
    lr: float
    steps: int
    losses: tuple[float, ...]  # the loss on the config's data before each step (finite values only)
    trend: str  # falling | flat | rising | oscillating | diverged
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]
    # each search's measured losses: from "start", and from "lowest" (the parameters of the lowest
    # loss, after_steps steps) when it searched there too
    line_search: tuple[dict, ...] = ()

    def to_json(self) -> dict:
        return {"lr": self.lr, "steps": self.steps, "losses": list(self.losses), "trend": self.trend,
                "line_search": [dict(s) for s in self.line_search]}


def train(config, prep, canonical_params, gradients_right: bool, deadline: float | None = None,
          found: tuple = (), progress=None) -> Training:
    """Train the bound code (``prep`` from runner.prepare) and explain what happened.

    ``canonical_params(arrays)`` maps the code's live arrays to backcheck's [(W (in, out), b)] for
    the reference network; ``gradients_right`` is the verdict of the gradient check and ``found``
    its findings; training stops early (with a note) at ``deadline``, a time.monotonic() value;
    ``progress("train", step, steps)`` hears of every step."""
    ev, data = prep.evaluator, prep.data
    spec, net = config.train, config.network
    start = ev.values()
    values = {s: a.copy() for s, a in start.items()}
    params0 = canonical_params(start)
    f0 = loss_or_none(ev, start)
    g0 = gradient(ev, spec.lr, start, prep.where)
    findings = unscaled(data.X) + initial_loss(net, f0)
    findings += units(net, params0, data.X, "at initialisation")
    findings += gradient_flow(net, params0, data.X, data.Y)
    batch, notes = batch_size(spec.batch, prep, len(data.X))
    summed = None
    if any(f.id == "scale/batch-sum" for f in found):
        # Summed over each step's examples: a mini-batch's, or all of them. Which way it is off is
        # measured here, not read from the finding's words.
        c = gradient_scale(ev, start, g0)
        summed = (batch or len(data.X), not abs(c) < 1)  # no slope to measure (nan): the usual case, summed
    run = sgd(ev, prep, spec, values, batch, deadline=deadline, progress=progress)
    if run.timed_out:
        notes.append(f"training stopped after {len(run.losses)} of {spec.steps} steps: it had used its share of "
                     f"check.timeout ({config.check.timeout:g} s); raise check.timeout to train longer")
    trend = "diverged" if run.nonfinite else trend_of(run.losses)
    if run.nonfinite:
        findings.append(run.nonfinite)
    after = canonical_params(values)
    if all(np.all(np.isfinite(W)) and np.all(np.isfinite(b)) for W, b in after):
        findings += units(net, after, data.X, "after training")
    searched = [{"from": "start"}]
    search = line_search(ev, start, g0, f0, spec.lr, trend, gradients_right, "the starting parameters",
                         record=searched[0])
    if not search and run.best is not None and gradients_right and trend in ("rising", "oscillating", "diverged"):
        # The first step may be fine and a later one overshoot: look again where training got furthest.
        g = gradient(ev, spec.lr, run.best, prep.where)
        searched.append({"from": "lowest", "after_steps": run.losses.index(run.best_loss)})
        search = line_search(ev, run.best, g, run.best_loss, spec.lr, trend, gradients_right,
                             "the parameters of the lowest loss", descent=False, record=searched[-1])
    explained = {"train/lr-too-large", "train/not-descent", "train/nonfinite"} & {f.id for f in findings + search}
    if not explained and (trend == "oscillating" or (trend == "diverged" and unsteady(run.losses))):
        search.append(unstable(run.losses, spec.lr, trend, gradients_right, summed))
    elif summed is not None:
        notes.append(effective_step(spec.lr, summed))
    ev.set_values(start)
    return Training(spec.lr, spec.steps, tuple(run.losses), trend, tuple(dedupe(findings + search)), tuple(notes),
                    tuple(searched))
