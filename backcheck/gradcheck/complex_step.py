"""Whether the code carries complex numbers, so that complex-step derivatives can be used."""

from __future__ import annotations

import numpy as np

from backcheck import numgrad
from backcheck.errors import UserCodeError
from backcheck.gradcheck.entries import probe_at
from backcheck.gradcheck.point import Point
from backcheck.gradcheck.precision import Precision
from backcheck.gradcheck.thresholds import SIGMAS


def complex_step_support(point: Point, precision: Precision) -> str | None:
    """None when complex-step derivatives of the code can be trusted, else why not.

    One complex probe per layer (its weight entry with the largest gradient): the loss must come
    back complex, with a finite imaginary part and its real part equal to f0, and the derivative
    must agree with a Richardson central difference to within that difference's own accuracy.
    A code that takes np.abs, compares, or casts to float on its way to the loss fails here (ReLU
    written as (z + abs(z)) / 2 halves the derivative); np.maximum and np.where(z > 0, ...)
    order complex numbers by their real part and pass.
    """
    if precision.dtype != "float64":
        return "complex step needs float64 arithmetic and the code's loss is noisier"
    chosen = {}
    for s in point.ev.slots:
        if point.values[s].size and (s.layer not in chosen or s.role == "W"):
            chosen[s.layer] = s
    for s in chosen.values():
        x = point.values[s]
        a = np.abs(np.asarray(point.grads[s], dtype=np.float64)).reshape(-1)
        i = np.array([int(np.argmax(a))])
        try:
            c = probe_at(point, s, i, "complex", precision.eps, precision).central[0]
        except numgrad.NotComplex as exc:
            return str(exc)
        except UserCodeError as exc:
            return f"the code raised with complex parameters ({exc.message})"
        except (TypeError, ValueError, FloatingPointError) as exc:
            return f"complex parameters failed ({type(exc).__name__}: {exc})"
        r = probe_at(point, s, i, "richardson", precision.eps, precision)
        if abs(c - r.central[0]) > precision.tolerance * (abs(c) + abs(r.central[0])) + SIGMAS * r.noise[0]:
            where = ",".join(map(str, np.unravel_index(int(i[0]), x.shape)))
            return (f"the complex-step derivative of {s.code_name}[{where}] is {c:.6g}, central differences give "
                    f"{r.central[0]:.6g}: the code does not carry complex numbers through analytically "
                    "(np.abs, a comparison or a cast to float on the way to the loss?)")
    return None
