"""Binding behaviour that the samples do not pin: reseeding, numpy patches, gradient_of: sum,
package roots, import: definitions, a fixed learning rate, 1-D examples with integer labels."""

import textwrap
from pathlib import Path

from backcheck.runner import verify

NET = """network:
  input: 3
  layers:
    - {units: 4, activation: tanh}
    - {units: 2, activation: softmax}
  loss: cross_entropy
data:
  random: {}
"""

MLP = """
import numpy as np

def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)

def forward(p, X):
    h = np.tanh(X @ p["W1"] + p["b1"])
    return h, softmax(h @ p["W2"] + p["b2"])

def loss(p, X, Y):
    _, P = forward(p, X)
    return -np.sum(Y * np.log(P)) / len(X)

def grads(p, X, Y, scale=None):
    h, P = forward(p, X)
    n = len(X) if scale is None else scale
    d2 = (P - Y) / n
    d1 = (d2 @ p["W2"].T) * (1 - h ** 2)
    return {"W1": X.T @ d1, "b1": d1.sum(0), "W2": h.T @ d2, "b2": d2.sum(0)}
"""

FUNCS = "code:\n  file: net.py\n  params: {W: 'W{k}', b: 'b{k}'}\n  loss: loss\n  gradients: grads\n"


def _run(tmp_path, code: str, yaml_text: str, files=None):
    (tmp_path / "net.py").write_text(textwrap.dedent(code))
    (tmp_path / "sequential.py").write_text(code)
    for name, text in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    (tmp_path / "model.yaml").write_text(yaml_text)
    return verify(tmp_path / "model.yaml", isolate=False).to_json()


def test_dropout_masks_repeat_because_numpy_is_reseeded_before_every_call(tmp_path):
    code = MLP + """
def dropout_loss(p, X, Y):
    mask = np.random.rand(*X.shape) > 0.3
    return loss(p, X * mask / 0.7, Y)

def dropout_grads(p, X, Y):
    mask = np.random.rand(*X.shape) > 0.3
    return grads(p, X * mask / 0.7, Y)
"""
    j = _run(tmp_path, code, NET + FUNCS.replace("loss: loss", "loss: dropout_loss")
             .replace("gradients: grads", "gradients: dropout_grads"))
    assert j["exit_code"] == 0, j


def test_numpy_replaced_by_an_import_is_a_warning(tmp_path):
    import numpy as np

    code = MLP + "\n_orig = np.dot\nnp.dot = lambda a, b, out=None: _orig(a, b)\n"
    original = np.dot
    try:
        j = _run(tmp_path, code, NET + FUNCS)
    finally:
        np.dot = original  # the test process keeps a clean numpy
    assert j["exit_code"] == 0
    warning = next(w for w in j["warnings"] if w["id"] == "numpy/patched")
    assert "numpy.dot" in warning["message"]


def test_gradient_of_sum_turns_the_batch_sum_into_a_note(tmp_path):
    code = MLP + "\ndef summed(p, X, Y):\n    return grads(p, X, Y, scale=1)\n"
    plain = _run(tmp_path, code, NET + FUNCS.replace("gradients: grads", "gradients: summed"))
    assert [f["id"] for f in plain["findings"]] == ["scale/batch-sum"]
    j = _run(tmp_path, code, NET + FUNCS.replace("gradients: grads", "gradients: summed")
             + "  gradient_of: sum\n")
    assert j["exit_code"] == 0 and not j["findings"]
    assert any(n.startswith("gradient_of: sum") for n in j["notes"])


def test_root_folder_makes_a_namespace_package_importable(tmp_path):
    files = {"lib/nets/__init__.py": "", "lib/nets/mlp.py": "from .maths import *\n",
             "lib/nets/maths.py": MLP}
    yaml_text = NET + FUNCS.replace("file: net.py", "file: lib/nets/mlp.py\n  root: lib")
    j = _run(tmp_path, "", yaml_text, files)
    assert j["exit_code"] == 0, j["error"]


def test_import_definitions_skips_a_training_loop(tmp_path):
    code = MLP + "\nwhile True:\n    pass\n"
    j = _run(tmp_path, code, NET + FUNCS + "  import: definitions\n")
    assert j["exit_code"] == 0, j["error"]
    assert any("import: definitions ran net.py without the statements at line(s)" in n for n in j["notes"])


def test_step_with_the_code_s_own_fixed_rate(tmp_path):
    code = MLP + "\nLR = 0.05\n\ndef step(p, X, Y):\n    for k, g in grads(p, X, Y).items():\n" \
                 "        p[k] -= LR * g\n"
    yaml_text = NET + FUNCS.replace("gradients: grads", "step: {call: step, args: [$params, $X, $Y], lr: 0.05}")
    assert _run(tmp_path, code, yaml_text)["exit_code"] == 0


def test_vector_examples_with_integer_labels(tmp_path):
    code = MLP + """
def one_loss(p, x, label):
    return loss(p, x[None, :], np.eye(2)[[label]])

def one_grads(p, x, label):
    return grads(p, x[None, :], np.eye(2)[[label]])
"""
    yaml_text = NET + FUNCS.replace("loss: loss", "loss: one_loss").replace("gradients: grads", "gradients: one_grads") \
        + "  per_example: vector\n  targets: labels\n"
    j = _run(tmp_path, code, yaml_text)
    assert j["exit_code"] == 0, j


def test_a_wrong_returns_length_is_a_contract_error(tmp_path):
    yaml_text = NET + FUNCS.replace("gradients: grads", "gradients: {call: grads, returns: [a, b]}\n"
                                                        "  grads: {W: '$a', b: '$b'}")
    j = _run(tmp_path, MLP, yaml_text)
    assert j["exit_code"] == 3 and j["error"]["kind"] == "contract"
    assert "returned 4 values; code.gradients.returns names 2" in j["error"]["message"]


def test_code_that_scales_its_inputs_in_place_gets_fresh_data_every_call(tmp_path):
    code = MLP + """
def scaling_loss(p, X, Y):
    X *= 2.0
    return loss(p, X, Y)

def scaling_grads(p, X, Y):
    X *= 2.0
    return grads(p, X, Y)
"""
    j = _run(tmp_path, code, NET + FUNCS.replace("loss: loss", "loss: scaling_loss")
             .replace("gradients: grads", "gradients: scaling_grads"))
    assert j["exit_code"] == 0, j


SEQUENTIAL = """network:
  input: 4
  layers: [{units: 5, activation: tanh}, {units: 3, activation: softmax}]
  loss: cross_entropy
data:
  random: {}
code:
  file: sequential.py
  model: {call: build, args: [$n_input, "$hidden[0]", $n_output]}
  objects:
    ce: {call: CrossEntropy}
  params:
    - {W: "layers[0].W", b: "layers[0].b"}
    - {W: "layers[2].W", b: "layers[2].b"}
  forward: {call: forward, args: [$X], returns: p}
  loss: {call: $ce.forward, args: [$p, $Y]}
  backward:
    - {call: $ce.backward, args: [$p, $Y], returns: dp}
    - {call: backward, args: [$dp]}
  grads:
    - {W: "layers[0].grad_W", b: "layers[0].grad_b"}
    - {W: "layers[2].grad_W", b: "layers[2].grad_b"}
"""


def test_objects_and_a_list_of_calls_bind_a_container_with_a_separate_loss_object(tmp_path):
    program = (Path(__file__).parent / "programs" / "sequential.py").read_text()
    assert _run(tmp_path, program, SEQUENTIAL)["exit_code"] == 0
    wrong = _run(tmp_path, program.replace("self.grad_b = g.sum(0)", "self.grad_b = 2 * g.sum(0)"), SEQUENTIAL)
    assert wrong["exit_code"] == 1
    assert {(l["index"], p["name"]) for l in wrong["layers"] for p in l["params"] if p["status"] == "wrong"} \
        == {(1, "b"), (2, "b")}


def test_parameters_in_a_global_dict_of_a_script_that_trains_when_imported(tmp_path):
    code = """
import numpy as np

rng = np.random.default_rng(1)
weights = {"W1": rng.normal(0, 0.5, (3, 4)), "b1": np.zeros(4), "W2": rng.normal(0, 0.5, (4, 2)),
           "b2": np.zeros(2)}

def forward(X):
    h = np.tanh(X @ weights["W1"] + weights["b1"])
    z = h @ weights["W2"] + weights["b2"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return h, e / e.sum(axis=1, keepdims=True)

def loss(X, Y):
    return -np.mean(np.sum(Y * np.log(forward(X)[1]), axis=1))

def backward(X, Y):
    h, p = forward(X)
    d2 = (p - Y) / len(X)
    d1 = (d2 @ weights["W2"].T) * (1 - h ** 2)
    return {"W1": X.T @ d1, "b1": d1.sum(0), "W2": h.T @ d2, "b2": d2.sum(0)}

while True:  # trains forever when imported
    g = backward(rng.normal(size=(4, 3)), np.eye(2)[[0, 1, 0, 1]])
"""
    yaml_text = NET + """code:
  file: net.py
  import: definitions
  params: {W: "$module.weights['W{k}']", b: "$module.weights['b{k}']"}
  loss: {call: loss, args: [$X, $Y]}
  gradients: {call: backward, args: [$X, $Y], returns: g}
  grads: {W: "$g['W{k}']", b: "$g['b{k}']"}
"""
    j = _run(tmp_path, code, yaml_text)
    assert j["exit_code"] == 0, j["error"]


def test_float32_code_that_returns_a_python_float_is_checked_at_float32_precision(tmp_path):
    # float(loss) hides float32 arithmetic; with a float64 step the probes drown in rounding and a
    # transposed weight gradient used to pass as a kink.
    program = (Path(__file__).parent / "programs" / "float32_python_loss.py").read_text()
    yaml_text = NET.replace("{units: 4, activation: tanh}", "{units: 4, activation: tanh}").replace(
        "input: 3", "input: 4").replace("{units: 2, activation: softmax}", "{units: 3, activation: softmax}") + """code:
  file: net.py
  model: Net
  params: {W: "params['W{k}']", b: "params['b{k}']"}
  loss: loss
  backward: {call: gradients, args: [$X, $Y], returns: g}
  grads: {W: "$g['W{k}']", b: "$g['b{k}']"}
"""
    right = _run(tmp_path, program, yaml_text)
    assert right["exit_code"] == 0 and "precision/float32" in {w["id"] for w in right["warnings"]}
    wrong = _run(tmp_path, program.replace('g["W1"] = X.T @ dz1', 'g["W1"] = (dz1.T @ X)'), yaml_text)
    assert wrong["exit_code"] == 1
    assert "weight-gradient/transposed" in {f["id"] for f in wrong["findings"]}


def test_a_learning_rate_path_that_does_not_exist_is_named(tmp_path):
    code = MLP + """
class Net:
    def __init__(self):
        rng = np.random.default_rng(0)
        self.p = {"W1": rng.normal(size=(3, 4)), "b1": np.zeros(4), "W2": rng.normal(size=(4, 2)), "b2": np.zeros(2)}
        self.lr = 0.1

    def loss(self, X, Y):
        return loss(self.p, X, Y)

    def step(self, X, Y):
        for k, g in grads(self.p, X, Y).items():
            self.p[k] -= self.lr * g
"""
    yaml_text = NET + """code:
  file: net.py
  model: Net
  params: {W: "p['W{k}']", b: "p['b{k}']"}
  loss: loss
  step: {call: step, args: [$X, $Y], lr: learning_rate}
"""
    j = _run(tmp_path, code, yaml_text)
    assert j["exit_code"] == 3 and "cannot write the learning rate at learning_rate" in j["error"]["message"]
    assert _run(tmp_path, code, yaml_text.replace("lr: learning_rate", "lr: lr"))["exit_code"] == 0


def test_an_unknown_mistake_that_is_a_constant_factor_says_so():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        j = _run(Path(d), MLP.replace('"W1": X.T @ d1', '"W1": X.T @ d1 * len(X)'), NET + FUNCS)
    finding = next(f for f in j["findings"] if f["layer"] == 1)
    assert "the weight gradient is exactly" in finding["title"] and "the batch size" in finding["title"]
