"""backcheck diagnose: the gradient check, then training with the code's gradients, and findings
that explain the loss curve. Each sample in samples/diagnose shows one finding."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from backcheck.cli import main
from backcheck.runner import diagnose_config_path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "diagnose"


def _run(name):
    return diagnose_config_path(SAMPLES / f"{name}.yaml", isolate=False).to_json()


def _ids(j):
    return {(f["id"], f["layer"]) for f in j["findings"]}


def test_healthy_network_falls_and_gets_no_findings():
    j = _run("healthy")
    assert j["exit_code"] == 0 and not j["findings"]
    assert j["train"]["trend"] == "falling" and len(j["train"]["losses"]) == j["train"]["steps"] == 100
    assert j["train"]["losses"][-1] < j["train"]["losses"][0]


def test_right_gradient_with_a_step_too_large():
    j = _run("lr_too_large")
    assert j["exit_code"] == 1 and not any(p["status"] == "wrong" for l in j["layers"] for p in l["params"])
    assert ("train/lr-too-large", None) in _ids(j)
    assert j["train"]["trend"] in ("oscillating", "rising", "diverged")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the unscaled sample overflows exp, as such code does
@pytest.mark.parametrize("name,finding", [("dead_relu", ("train/dead-units", 1)),
                                          ("saturated", ("train/saturated", 1)),
                                          ("unscaled", ("data/unscaled", None))])
def test_state_of_the_network(name, finding):
    j = _run(name)
    assert finding in _ids(j)
    assert j["exit_code"] == 0  # warnings: the gradients are right and the loss falls


def test_wrong_gradients_keep_their_findings_and_get_a_training_section():
    j = diagnose_config_path(ROOT / "samples" / "seeds" / "digits_sigmoid.yaml", isolate=False).to_json()
    assert j["exit_code"] == 1
    assert "scale/batch-sum" in {f["id"] for f in j["findings"]}
    assert set(j["train"]) == {"lr", "steps", "losses", "trend"}


def test_cli_json_and_text():
    runner = CliRunner()
    out = runner.invoke(main, ["diagnose", str(SAMPLES / "lr_too_large.yaml"), "--format", "json"])
    assert out.exit_code == 1 and json.loads(out.output)["train"]["lr"] == 40
    text = runner.invoke(main, ["diagnose", str(SAMPLES / "healthy.yaml"), "--no-color"])
    assert text.exit_code == 0 and "FALLING" in text.output and "backcheck diagnose" in text.output


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # training uphill ends in log(0), as it should
def test_a_gradient_with_the_wrong_sign_is_not_a_descent_direction():
    j = diagnose_config_path(ROOT / "samples" / "bugs" / "sign_flipped.yaml", isolate=False).to_json()
    assert {"scale/sign", "train/not-descent"} <= {f["id"] for f in j["findings"]}
    assert j["train"]["trend"] in ("rising", "diverged")
