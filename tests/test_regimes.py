"""The regime matrix's small grid (benchmarks/regimes.py --small; the full matrix is the benchmark):
in every numerical regime backcheck passes the correct programs, fails the planted mistakes, and
never reports OK with a parameter it could not check. The programs are run through the CLI, as
users run them.

Then tests of the instrument itself, which hold whatever backcheck does: the generated correct
programs are correct, the mutants change the gradient, and the verdicts are judged as documented.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import regime_programs as rp  # noqa: E402
import regimes  # noqa: E402

SMALL = regimes.grid(small=True)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return regimes.run(SMALL, tmp_path_factory.mktemp("regimes"), jobs=2)


def _show(found) -> str:
    return "\n".join(regimes.listing(o) for o in found)


def test_small_grid_has_right_and_wrong_code_in_every_regime():
    assert len(SMALL) <= 30
    for name in rp.REGIMES:
        mine = [p for p in SMALL if p.regime.name == name]
        assert any(not p.wrong for p in mine) and any(p.wrong for p in mine), name


@pytest.mark.parametrize("regime", list(rp.REGIMES))
def test_no_false_pass_no_false_alarm_no_inconclusive_under_ok(outcomes, regime):
    mine = [o for o in outcomes if o.regime == regime]
    bad = [o for o in mine if o.verdict in ("false pass", "false alarm") or o.inconclusive_under_ok]
    assert not bad, "\n" + _show(bad)


@pytest.mark.parametrize("regime", list(rp.REGIMES))
def test_every_program_is_checked(outcomes, regime):
    """Every program is checkable: exit 2, 3 or 4 (or no JSON) would hide the verdicts above."""
    bad = [o for o in outcomes if o.regime == regime and o.verdict == "error"]
    assert not bad, "\n" + _show(bad)


# ---------------------------------------------------------------- the instrument


def _numeric(p, X, Y, eps=1e-6) -> dict:
    """Central differences of the float64 twin's own loss (the mean over examples, per example)."""
    module = rp.load(p)
    if p.regime.style == "object":
        net = module.Network()
        arrays = {n: getattr(net.layers[int(n[1]) - 1], n[0]) for n in rp.NAMES}
        def f():
            return net.loss(X, Y)
    else:
        arrays = rp.twin_params(module, p)
        if p.regime.style == "per_example":
            def f():
                return np.mean([module.loss(arrays, X[i:i + 1], Y[i:i + 1]) for i in range(len(X))])
        else:
            def f():
                return module.loss(arrays, X, Y)
    out = {}
    for n, a in arrays.items():
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            old = a[i]
            a[i] = old + eps
            up = f()
            a[i] = old - eps
            down = f()
            a[i] = old
            g[i] = (up - down) / (2 * eps)
        out[n] = g
    return out


# The student's gradient is the exact derivative of the loss except where the regime says it is
# not: ReLU kinks (a subgradient), clipped and stabilised losses (the clip or epsilon is ignored).
EXACT = [p for p in regimes.grid() if not p.wrong and p.regime.data == "normal"]


@pytest.mark.parametrize("p", EXACT, ids=[f"{p.regime.name}-{p.name}" for p in EXACT])
def test_correct_programs_are_correct_in_float64(p):
    X, labels, _ = rp.design_data(p)
    Y = rp.onehot(p, labels)
    analytic, numeric = rp.twin_gradients(p, X, Y), _numeric(p, X, Y)
    for n in rp.NAMES:
        np.testing.assert_allclose(analytic[n], numeric[n], rtol=1e-5, atol=1e-8, err_msg=n)


def test_every_planted_mistake_changes_the_gradient():
    sized = [(p, *rp.true_size(p, *_data(p))) for p in regimes.grid(["float64", "clipped", "step"])
             if p.wrong and p.mistake != "step/stale-weights"]
    assert sized
    unchanged = [f"{p.regime.name}/{p.name}" for p, size, _ in sized if not size > 1e-6]
    assert not unchanged


def test_kink_design_puts_examples_on_the_kinks():
    p = next(p for p in regimes.grid(["kinks"]) if not p.wrong)
    _, _, facts = rp.design_data(p)
    assert facts["z1_zero"] > 0 and facts["z2_zero"] > 0 and len(facts["dead_rows"]) >= 3


def _data(p):
    X, labels, _ = rp.design_data(p)
    return X, rp.onehot(p, labels)


def _outcome(p, size=None):
    return regimes.Outcome(p.regime.name, p.name, p.mistake, p.layer, p.act, p.loss, size, "W1", {}, "x.yaml")


def _report(code, findings=(), inconclusive=False):
    status = "inconclusive" if inconclusive else "ok"
    return {"exit_code": code, "findings": [{"id": i, "layer": k} for i, k in findings],
            "layers": [{"index": 1, "params": [{"name": "W", "status": status}]}], "warnings": [], "error": None}


def test_judging_follows_the_documented_columns():
    r = rp.REGIMES["float64"]
    right = rp.Program(r, "correct", None, "tanh", "ce")
    planted = rp.Program(r, "activation-derivative/of-output", 2, "tanh", "ce")
    mutant = rp.Program(r, "mutant/dw-entry", 1, "tanh", "ce")
    cases = [
        (right, None, _report(0), "ok", False),
        (right, None, _report(1, [("unknown", 1)]), "false alarm", False),
        (right, None, _report(0, inconclusive=True), "ok", True),
        (planted, 0.2, _report(0), "false pass", False),
        (planted, 0.2, _report(1, [("activation-derivative/of-output", 2)]), "named", False),
        (planted, 0.2, _report(1, [("activation-derivative/of-output", 1)]), "misnamed", False),
        (planted, 0.2, _report(5, inconclusive=True), "inconclusive", False),
        (planted, 0.2, _report(4), "error", False),
        (mutant, 1e-6, _report(0), "below resolution", False),
        (mutant, 1e-2, _report(0), "false pass", False),
        (mutant, 1e-2, _report(1, [("unknown", 1)]), "caught", False),
    ]
    for p, size, report, verdict, under_ok in cases:
        o = _outcome(p, size)
        regimes.judge(o, p, report["exit_code"], report, "")
        assert (o.verdict, o.inconclusive_under_ok) == (verdict, under_ok), (p.mistake, report)


def test_equivalent_names_are_accepted():
    """selftest.EQUIVALENT: a scaled output delta cannot be told from a constant factor."""
    p = rp.Program(rp.REGIMES["float64"], "loss-derivative/scale", 3, "tanh", "ce")
    o = _outcome(p, 1.0)
    regimes.judge(o, p, 1, _report(1, [("scale/constant", None)]), "")
    assert o.verdict == "named"
