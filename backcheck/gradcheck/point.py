"""One point of the check: the parameter values, the loss there and the code's gradient there."""

from __future__ import annotations

import numpy as np

from backcheck.errors import UserCodeError


class Point:
    """The code evaluated at one set of parameter values: the loss f0, the code's gradient and its
    error bounds there. Batch requests go through ``losses_*``, which refuse non-finite values
    with a message saying which probe met them."""

    def __init__(self, ev, values: dict, f0: float, grads: dict, uncertainty: dict, name: str = "start",
                 lr0: dict | None = None):
        self.ev, self.values, self.f0 = ev, values, f0
        self.grads, self.uncertainty, self.name = grads, uncertainty, name
        self.lr0 = lr0 if lr0 is not None else grads  # a step's gradient extrapolated to lr -> 0, for naming

    def entries(self, slot):
        x = self.values[slot]

        def run(idx, vals):
            out = np.asarray(self.ev.entries(slot, idx, vals), dtype=np.float64)
            require_finite(out, slot, lambda j: f"moving {slot.code_name}{index_text(x, int(np.asarray(idx)[j]))} to "
                                         f"{float(np.asarray(vals)[j]):.9g}", x)
            return out
        return run

    def arrays(self, slot):
        def run(arrays):
            out = np.asarray(self.ev.arrays(slot, arrays), dtype=np.float64)
            require_finite(out, slot, lambda j: f"moving every entry of {slot.code_name} along a random direction",
                    self.values[slot])
            return out
        return run

    def blocks(self, slot):
        def run(idx_list, val_list):
            out = np.asarray(self.ev.blocks(slot, idx_list, val_list), dtype=np.float64)
            require_finite(out, slot, lambda j: f"moving a row or column of {slot.code_name}", self.values[slot])
            return out
        return run


def require_finite(out: np.ndarray, slot, what, x) -> None:
    bad = ~np.isfinite(out)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise UserCodeError(
            f"the loss became {out[j]} when {what(j)} (a probe of the gradient check; the loss is finite at the "
            "parameters the check starts from): the code overflows or takes log(0) a small step away, e.g. exp of "
            "a large pre-activation without subtracting the max, or a loss multiplied by a huge number",
            kind="nan")


def index_text(x: np.ndarray, flat: int) -> str:
    return "[" + ",".join(map(str, np.unravel_index(flat, x.shape))) + "]" if x.ndim else ""
