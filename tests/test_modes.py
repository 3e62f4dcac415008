"""Default (sampled) and exhaustive modes, --jobs, complex step, and the reference's stacked
numeric gradient: each catches what it claims and passes correct code."""

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose

from backcheck import gradcheck, numgrad, reference
from backcheck.cli import main
from backcheck.runner import Options, verify
from backcheck.spec import parse_config

STUDENT = '''import numpy as np


def init_params(seed=0):
    rng = np.random.default_rng(seed)
    return {{"W1": rng.standard_normal(({d}, {h})) / np.sqrt({d}), "b1": 0.1 * rng.standard_normal({h}),
            "W2": rng.standard_normal(({h}, 3)) / np.sqrt({h}), "b2": 0.1 * rng.standard_normal(3)}}


def forward(params, X):
    z1 = X @ params["W1"] + params["b1"]
    a1 = {act}
    z2 = a1 @ params["W2"] + params["b2"]
    e = np.exp(z2 - z2.max(axis=1, keepdims=True))
    return z1, a1, e / e.sum(axis=1, keepdims=True)


def loss(params, X, Y):
    return -np.sum(Y * np.log(forward(params, X)[2])) / X.shape[0]


def gradients(params, X, Y):
    z1, a1, p = forward(params, X)
    dz2 = (p - Y) / X.shape[0]
    dz1 = (dz2 @ params["W2"].T) * {dact}
    dW1 = X.T @ dz1
    {bug}
    return {{"W1": dW1, "b1": dz1.sum(axis=0), "W2": a1.T @ dz2, "b2": dz2.sum(axis=0)}}
'''

ACTS = {"tanh": ("np.tanh(z1)", "(1 - a1 ** 2)", "tanh"),
        "relu": ("np.maximum(z1, 0)", "(z1 > 0)", "relu"),
        "abs_relu": ("0.5 * (z1 + np.abs(z1))", "(z1 > 0)", "relu")}


def program(tmp_path: Path, d: int, h: int, act: str = "tanh", bug: str = "", method: str = "central") -> Path:
    f, df, name = ACTS[act]
    (tmp_path / "mlp.py").write_text(STUDENT.format(d=d, h=h, act=f, dact=df, bug=bug))
    (tmp_path / "mlp.yaml").write_text(
        f"network:\n  input: {d}\n  layers:\n    - {{units: {h}, activation: {name}}}\n"
        "    - {units: 3, activation: softmax}\n  loss: cross_entropy\ndata:\n  random: {batch: 12}\n"
        "code:\n  file: mlp.py\n  params: [{W: W1, b: b1}, {W: W2, b: b2}]\n  init: init_params\n"
        f"  loss: loss\n  gradients: gradients\ncheck: {{method: {method}}}\n")
    return tmp_path / "mlp.yaml"


def params_of(j: dict) -> dict:
    return {p["code_name"]: p for layer in j["layers"] for p in layer["params"]}


# ---------------------------------------------------------------- default mode


def test_large_parameter_is_sampled_and_a_wrong_column_is_localised(tmp_path):
    assert 300 * 8 > gradcheck.MAX_EXHAUSTIVE
    j = verify(program(tmp_path, 300, 8, bug="dW1[:, 5] += 0.01"), isolate=False).to_json()
    assert j["exit_code"] == 1 and j["origin_layer"] == 1
    W1 = params_of(j)["W1"]
    assert W1["status"] == "wrong" and W1["directions"] == gradcheck.SAMPLE_DIRECTIONS
    assert W1["checked"] < W1["size"] and W1["blocks"] == 300 + 8
    assert W1["wrong_entries"] == 300 and W1["pattern"].startswith("units 5 ")
    assert {p["status"] for name, p in params_of(j).items() if name != "W1"} == {"ok"}


def test_a_single_wrong_entry_of_a_large_parameter_is_found(tmp_path):
    j = verify(program(tmp_path, 300, 8, bug="dW1[17, 2] += 1e-3"), isolate=False).to_json()
    W1 = params_of(j)["W1"]
    assert W1["status"] == "wrong" and W1["wrong_entries"] == 1
    assert W1["worst"]["index"] == [17, 2]


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_correct_large_parameter_passes_in_default_mode(tmp_path, act):
    j = verify(program(tmp_path, 300, 8, act=act), isolate=False).to_json()
    assert j["exit_code"] == 0, params_of(j)
    assert params_of(j)["W1"]["checked"] == gradcheck.SAMPLE_ENTRIES


# ---------------------------------------------------------------- exhaustive and --jobs


def test_exhaustive_probes_every_entry_and_jobs_give_identical_results(tmp_path, monkeypatch):
    monkeypatch.setattr("backcheck.parallel.CHUNK_MIN", 8)  # small parameters still get split ...
    monkeypatch.setattr("backcheck.runner.options.POOL_MIN_SECONDS", 0.0)  # ... and a quick check still gets workers
    path = program(tmp_path, 40, 6, act="relu", bug="dW1[:, 2] *= 1.01")
    one = verify(path, Options(exhaustive=True), isolate=False).to_json()
    two = verify(path, Options(exhaustive=True, jobs=2), isolate=False).to_json()
    assert one["method"]["mode"] == "exhaustive" and two["method"]["jobs"] == 2
    assert all(p["checked"] == p["size"] for p in params_of(one).values())
    for key in ("jobs", "loss_calls", "gradient_calls"):  # the work the processes shared, not the result
        one["method"].pop(key), two["method"].pop(key)
    assert one == two
    assert params_of(one)["W1"]["wrong_entries"] == 40


def test_cli_exhaustive_with_jobs(tmp_path, monkeypatch):
    # Whether workers pay for themselves is timed; on a loaded machine this check may take over the
    # threshold, so the threshold is put out of reach: the note is what is tested, not the timing.
    monkeypatch.setattr("backcheck.runner.options.POOL_MIN_SECONDS", 1e9)
    r = CliRunner().invoke(main, ["verify", str(program(tmp_path, 30, 4)), "--exhaustive", "--jobs", "2",
                                  "--no-color"])
    assert r.exit_code == 0, r.output
    assert "exhaustive" in r.stdout
    assert "--jobs 2: the check takes about" in " ".join(r.stdout.split())  # too small to share: done in one


# ---------------------------------------------------------------- complex step


def test_smooth_code_is_checked_with_complex_step(tmp_path):
    j = verify(program(tmp_path, 5, 4, method="complex"), isolate=False).to_json()
    assert j["exit_code"] == 0 and j["method"]["name"] == "complex"
    assert all(p["method"] == "complex" and p["rel_error"] < 1e-12 for p in params_of(j).values())


def test_abs_relu_falls_back_to_central_with_a_note(tmp_path):
    j = verify(program(tmp_path, 5, 4, act="abs_relu", method="complex"), isolate=False).to_json()
    assert j["exit_code"] == 0 and j["method"]["name"] == "central"
    assert any("complex is not available" in n and "np.abs" in n for n in j["notes"])


def test_maximum_relu_keeps_complex_step_and_passes(tmp_path):
    # np.maximum orders complex numbers by their real part: the derivative is right off the kinks.
    j = verify(program(tmp_path, 5, 4, act="relu", method="complex"), isolate=False).to_json()
    assert j["exit_code"] == 0 and j["method"]["name"] == "complex"


def test_a_loss_cast_to_float_is_not_complex(tmp_path):
    path = program(tmp_path, 5, 4, method="complex")
    code = (tmp_path / "mlp.py").read_text().replace("return -np.sum(", "return float(-np.sum(")
    (tmp_path / "mlp.py").write_text(code.replace("/ X.shape[0]\n\n\ndef gradients", "/ X.shape[0])\n\n\ndef "
                                                  "gradients"))
    j = verify(path, isolate=False).to_json()
    assert j["exit_code"] == 0 and j["method"]["name"] == "central"
    assert any("complex is not available" in n for n in j["notes"])


def test_complex_step_catches_a_wrong_gradient(tmp_path):
    j = verify(program(tmp_path, 5, 4, method="complex", bug="dW1 = dW1 * 1.00001"), isolate=False).to_json()
    assert j["exit_code"] == 1 and params_of(j)["W1"]["status"] == "wrong"


def test_complex_quotients_refuse_a_real_loss():
    x = np.array([1.0, 2.0])
    h = numgrad.complex_steps(x, np.arange(2))
    moved = [x + 1j * h[i] * np.eye(2)[i] for i in range(2)]
    with pytest.raises(numgrad.NotComplex):
        numgrad.complex_quotients([float(np.sum(np.abs(m) ** 2)) for m in moved], np.arange(2), h, 5.0)
    p = numgrad.complex_quotients([np.sum(np.sin(m)) for m in moved], np.arange(2), h,
                                  float(np.sum(np.sin([1.0, 2.0]))))
    assert_allclose(p.central, np.cos([1.0, 2.0]), rtol=1e-15)


# ---------------------------------------------------------------- numgrad pieces


def test_block_probes_flag_only_the_block_holding_a_wrong_entry():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5))
    a = np.cos(x)
    a[4, 1] += 1e-3
    before = x.copy()
    rows = [np.arange(5) + 5 * r for r in range(6)]
    f = numgrad.InPlace(lambda v: float(np.sum(np.sin(v))), x)
    dp = numgrad.probe_blocks(f.blocks, x, a, rows, 1e-6, rng, f0=float(np.sum(np.sin(x))))
    assert before.tobytes() == x.tobytes()
    off = np.abs(dp.analytic - dp.numeric) > 1e-6 * (np.abs(dp.analytic) + np.abs(dp.numeric)) + 3 * dp.noise
    assert off.tolist() == [False, False, False, False, True, False]


def test_stratified_entries_spread_over_rows_and_columns():
    idx = gradcheck.stratified_entries((784, 64), 16, np.random.default_rng(1))
    r, c = np.divmod(idx, 64)
    assert len(idx) == 16 and len(set(r // 49)) == 16 and len(set(c // 4)) == 16


# ---------------------------------------------------------------- the reference's stacked pass

NETS = {
    "cross_entropy": ("tanh", "softmax", 3),
    "binary_cross_entropy": ("sigmoid", "sigmoid", 1),
    "mse": ("relu", "identity", 2),
}


@pytest.mark.parametrize("loss", sorted(NETS))
def test_stacked_numeric_gradient_equals_backward(loss):
    hidden, out, units = NETS[loss]
    net = parse_config(f"network:\n  input: 5\n  layers:\n    - {{units: 4, activation: {hidden}}}\n"
                       f"    - {{units: {units}, activation: {out}}}\n  loss: {loss}\n  l2: 0.05\n"
                       "data:\n  random: {batch: 7}\n", Path("m.yaml")).network
    rng = np.random.default_rng(3)
    params = reference.init_params(net, rng)
    X = rng.standard_normal((7, 5))
    Y = {"cross_entropy": np.eye(3)[rng.integers(0, 3, 7)], "binary_cross_entropy":
         rng.integers(0, 2, (7, 1)).astype(float), "mse": rng.standard_normal((7, 2))}[loss]
    grads = reference.backward(net, params, X, Y)
    for k in (1, 2):
        for i, role in enumerate("Wb"):
            central = reference.numeric_gradient(net, params, X, Y, k, role)
            exact = reference.numeric_gradient(net, params, X, Y, k, role, method="complex")
            assert_allclose(central, grads[k - 1][i], rtol=1e-6, atol=1e-9)
            assert_allclose(exact, grads[k - 1][i], rtol=1e-12, atol=1e-15)


def test_reference_check_uses_the_stacked_pass_exhaustively():
    config = parse_config("network:\n  input: 60\n  layers:\n    - {units: 40, activation: tanh}\n"
                          "    - {units: 3, activation: softmax}\n  loss: cross_entropy\ndata:\n  random: {}\n",
                          Path("ref.yaml"))
    from backcheck.runner import run_guarded

    j = run_guarded(config, Options(exhaustive=True), "ref.yaml").to_json()
    assert j["exit_code"] == 0
    assert all(p["checked"] == p["size"] for p in params_of(j).values())


def test_relu_units_that_start_on_their_kink_do_not_cry_wolf(tmp_path):
    # Zero weights into units 0-3 and zero biases: those units sit at z = 0 for every example, so
    # every random direction crosses their kinks with both signs at once.
    path = program(tmp_path, 300, 8, act="relu")
    code = (tmp_path / "mlp.py").read_text()
    code += ("\n\ndef init_zero(seed=0):\n    params = init_params(seed)\n    params['W1'][:, :4] = 0.0\n"
             "    params['b1'][:] = 0.0\n    return params\n")
    (tmp_path / "mlp.py").write_text(code)
    path.write_text(path.read_text().replace("init: init_params", "init: init_zero"))
    j = verify(path, isolate=False).to_json()
    assert j["exit_code"] == 0, params_of(j)
    j = verify(path, Options(exhaustive=True), isolate=False).to_json()
    assert j["exit_code"] == 0, params_of(j)
