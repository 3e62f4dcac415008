"""The pipeline of a check: read the config, open the code under test, judge, name, report.

``verify(path)`` is the library entry point: it never raises for bad input, it returns a
``CheckResult`` whose ``error`` says what went wrong. The process calling it never imports the
code under test: that runs in a sandboxed process (``sandbox``) that only evaluates what it is
asked (``evaluator``); the probing arithmetic, the verdicts, the names of mistakes and the scores
are computed here, out of the code's reach. The code's time in all is ``check.timeout``.

The rooms: ``pipeline`` (the entry points), ``options``, ``opening`` (the code in its process, the
data), ``layout`` (the parameters against the network), ``probing`` (the check proper),
``judging`` (the tables the verdicts come from), ``config_fit`` (a failure another config would
explain) and ``naming`` (mistakes and their lines).
"""

from backcheck.runner.layout import default_params
from backcheck.runner.opening import Prepared, code_cwd, open_sandboxed, prepare
from backcheck.runner.options import Options
from backcheck.runner.pipeline import (check_binding, diagnose_config_path, failed, run_check, run_diagnose,
                                       run_guarded, verify, verify_config)

__all__ = ["Options", "Prepared", "check_binding", "code_cwd", "default_params", "diagnose_config_path", "failed",
           "open_sandboxed", "prepare", "run_check", "run_diagnose", "run_guarded", "verify", "verify_config"]
