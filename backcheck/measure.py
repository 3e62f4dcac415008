"""How the numeric derivatives of one parameter's entries are measured.

A ``Measure`` answers one question, ``entries(slot, x, indices, method, eps) -> EntryProbes``,
whatever does the work: the code's own loss, called once or twice per entry on the live array
(``LocalMeasure``); backcheck's reference network, all entries in one stacked pass
(``ReferenceMeasure``); or worker processes (``parallel.PoolMeasure``). Methods: ``central``,
``richardson`` (with its error estimate in ``noise``) and ``complex`` (complex step, exact to
rounding, only where ``complex_step_support`` found that the code carries complex numbers).
"""

from __future__ import annotations

import warnings

import numpy as np

from backcheck import numgrad, reference
from backcheck.binding import Binding, ReferenceBinding, Slot
from backcheck.errors import UserCodeError

COMPLEX_H = 1e-20  # complex step: any tiny step is exact to rounding; this one keeps h**2 below underflow

try:  # numpy >= 1.25
    from numpy.exceptions import ComplexWarning
except ImportError:  # pragma: no cover - older numpy
    ComplexWarning = np.ComplexWarning


class LocalMeasure:
    """Entries probed through the code's own loss, in this process, on the live array (in place)."""

    def __init__(self, binding: Binding, f0: float, loss_dtype: np.dtype):
        self.binding, self.f0, self.loss_dtype = binding, f0, loss_dtype
        self.local = self

    def entries(self, slot: Slot, x: np.ndarray, indices, method: str, eps: float) -> numgrad.EntryProbes:
        if method == "complex":
            return self._complex(slot, x, indices)
        probe = numgrad.richardson_entries if method == "richardson" else numgrad.probe_entries
        return probe(lambda _: self.binding.loss(), x, indices, eps, f0=self.f0, dtype=self.loss_dtype)

    def _complex(self, slot: Slot, x: np.ndarray, indices) -> numgrad.EntryProbes:
        # One complex copy per parameter (not per probe), swapped in as the code's live array.
        xc = x.astype(np.complex128)
        old = self.binding.swap(slot, xc)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ComplexWarning)  # a cast to float is detected, not printed
                return numgrad.complex_entries(self.binding.raw_loss, xc, indices, f0=self.f0, h=COMPLEX_H)
        finally:
            self.binding.swap(slot, old)


class ReferenceMeasure:
    """backcheck's own network: every requested entry in one stacked, vectorised pass."""

    def __init__(self, binding: ReferenceBinding, f0: float):
        self.binding, self.f0 = binding, f0
        self.local = self

    def _losses(self, slot: Slot, indices, steps) -> np.ndarray:
        b = self.binding
        return reference.perturbed_losses(b.net, b.params, b.X, b.Y, slot.layer, slot.role, indices, steps)

    def entries(self, slot: Slot, x: np.ndarray, indices, method: str, eps: float) -> numgrad.EntryProbes:
        indices = np.asarray(indices, dtype=np.intp)
        # The unperturbed loss from the same stacked arithmetic, so one-sided quotients do not mix
        # two roundings of f0.
        f0 = float(np.real(self._losses(slot, indices[:1], np.zeros(1))[0])) if len(indices) else self.f0
        values = x.reshape(-1)[indices].astype(np.float64)
        if method == "complex":
            h = COMPLEX_H * np.maximum(1.0, np.abs(values))
            out = self._losses(slot, indices, 1j * h)
            if not np.all(np.abs(out.real - f0) <= numgrad.loss_noise(f0, np.dtype(np.float64))):
                raise numgrad.NotComplex("the reference loss's real part moved under a complex step")
            central = out.imag / h
            noise = numgrad.ROUNDING_ULPS * float(np.finfo(np.float64).eps) * np.abs(central)
            return numgrad.EntryProbes(indices, central, central.copy(), central.copy(), noise, f0, len(indices))
        fine = self._central(slot, indices, values, eps, f0)
        if method != "richardson":
            return fine
        return numgrad.extrapolate(fine, self._central(slot, indices, values, 2 * eps, f0))

    def _central(self, slot, indices, values, eps, f0) -> numgrad.EntryProbes:
        h = eps * np.maximum(1.0, np.abs(values))
        hp, hm = (values + h) - values, values - (values - h)  # the steps float64 actually takes
        k = len(indices)
        both = np.real(self._losses(slot, np.concatenate([indices, indices]), np.concatenate([hp, -hm])))
        return numgrad.entry_quotients(indices, both[:k], both[k:], hp, hm, f0,
                                       numgrad.loss_noise(f0, np.dtype(np.float64)))


def measure_for(binding: Binding, f0: float, loss_dtype: np.dtype):
    """The fastest measure that computes exactly what the loss calls would."""
    if isinstance(binding, ReferenceBinding):
        return ReferenceMeasure(binding, f0)
    return LocalMeasure(binding, f0, loss_dtype)


def complex_step_support(measure, binding: Binding, grads: dict, tolerance: float, eps: float) -> str | None:
    """None when complex-step derivatives of the code can be trusted, else why not.

    One complex probe per layer (its weight entry with the largest gradient): the loss must come
    back complex, with a finite imaginary part and its real part equal to f0, and the derivative
    must agree with a Richardson central difference to within that difference's own accuracy.
    A code that takes np.abs, compares, or casts to float on its way to the loss fails here (ReLU
    written as (z + abs(z)) / 2 halves the derivative); np.maximum and np.where(z > 0, ...)
    order complex numbers by their real part and pass.
    """
    arrays = binding.arrays()
    chosen = {}
    for s in binding.slots:
        if arrays[s].size and (s.layer not in chosen or s.role == "W"):
            chosen[s.layer] = s
    for s in chosen.values():
        x, a = arrays[s], np.abs(np.asarray(grads[s], dtype=np.float64)).reshape(-1)
        i = np.array([int(np.argmax(a))])
        try:
            c = measure.entries(s, x, i, "complex", eps).central[0]
        except numgrad.NotComplex as exc:
            return str(exc)
        except UserCodeError as exc:
            return f"the code raised with complex parameters ({exc.message})"
        except (TypeError, ValueError, FloatingPointError) as exc:
            return f"complex parameters failed ({type(exc).__name__}: {exc})"
        r = measure.local.entries(s, x, i, "richardson", eps)
        if abs(c - r.central[0]) > tolerance * (abs(c) + abs(r.central[0])) + 3.0 * r.noise[0]:
            where = ",".join(map(str, np.unravel_index(int(i[0]), x.shape)))
            return (f"the complex-step derivative of {s.code_name}[{where}] is {c:.6g}, central differences give "
                    f"{r.central[0]:.6g}: the code does not carry complex numbers through analytically "
                    "(np.abs, a comparison or a cast to float on the way to the loss?)")
    return None
