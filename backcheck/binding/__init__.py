"""Calling the user's code: import it, find its parameters, get its loss and its gradients.

This package runs where the code under test runs (its sandboxed process, or the caller's own with
the Python API). ``calls`` calls and evaluates, ``params`` knows the parameters' shapes,
``program`` reads a file or a notebook, ``loading`` imports it, ``base`` is the interface the
checker uses, ``code`` binds functions and objects as the YAML says, ``place`` binds blocks of
lines of a script or notebook, ``reference`` binds backcheck's own network.
"""

from backcheck.binding.base import Binding
from backcheck.binding.calls import Caller, Scope, as_loss, assign, evaluate, lookup, resolve
from backcheck.binding.code import CodeBinding
from backcheck.binding.place import PlaceBinding
from backcheck.binding.loading import Loaded, load_code, load_module
from backcheck.binding.params import Orientation, Slot, canonical_shape, code_shape, orientation
from backcheck.binding.reference import ReferenceBinding

__all__ = ["Binding", "Caller", "CodeBinding", "Loaded", "Orientation", "PlaceBinding", "ReferenceBinding", "Scope",
           "Slot", "open_code",
           "as_loss", "assign", "bind", "canonical_shape", "code_shape", "evaluate", "load_code",
           "load_module", "lookup", "orientation", "resolve"]


def open_code(config, default_params=None) -> Binding:
    """The code of ``config`` bound as its code: section says: imported and bound to its functions or
    objects, or run up to its blocks (binding by place)."""
    if config.code.place is not None:
        return PlaceBinding(config, default_params)
    return CodeBinding(config, load_code(config.code), default_params)
