"""backcheck's own network bound like user code (configs without code:, and --inject)."""

from __future__ import annotations

import numpy as np

from backcheck.binding.base import Binding
from backcheck.binding.params import Slot
from backcheck.spec import Config


class ReferenceBinding(Binding):
    """backcheck's own implementation of the config's network, bound like user code.

    ``variants`` plant known mistakes in its backward pass (``verify --inject``)."""

    def __init__(self, config: Config, params, variants=()):
        from backcheck import reference

        self.config = config
        self.code = None
        self.reference = reference
        self.net = config.network
        self.params = [(W.copy(), b.copy()) for W, b in params]
        self.variants = tuple(variants)
        self.slots = [Slot(k + 1, role, f"{role}{k + 1}") for k, layer in enumerate(self.net.layers)
                      for role in ("W", "b") if role == "W" or layer.bias]
        self.notes = []
        self.warnings = []
        self.X = self.Y = None
        self.loss_dtype = np.dtype(np.float64)

    def arrays(self) -> dict[Slot, np.ndarray]:
        return {s: self.params[s.layer - 1][0 if s.role == "W" else 1] for s in self.slots}

    def swap(self, slot: Slot, arr: np.ndarray) -> np.ndarray:
        W, b = self.params[slot.layer - 1]
        self.params[slot.layer - 1] = (arr, b) if slot.role == "W" else (W, arr)
        return W if slot.role == "W" else b

    def raw_loss(self):
        return self.reference.loss(self.net, self.params, self.X, self.Y)

    def loss(self, finite: bool = True) -> float:
        return float(np.real(self.raw_loss()))

    def perturbed(self, slot: Slot, indices, steps) -> np.ndarray:
        """The loss with entry indices[j] of ``slot`` moved by steps[j], for every j in one stacked pass."""
        return self.reference.perturbed_losses(self.net, self.params, self.X, self.Y, slot.layer, slot.role,
                                               indices, steps)

    def analytic(self) -> dict[Slot, np.ndarray]:
        grads = self.reference.backward(self.net, self.params, self.X, self.Y, self.variants)
        return {s: np.asarray(grads[s.layer - 1][0 if s.role == "W" else 1]) for s in self.slots}
