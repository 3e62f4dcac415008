"""When the code fails in a way another config would explain (per_example, layout): try that reading and say so."""

from __future__ import annotations

import dataclasses

from backcheck import mismatch as mismatch_module
from backcheck.errors import BackcheckError, ConfigError
from backcheck.evaluator import LocalEvaluator
from backcheck.runner.opening import prepare
from backcheck.runner.options import Options
from backcheck.spec import Config


def _about_shapes(exc) -> bool:
    """A failure a different shape of the data could explain: numpy's ValueError or IndexError raised in
    the code, or a returned value of the wrong shape."""
    if exc.kind == "exception":
        return any(f"raised {name}" in exc.message for name in ("ValueError", "IndexError"))
    return exc.kind == "contract" and "shape" in exc.message


def shape_in(message: str) -> tuple:
    """The sizes of the first shape a 'cannot be compared' message gives (the gradient's)."""
    import re

    m = re.search(r"has shape \(([0-9, ]*)\)", message)
    return tuple(int(x) for x in m.group(1).replace(" ", "").split(",") if x) if m else ()


def config_fits(config: Config, options: Options, prep, ev, data, exc) -> ConfigError | None:
    """The code failed at its first call: a config error naming the key when the config, not the
    code, is what fails (the targets' form, the layout of created parameters, per_example)."""
    if exc.kind not in ("exception", "contract"):
        return None
    fits = mismatch_module.data_form(config, ev, data, exc)
    if fits is None:
        isolate = not isinstance(prep.evaluator, LocalEvaluator)
        fits = _created_layout(config, options, exc, isolate) or _per_example_fits(config, options, exc, isolate)
    return fits


def _runs_with(alt: Config, options: Options, isolate: bool) -> bool:
    """Does the code run under ``alt`` (its loss, and its gradient or step)?"""
    try:
        prep = prepare(alt, dataclasses.replace(options, jobs=1), isolate=isolate)
    except BackcheckError:
        return False
    try:
        prep.evaluator.loss()
        if prep.evaluator.uses_step:
            prep.evaluator.step_gradient(1e-3)
        else:
            prep.evaluator.gradient()
        return True
    except BackcheckError:
        return False
    finally:
        prep.evaluator.close()


_PER_EXAMPLE_WORDS = {"batch": "false", "example": "true", "vector": "vector"}


def _per_example_fits(config: Config, options: Options, first, isolate: bool) -> ConfigError | None:
    """Code that failed at its first call on the whole batch: does it take one example at a time
    (``per_example: true``: (1, in) rows, or ``vector``: (in,))? Checked by calling it that way."""
    code = config.code
    if code is None or code.place is not None or config.data.kind == "code" or code.per_example != "batch":
        return None
    if not _about_shapes(first):  # calling one example at a time changes shapes, nothing else
        return None
    for other in ("example", "vector"):
        if _runs_with(dataclasses.replace(config, code=dataclasses.replace(code, per_example=other)), options,
                      isolate):
            how = "one example at a time, as (1, features)" if other == "example" else \
                "one example at a time, as 1-D vectors (features,)"
            key = config.where("code.per_example") if "code.per_example" in config.marks else config.where("code")
            return ConfigError(f"code.per_example: the code fails on the whole batch ({first.message}), and runs "
                               f"{how}: set per_example: {_PER_EXAMPLE_WORDS[other]} under code: in the YAML", key)
    return None


def _created_layout(config: Config, options: Options, first, isolate: bool) -> ConfigError | None:
    """Code whose parameters backcheck creates failed at its first call: are they, and the data, the
    other way round? (backcheck creates W as (out, in) for layout: columns.) Checked by opening the
    code again with the other layout."""
    code = config.code
    if code is None or code.init is not None or code.model is not None or code.chain is not None or \
            code.place is not None or config.data.kind == "code" or not code.params:
        return None
    other = "columns" if code.layout == "rows" else "rows"
    alt = dataclasses.replace(config, code=dataclasses.replace(code, layout=other))
    if not _runs_with(alt, options, isolate):
        return None
    shape = "(features, batch)" if other == "columns" else "(batch, features)"
    return ConfigError(f"code.layout: the code fails with layout: {code.layout} ({first.message}), and runs with "
                       f"layout: {other} (X is {shape} in this code): set that in the YAML", config.where("code.layout"))
