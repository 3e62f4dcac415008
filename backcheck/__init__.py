"""backcheck: find the bug in hand-written NumPy backpropagation.

``import backcheck`` is light: the library's functions are imported when first used.

    backcheck.verify("model.yaml")           # check the code a YAML file points at (sandboxed); a CheckResult
    backcheck.diagnose("model.yaml")         # the check, then training with the code's gradients
    backcheck.check(loss, gradients, params=..., X=..., Y=..., network="4-5-3 tanh softmax cross_entropy")
                                             # callables and arrays, checked in this process
    backcheck.assert_gradients("model.yaml") # in a test: an AssertionError with the report unless all agree
"""

__version__ = "1.0.0"

_LAZY = {
    "verify": ("backcheck.runner", "verify"),
    "check": ("backcheck.api", "check"),
    "diagnose": ("backcheck.runner", "diagnose_config_path"),
    "assert_gradients": ("backcheck.testing", "assert_gradients"),
    "GradientCheckFailed": ("backcheck.testing", "GradientCheckFailed"),
    "Options": ("backcheck.runner", "Options"),
    "CheckResult": ("backcheck.results", "CheckResult"),
    "ExitCode": ("backcheck.results", "ExitCode"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'backcheck' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
