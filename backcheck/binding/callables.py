"""Python callables and arrays bound as code (the Python API: ``backcheck.check``).

The parameters are the caller's own arrays: probed in place and restored bit for bit (a copy is
probed instead, and nothing changes, for an array that is not a writable float array). The loss
and the gradients are called with the parameters in the form the caller gave them
(``loss(params, X, Y)``), or with no arguments (``loss()``) when they take none.
"""

from __future__ import annotations

import inspect

import numpy as np

from backcheck.binding.base import Binding
from backcheck.binding.params import Slot
from backcheck.errors import UserCodeError


class CallableBinding(Binding):
    def __init__(self, config, params, loss, gradients, X, Y, names):
        super().__init__(config, None)
        self.file_name = config.code.file.name
        self.params = params  # the caller's container, handed to its functions
        self._loss_fn, self._grad_fn = loss, gradients
        self.names = names  # slot -> the key (or index) of its gradient in what gradients() returns
        self.live, self.originals = {}, {}
        for s in self.slots:
            arr = self._get(s)
            if not (isinstance(arr, np.ndarray) and arr.dtype.kind == "f" and arr.flags.writeable):
                self.originals[s] = arr
                arr = np.array(arr, dtype=np.float64)
                self._put(s, arr)
            self.live[s] = arr
        self.initial = {s: a.copy() for s, a in self.live.items()}
        self.code_X, self.code_Y = np.asarray(X), np.asarray(Y)
        self.fixed_lr = None

    def _get(self, s: Slot):
        container, key = self._where(s)
        return container[key]

    def _put(self, s: Slot, arr) -> None:
        container, key = self._where(s)
        container[key] = arr

    def _where(self, s: Slot):
        if isinstance(self.params, dict) and s.code_name in self.params:
            return self.params, s.code_name
        layer = self.params[s.layer - 1]
        return (layer, s.role) if isinstance(layer, dict) else (layer, "Wb".index(s.role))

    def _args(self, fn) -> tuple:
        try:
            takes = len([p for p in inspect.signature(fn).parameters.values()
                         if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty])
        except (TypeError, ValueError):
            takes = 3
        return () if takes == 0 else (self.params, self.X, self.Y)

    def arrays(self) -> dict:
        return dict(self.live)

    def swap(self, slot: Slot, arr):
        old, self.live[slot] = self.live[slot], arr
        self._put(slot, arr)
        return old

    def raw_loss(self):
        return self.call(self._loss_fn, *self._args(self._loss_fn), what="loss()")

    def loss(self, finite: bool = True) -> float:
        return self.loss_value(self.raw_loss(), "loss()", finite)

    def analytic(self) -> dict:
        before = self.snapshot()
        try:
            grads = self.call(self._grad_fn, *self._args(self._grad_fn), what="gradients()")
        finally:
            self.restore(before)
        out = {}
        for s in self.slots:
            key = self.names[s]
            try:
                value = grads[key[0]][key[1]] if isinstance(key, tuple) else grads[key]
            except (KeyError, IndexError, TypeError):
                raise UserCodeError(f"gradients() returned no gradient for {s.code_name} (looked up as {key!r})",
                                    self.file_name, kind="contract") from None
            out[s] = self._array(value, s, "gradients()")
        return out

    def close(self) -> None:
        for s, arr in self.live.items():
            np.copyto(arr, self.initial[s])
        for s, original in self.originals.items():
            self._put(s, original)
