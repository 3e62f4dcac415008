"""The parameters: which layer and role each array is, and how the code stores it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backcheck.errors import UserCodeError


@dataclass(frozen=True)
class Slot:
    """One parameter: layer (from 1), role W or b, and the code's name or path for it."""

    layer: int
    role: str
    code_name: str
    orient: str | None = None  # declared W orientation: in_out or out_in; None: read from the shape

    @property
    def key(self) -> str:
        return f"{self.layer}.{self.role}"


def canonical_shape(slot: Slot, widths: tuple[int, ...]) -> tuple[int, ...]:
    n_in, n_out = widths[slot.layer - 1], widths[slot.layer]
    return (n_in, n_out) if slot.role == "W" else (n_out,)


def code_shape(slot: Slot, widths: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """The shape backcheck creates when the code has no init: contract section 1."""
    n_in, n_out = widths[slot.layer - 1], widths[slot.layer]
    if slot.role == "W":
        out_in = slot.orient == "out_in" or (slot.orient is None and layout == "columns")
        return (n_out, n_in) if out_in else (n_in, n_out)
    return (n_out,) if layout == "rows" else (n_out, 1)


@dataclass(frozen=True)
class Orientation:
    """How one of the code's arrays maps to the canonical (in, out) / (out,) / (N, out) form."""

    shape: tuple[int, ...]
    transpose: bool  # the code's 2-D array is the transpose of the canonical one
    per_example: int = 0  # >0: a bias that holds one row per example (batch size)

    def to_canonical(self, arr: np.ndarray) -> np.ndarray:
        arr = np.asarray(arr, dtype=np.float64)
        return arr.T if self.transpose else arr

    def canonical_of(self, arr: np.ndarray, canon: tuple[int, ...]) -> np.ndarray:
        out = self.to_canonical(arr)
        return out if self.per_example else out.reshape(canon)

    def code_of(self, canon: np.ndarray, dtype) -> np.ndarray:
        """The inverse of canonical_of: a canonical array in the code's own shape and dtype."""
        arr = np.asarray(canon)
        arr = arr.T if self.transpose else arr
        return np.ascontiguousarray(arr.reshape(self.shape)).astype(dtype if np.dtype(dtype).kind == "f" else np.float64)


def orientation(slot: Slot, arr: np.ndarray, widths: tuple[int, ...], layout: str) -> tuple[Orientation, str | None]:
    """Read how the code stores ``slot``; (orientation, note or None). Raises on an impossible shape."""
    canon = canonical_shape(slot, widths)
    shape = tuple(arr.shape)
    columns = layout == "columns"
    if slot.role == "W" and slot.orient is not None:
        want = canon if slot.orient == "in_out" else canon[::-1]
        if shape == want:
            return Orientation(shape, slot.orient == "out_in"), None
    elif slot.role == "W":
        if len(shape) == 2 and shape == canon[::-1] and (columns or canon[0] != canon[1]):
            note = None if columns else f"{slot.code_name} is stored (out, in) = {shape}; read as its transpose"
            return Orientation(shape, True), note
        if shape == canon:
            note = f"{slot.code_name} is stored (in, out) = {shape} in columns layout" if columns else None
            return Orientation(shape, False), note
    else:
        n_out = canon[0]
        if arr.size == n_out:
            note = None if shape in ((n_out,), (n_out, 1) if columns else (1, n_out)) else \
                f"{slot.code_name} has shape {shape}; read as a vector of {n_out}"
            return Orientation(shape, columns and len(shape) == 2), note
        if len(shape) == 2 and n_out in shape and arr.size % n_out == 0:
            per = arr.size // n_out
            transpose = shape == (n_out, per)
            return Orientation(shape, transpose, per_example=per), None
    want = code_shape(slot, widths, layout)
    raise UserCodeError(
        f"parameter {slot.code_name} (layer {slot.layer} {slot.role}) has shape {shape}; "
        f"expected {want} for network layer {widths[slot.layer - 1]}->{widths[slot.layer]} in {layout} layout",
        None, kind="contract")
