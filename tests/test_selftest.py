"""The diagnosis names every planted catalog mistake (small grid; the full grid is
benchmarks/selftest.py), and correct reference networks get no findings."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import selftest  # noqa: E402

from backcheck.runner import Options, run_guarded  # noqa: E402
from backcheck.spec import parse_config  # noqa: E402

CASES = [c for c in selftest.cases(small=True) if selftest.applies(*c)]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}@{c[5]}-{c[1]}-h{c[2]}" for c in CASES])
def test_planted_mistake_is_named(case):
    out = selftest.run_case(*case)
    if out is None:
        pytest.skip("the mistake does not apply here")
    expected, named, result = out
    equivalent = {(alt, None) for alt in selftest.EQUIVALENT.get(expected[0], ())}
    assert expected in named or equivalent & named, named


@pytest.mark.parametrize("act", selftest.ACTIVATIONS)
@pytest.mark.parametrize("loss", list(selftest.LOSSES))
def test_correct_reference_has_no_findings(act, loss):
    config = parse_config(selftest.config_text(act, (6, 5), loss, 0.01), Path("ok.yaml"))
    result = run_guarded(config, Options(), "ok.yaml")
    assert result.exit_code == 0 and not result.findings


def test_relu_of_output_is_harmless_and_refused():
    from backcheck.mistakes import parse_injections
    from backcheck.errors import ConfigError

    config = parse_config(selftest.config_text("relu", (6,), "cross_entropy", 0.0), Path("r.yaml"))
    with pytest.raises(ConfigError, match="harmless"):
        parse_injections(("activation-derivative/of-output@1",), config.network)
