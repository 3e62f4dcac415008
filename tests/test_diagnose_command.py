"""backcheck diagnose: the gradient check, then training with the code's gradients, and findings
that explain the loss curve. Each sample in samples/diagnose shows one finding."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from backcheck.cli import main
from backcheck.runner import diagnose_config_path
from backcheck.diagnose.curve import trend_of, unstable
from backcheck.diagnose.state import pinned_output

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
@pytest.mark.parametrize("name,finding,exit_code,trend", [
    ("dead_relu", ("train/dead-units", 1), 0, "falling"),
    ("saturated", ("train/saturated", 1), 0, "falling"),
    ("unscaled", ("data/unscaled", None), 0, "falling"),
    ("vanishing", ("train/vanishing-gradient", 1), 0, "falling"),
    ("exploding", ("train/exploding-gradient", 1), 0, "falling"),
    ("initial_loss", ("train/initial-loss", None), 0, "falling"),
    ("pinned_output", ("train/saturated", 3), 0, "flat"),  # every output past the clip: no gradient at all
    ("summed_unstable", ("train/unstable", None), 1, "oscillating"),  # exit 1: scale/batch-sum
])
def test_state_of_the_network(name, finding, exit_code, trend):
    j = _run(name)
    assert finding in _ids(j)
    assert j["exit_code"] == exit_code  # 0: warnings only, the gradients are right
    assert {f["severity"] for f in j["findings"] if f["id"].startswith(("train/", "data/"))} == {"warning"}
    assert j["train"]["trend"] == trend


def test_an_output_pinned_past_the_clip_is_saturated_not_uphill():
    """pinned_output.yaml: every sigmoid output starts beyond 1e-7 of 0 or 1, where the code's clipped
    loss has a zero gradient; the loss is stuck, and a zero gradient is not a gradient pointing uphill."""
    j = _run("pinned_output")
    pinned = next(f for f in j["findings"] if f["id"] == "train/saturated")
    assert pinned["layer"] == 3 and pinned["title"].startswith("layer 3 (sigmoid output) is pinned at 0/1 at "
                                                               "initialisation: 100% of its outputs")
    assert "initialise the weights smaller" in pinned["fix"]
    assert "train/not-descent" not in {f["id"] for f in j["findings"]}
    assert len(set(j["train"]["losses"])) == 1


def test_pinned_outputs_are_those_beyond_1e_7_of_0_or_1():
    def net(activation):
        return SimpleNamespace(layers=[SimpleNamespace(activation=activation)] * 2)

    assert pinned_output(net("sigmoid"), np.array([[1e-8], [1 - 1e-8], [0.5]]), "")[0].layer == 2
    assert not pinned_output(net("sigmoid"), np.array([[1e-6], [1 - 1e-6], [0.5]]), "")
    one_hot = [1 - 2e-8, 1e-8, 1e-8]
    assert pinned_output(net("softmax"), np.array([one_hot, one_hot, [0.4, 0.3, 0.3]]), "")
    assert not pinned_output(net("softmax"), np.array([one_hot, [0.4, 0.3, 0.3]]), "")  # half is not most
    assert not pinned_output(net("identity"), np.array([[1e-9], [1e-9]]), "")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # training uphill ends in log(0), as it should
def test_an_output_pinned_by_training_is_not_blamed_on_the_initialisation():
    j = diagnose_config_path(ROOT / "samples" / "bugs" / "sign_flipped.yaml", isolate=False).to_json()
    pinned = next(f for f in j["findings"] if f["id"] == "train/saturated")
    assert pinned["layer"] == 2 and "after training" in pinned["title"]
    assert pinned["fix"].startswith("training drove the output layer's pre-activations far out")


def test_a_pinned_softmax_output_is_found_too():
    """exploding.yaml's unit-normal weights give logits so large that the softmax is one-hot."""
    assert ("train/saturated", 6) in _ids(_run("exploding"))


def test_a_gradient_summed_over_the_batch_names_the_step_it_really_takes():
    j = _run("summed_unstable")
    assert "scale/batch-sum" in {f["id"] for f in j["findings"]}
    unstable = next(f for f in j["findings"] if f["id"] == "train/unstable")
    assert "lr x N = 0.05 x 362 = 18.1" in unstable["fix"] and "lr x N = 0.05 x 362 = 18.1" in unstable["detail"]
    assert unstable["title"].startswith("training is unstable: the loss rises on ")
    assert "train/lr-too-large" not in {f["id"] for f in j["findings"]}  # the gradients are wrong: no line search


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # steps of 181 overflow the sigmoid's exp
def test_a_loss_that_jumps_until_it_diverges_is_unstable_too(tmp_path):
    """summed_unstable at lr 0.5 (a step of 181): the loss ends 100 times higher, swinging all the way."""
    text = (SAMPLES / "summed_unstable.yaml").read_text().replace("lr: 0.05", "lr: 0.5")
    text = text.replace("../seeds/", f"{ROOT / 'samples' / 'seeds'}/")
    (tmp_path / "model.yaml").write_text(text)
    j = diagnose_config_path(tmp_path / "model.yaml", isolate=False).to_json()
    assert j["train"]["trend"] == "diverged"
    unstable = next(f for f in j["findings"] if f["id"] == "train/unstable")
    assert "lr x N = 0.5 x 362 = 181" in unstable["fix"] and "before it diverges" in unstable["detail"]


def test_a_summed_gradient_that_still_falls_gets_its_step_in_a_note():
    result = diagnose_config_path(ROOT / "samples" / "seeds" / "digits_sigmoid_batchsum.yaml", isolate=False)
    assert result.extra["train"]["trend"] == "falling"
    assert any("lr x N = 0.005 x 64 = 0.32" in n for n in result.notes)
    assert "train/unstable" not in {f.id for f in result.findings}


def test_unstable_says_what_to_do_in_each_case():
    losses = [1.0, 0.5, 1.2, 0.4, 1.1, 0.3, 0.9, 0.35]
    right = unstable(losses, 0.4, "oscillating", True, None)
    assert right.id == "train/unstable" and right.severity == "warning" and "try 0.1" in right.fix
    assert "from 0.3 to 0.9 in step 6" in right.detail  # the jump by the largest factor (3x)
    assert "fix the gradients" in unstable(losses, 0.4, "oscillating", False, None).fix
    small = unstable(losses, 0.4, "oscillating", False, (8, False))
    assert "lr / N = 0.4 / 8 = 0.05" in small.fix


def test_a_network_whose_every_relu_is_dead_is_diagnosed_not_a_crash():
    """all_dead.yaml: no unit of either hidden layer fires, so dL/dz is exactly 0 below the output."""
    j = _run("all_dead")
    assert j["error"] is None and j["exit_code"] == 0
    assert {("train/dead-units", 1), ("train/dead-units", 2)} <= _ids(j)
    vanishing = next(f for f in j["findings"] if f["id"] == "train/vanishing-gradient")
    assert vanishing["layer"] == 2 and vanishing["title"] == "no gradient reaches layer 2 or below: dL/dz is 0 there"


def test_the_healthy_twins_of_the_state_samples_stay_quiet():
    """The thresholds do not fire on the correct seeds (sigmoid 64-3-3-2, 6-5-4-1, tanh 4-5-4-3)."""
    for name in ("digits_sigmoid_fixed", "dense_object_fixed", "iris_columns_fixed"):
        j = diagnose_config_path(ROOT / "samples" / "seeds" / f"{name}.yaml", isolate=False).to_json()
        assert not [f for f in j["findings"] if f["id"].startswith(("train/", "data/"))], name
        assert j["train"]["trend"] == "falling", name


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # exp overflows: that is the sample's point
def test_an_overflowing_softmax_names_the_step():
    j = _run("nonfinite")
    nonfinite = next(f for f in j["findings"] if f["id"] == "train/nonfinite")
    assert nonfinite["severity"] == "error" and "at step 4" in nonfinite["title"]
    assert j["exit_code"] == 1 and j["train"]["trend"] == "diverged"
    assert len(j["train"]["losses"]) == 3 and all(math.isfinite(v) for v in j["train"]["losses"])
    json.dumps(j, allow_nan=False)  # the recorded losses stay valid JSON


def _config(tmp_path, program: str, extra: str) -> Path:
    path = tmp_path / "model.yaml"
    path.write_text(f"""network:
  input: 1
  layers:
    - {{units: 1, activation: identity}}
  loss: mse
data:
  random: {{batch: 8}}
code:
  file: {ROOT / "tests" / "programs" / program}
  init: init_params
  params: [{{W: W1, b: b1}}]
  loss: loss
  gradients: gradients
{extra}""")
    return path


def test_a_step_that_overshoots_only_later_is_found_where_the_loss_was_lowest(tmp_path):
    """well.py is flat far from its minimum: the first steps at lr 12 help, then they overshoot."""
    j = diagnose_config_path(_config(tmp_path, "well.py", "train: {lr: 12, steps: 60}\n"), isolate=False).to_json()
    assert j["train"]["trend"] == "oscillating"
    too_large = next(f for f in j["findings"] if f["id"] == "train/lr-too-large")
    assert "from the parameters of the lowest loss" in too_large["detail"]


def test_a_gradient_that_becomes_nan_is_named_with_its_step(tmp_path):
    """nan_gradient.py at lr 1.5: w goes 1, -2, 4, -8; at -8 the loss is finite and the gradient NaN."""
    j = diagnose_config_path(_config(tmp_path, "nan_gradient.py", "train: {lr: 1.5, steps: 20}\n"),
                             isolate=False).to_json()
    nonfinite = next(f for f in j["findings"] if f["id"] == "train/nonfinite")
    assert nonfinite["title"] == "the gradient became NaN or inf at step 4"
    assert "NaN/inf entries in the gradient of W1" in nonfinite["detail"]
    assert j["train"]["losses"] == [1.0, 4.0, 16.0, 64.0] and j["train"]["trend"] == "diverged"


def test_training_stops_at_its_share_of_the_timeout(tmp_path):
    extra = "train: {lr: 0.1, steps: 100000000}\ncheck: {timeout: 1}\n"
    result = diagnose_config_path(_config(tmp_path, "well.py", extra), isolate=False)
    losses = result.extra["train"]["losses"]
    assert result.error is None and 0 < len(losses) < 100000000
    assert any(n.startswith(f"training stopped after {len(losses)} of 100000000 steps") for n in result.notes)


@pytest.mark.parametrize("losses,trend", [
    ([3, 2.5, 2, 1.6, 1.3, 1.1], "falling"),
    ([1.0, 1.0, 1.0, 1.0, 1.0], "flat"),
    ([1.0, 1.1, 1.25, 1.4, 1.6], "rising"),
    ([1.0, 0.4, 0.2, 0.4, 0.7, 0.9], "rising"),  # fell, then gave back most of it
    ([1.0, 1.4, 0.9, 1.5, 0.8, 1.6, 0.9, 1.5], "oscillating"),
    ([1.0, 0.6, 0.7, 0.5, 0.55, 0.4, 0.45, 0.35], "falling"),  # noisy, but it keeps its progress
    ([1.0, 3.0, 20.0], "diverged"),
    ([], "diverged"),
    # ends far below its start, but rises on a third of its steps in jumps: unstable, not falling
    ([50 * 0.97**t for t in range(57)] + [431.0] + [4.0, 20.0] * 70 + [4.2], "oscillating"),
    ([2.1, 4.0, 4.9, 2.3, 0.65, 0.45, 2.0, 2.2, 0.49, 1.8, 2.3, 1.6, 3.1, 2.3, 3.7, 1.6, 2.3, 2.3, 0.5], "oscillating"),
    ([1.1 * 0.99**t if t != 120 else 5.0 for t in range(200)], "falling"),  # one spike in a steady fall
    ([1.0, 1.6, 2.6, 4.0, 6.0], "rising"),  # every step a jump, but never down
])
def test_trend(losses, trend):
    assert trend_of(losses) == trend


def test_wrong_gradients_keep_their_findings_and_get_a_training_section():
    j = diagnose_config_path(ROOT / "samples" / "seeds" / "digits_sigmoid.yaml", isolate=False).to_json()
    assert j["exit_code"] == 1
    assert "scale/batch-sum" in {f["id"] for f in j["findings"]}
    assert set(j["train"]) == {"lr", "steps", "losses", "trend", "line_search"}


def test_the_line_search_keeps_its_measured_losses():
    """train.line_search holds the losses the finding's words quote: one step of lr, and the best smaller one."""
    j = _run("lr_too_large")
    [search] = j["train"]["line_search"]
    lr = j["train"]["lr"]
    assert search["from"] == "start" and search["steps"] == [lr / 2**k for k in range(14)]
    assert search["loss"] == j["train"]["losses"][0] and len(search["losses"]) == 14
    detail = next(f["detail"] for f in j["findings"] if f["id"] == "train/lr-too-large")
    best = max(s for s, v in zip(search["steps"], search["losses"]) if v < search["loss"])
    assert f"lr {lr:g} takes the loss from {search['loss']:.6g} to {search['losses'][0]:.6g}" in detail
    assert f"a step of {best:.3g} lowers it to {search['losses'][search['steps'].index(best)]:.6g}" in detail


def test_an_uphill_gradient_records_the_tiny_steps_too():
    j = diagnose_config_path(ROOT / "samples" / "bugs" / "sign_flipped.yaml", isolate=False).to_json()
    search = j["train"]["line_search"][0]
    lr = j["train"]["lr"]
    assert search["steps"][-3:] == [lr * 1e-4, lr * 1e-5, lr * 1e-6]
    assert all(v > search["loss"] for v in search["losses"])


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
