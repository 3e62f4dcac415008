"""The entry points of a check: read the config, open the code, probe, judge, name, report; never raise for bad input."""

from __future__ import annotations

import time
import traceback

from backcheck import mistakes
from backcheck.errors import BackcheckError, ConfigError, InternalError, UserCodeError
from backcheck.results import CheckResult, ErrorInfo
from backcheck.runner.layout import canonical_params
from backcheck.runner.opening import prepare
from backcheck.runner.options import TRAIN_SHARE, Options
from backcheck.runner.probing import check_prepared, start_pool
from backcheck.spec import Config, load_config


def verify(path, options: Options = Options(), *, isolate: bool = True, progress=None) -> CheckResult:
    """Check the config at ``path``. With ``isolate`` the user's code runs in a sandboxed process;
    without, in this one (faster to start, but the code can then reach backcheck). ``progress(phase,
    done, total, **detail)`` hears what a long check is doing: import, check, probe, train."""
    shown = str(path)
    try:
        config = load_config(path)
        if options.inject and config.code is not None:
            raise ConfigError("--inject plants a mistake in backcheck's reference network; "
                              "remove the code: section or check the config without --inject", shown)
        mistakes.parse_injections(options.inject, config.network)
    except ConfigError as exc:
        return failed(shown, path, exc)
    except Exception:  # noqa: BLE001 - a bug in reading the config: exit 4 with the report, as run_guarded does
        return failed(shown, path, InternalError(
            "backcheck failed while reading the config; this is a bug in backcheck, please report it with this "
            "message:\n" + traceback.format_exc()))
    return run_guarded(config, options, shown, progress, isolate=isolate)


def diagnose_config_path(path, options: Options = Options(), *, isolate: bool = True, progress=None) -> CheckResult:
    """``backcheck diagnose``: ``verify`` and then training; the result has a "train" section."""
    from dataclasses import replace

    return verify(path, replace(options, command="diagnose"), isolate=isolate, progress=progress)


def verify_config(config: Config, options: Options, shown: str) -> CheckResult:
    """Check an already-read config, the code sandboxed (``backcheck grade`` reads one per submission)."""
    return run_guarded(config, options, shown, isolate=True)


def failed(shown: str, path, exc: BackcheckError, name: str | None = None) -> CheckResult:
    from pathlib import Path

    return CheckResult(config=shown, name=name or Path(str(path)).stem,
                       error=ErrorInfo(exc.kind, exc.message, exc.where))


def run_guarded(config: Config, options: Options, shown: str, progress=None, isolate: bool = True) -> CheckResult:
    """run_check (or run_diagnose) with every failure turned into a result."""
    try:
        if options.command == "diagnose":
            return run_diagnose(config, options, shown, progress, isolate)
        return run_check(config, options, shown, progress, isolate)
    except BackcheckError as exc:
        return failed(shown, config.path, exc, config.name)
    except MemoryError:
        limit = f" (the limit is {options.memory_mb} MB)" if options.memory_mb else ""
        return failed(shown, config.path, UserCodeError(
            f"the check ran out of memory{limit}: is the network or the data far larger than the assignment's?",
            config.code.file.name if config.code else None), config.name)
    except Exception:  # noqa: BLE001 - a bug in backcheck: say so, with the traceback
        return failed(shown, config.path, InternalError(
            "backcheck failed; this is a bug in backcheck, please report it with this message:\n"
            + traceback.format_exc()), config.name)


def check_binding(config: Config, binding, options: Options, shown: str) -> CheckResult:
    """Check code already bound in this process (the Python API's callables)."""
    try:
        prep = prepare(config, options, binding=binding)
    except BackcheckError as exc:
        return failed(shown, config.path, exc, config.name)
    try:
        return check_prepared(config, options, shown, prep, None)
    except BackcheckError as exc:
        return failed(shown, config.path, exc, config.name)
    finally:
        prep.evaluator.close()


def run_diagnose(config: Config, options: Options, shown: str, progress=None, isolate: bool = True) -> CheckResult:
    """``backcheck diagnose``: the gradient check, then training with the code's own gradients, and
    what the losses, the activations and a line search say (contract section 5)."""
    from dataclasses import replace

    from backcheck.diagnose import train

    deadline = time.monotonic() + TRAIN_SHARE * config.check.timeout
    prep = prepare(config, options, progress, isolate)
    try:
        checked = check_prepared(config, options, shown, prep, None, progress)
        if checked.error is not None:
            return checked

        def canonical(values):
            return canonical_params(list(values), values, prep.orient, config.network)

        try:
            training = train(config, prep, canonical, gradients_right=checked.exit_code == 0, deadline=deadline,
                             found=checked.findings, progress=progress)
        except UserCodeError as exc:  # the code broke while training: keep what the check found
            return replace(checked, error=ErrorInfo(exc.kind, f"while training: {exc.message}", exc.where))
    finally:
        prep.evaluator.close()
    return replace(checked, findings=checked.findings + training.findings, notes=checked.notes + training.notes,
                   extra={**checked.extra, "train": training.to_json()})


def run_check(config: Config, options: Options, shown: str, progress=None, isolate: bool = True) -> CheckResult:
    """Open the code, build the data, compare every parameter's gradients, name the mistakes."""
    prep = prepare(config, options, progress, isolate)
    # Workers start now, so that they load the code while this process takes the analytic gradient.
    pool = start_pool(config, options, prep)
    try:
        return check_prepared(config, options, shown, prep, pool, progress)
    finally:
        if pool is not None:
            pool.close()
        prep.evaluator.close()
