"""What every binding offers the checker: live arrays, the loss, the analytic gradient."""

from __future__ import annotations

import numpy as np

from backcheck.binding.calls import Caller, UserCodeError, as_loss
from backcheck.binding.params import Slot
from backcheck.spec import Config


class Binding:
    """The code under test, bound to its parameters and to the check's data.

    ``arrays()`` are the code's live parameter arrays: perturbing one in place and calling
    ``loss()`` evaluates the code's loss there. ``analytic()`` returns the code's gradients
    in the code's own shapes and leaves the parameters as they were.
    """

    def __init__(self, config: Config, module):
        self.config = config
        self.code = config.code
        self.module = module
        self.call = Caller(self.code.file, config.check.seed)
        self.slots = [Slot(k + 1, role, entry[role]) for k, entry in enumerate(self.code.params)
                      for role in ("W", "b") if role in entry]
        self.notes: list[str] = []
        self.warnings: list = []  # (id, message)
        self.X = self.Y = None
        self.loss_dtype = np.dtype(np.float64)

    # -- set-up
    def attach(self, X: np.ndarray, Y: np.ndarray, canonical=None) -> None:
        """The data in the code's layout; ``canonical`` is (X, Y) in backcheck's (for loss: spec)."""
        self.X, self.Y = X, Y
        self.canonical = canonical

    def arrays(self) -> dict[Slot, np.ndarray]:
        raise NotImplementedError

    def snapshot(self) -> dict[Slot, np.ndarray]:
        return {s: a.copy() for s, a in self.arrays().items()}

    def restore(self, saved: dict[Slot, np.ndarray]) -> None:
        for s, a in self.arrays().items():
            np.copyto(a, saved[s])

    def swap(self, slot: Slot, arr: np.ndarray) -> np.ndarray:
        """Make ``arr`` the code's live array for ``slot`` (e.g. a complex copy); returns the old one."""
        raise NotImplementedError

    # -- calls
    def loss(self, finite: bool = True) -> float:
        return as_loss(self.raw_loss(), "the loss", self.code.file.name if self.code else "", finite)

    def raw_loss(self):
        """The loss exactly as the code returned it (complex under a complex-step probe)."""
        raise NotImplementedError

    def analytic(self) -> dict[Slot, np.ndarray]:
        raise NotImplementedError

    def step_gradient(self, lr: float) -> dict[Slot, np.ndarray]:
        """(before - after) / lr of one plain-SGD step of the code; parameters restored afterwards."""
        raise NotImplementedError

    uses_step = False  # True: gradients are read from step_gradient, not analytic

    def spec_loss(self) -> float:
        """``loss: spec``: the loss of ``network:`` at the code's live parameters (read in their own
        orientation, found once) on the canonical data."""
        from backcheck import reference
        from backcheck.binding.params import canonical_shape, orientation

        net = self.config.network
        live = self.arrays()
        orient = self.__dict__.get("_spec_orient")
        if orient is None:
            orient = self._spec_orient = {s: orientation(s, a, net.widths, self.config.code.layout)[0]
                                          for s, a in live.items()}
        params = []
        for k, layer in enumerate(net.layers, start=1):
            W = b = None
            for s, a in live.items():
                if s.layer == k:
                    value = orient[s].canonical_of(a, canonical_shape(s, net.widths))
                    W, b = (value, b) if s.role == "W" else (W, value)
            params.append((W, b if b is not None else np.zeros(layer.units)))
        X, Y = self.canonical
        return reference.loss(net, params, X, Y)

    def loss_value(self, value, what, finite: bool = True) -> float:
        dtype = getattr(value, "dtype", None)
        if dtype is not None and dtype.kind == "f" and dtype.itemsize < 8:
            self.loss_dtype = dtype
        return as_loss(value, what, getattr(self, "file_name", None) or self.code.file.name, finite)

    def _array(self, value, slot: Slot, what: str) -> np.ndarray:
        """A gradient the code gave, as a new real float array; anything else breaks the contract."""
        where = self.code.file.name
        try:
            arr = np.array(value, copy=True)
            ok = np.issubdtype(arr.dtype, np.number) and arr.dtype != np.bool_
        except Exception as exc:  # noqa: BLE001 - ragged lists, objects whose __array__ raises
            raise UserCodeError(f"{what} gave {type(value).__name__} for {slot.code_name}, which numpy cannot read as "
                                f"an array ({type(exc).__name__}: {exc})", where, kind="contract") from None
        if not ok:
            raise UserCodeError(f"{what} gave {type(value).__name__} for {slot.code_name}; expected an array of "
                                "numbers", where, kind="contract")
        if np.iscomplexobj(arr):
            if np.any(arr.imag != 0):
                raise UserCodeError(f"{what} gave a complex gradient for {slot.code_name} (imaginary parts up to "
                                    f"{float(np.max(np.abs(arr.imag))):.3g}); a real parameter has a real gradient",
                                    where, kind="contract")
            arr = arr.real.copy()
        if not np.all(np.isfinite(arr)):
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            raise UserCodeError(f"{what} gave {bad} NaN/inf entries in the gradient of {slot.code_name}",
                                where, kind="nan")
        return arr
