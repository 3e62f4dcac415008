"""Calling the user's code: import it, find its parameters, get its loss and its gradients.

This package runs in the child process only. ``calls`` calls and evaluates, ``params`` knows the
parameters' shapes, ``loading`` imports the file, ``base`` is the interface the checker uses,
``code`` binds user code as the YAML says, ``reference`` binds backcheck's own network.
"""

from backcheck.binding.base import Binding
from backcheck.binding.calls import Caller, Scope, as_loss, assign, evaluate, lookup, resolve
from backcheck.binding.code import CodeBinding, bind
from backcheck.binding.loading import Loaded, load_code, load_module
from backcheck.binding.params import Orientation, Slot, canonical_shape, code_shape, orientation
from backcheck.binding.reference import ReferenceBinding

__all__ = ["Binding", "Caller", "CodeBinding", "Loaded", "Orientation", "ReferenceBinding", "Scope", "Slot",
           "as_loss", "assign", "bind", "canonical_shape", "code_shape", "evaluate", "load_code",
           "load_module", "lookup", "orientation", "resolve"]
