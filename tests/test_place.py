"""Code as students write it: scripts and loops bound by place, notebooks by cells, the Python API,
the line of each mistake, and a config that does not describe the code said to be the config's."""

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from backcheck.runner import verify

HERE = Path(__file__).resolve().parent
LOOP = HERE / "programs" / "digits_loop.py"  # seed 002's shape: the gradients are locals of a training loop

YAML = """network:
  input: 64
  layers:
    - {units: 3, activation: sigmoid}
    - {units: 3, activation: sigmoid}
    - {units: 2, activation: softmax}
  loss: cross_entropy
code:
  file: digits_loop.py
  targets: labels
  place:
    loss: {lines: 40-46, value: "-np.log(probs[range(num_examples), y]).mean()"}
    backward: 47-56
  params: {W: "W{k}", b: "b{k}"}
  grads: {W: "dW{k}", b: "db{k}"}
"""


@pytest.fixture
def loop(tmp_path):
    shutil.copy(LOOP, tmp_path / "digits_loop.py")
    shutil.copy(HERE.parent / "samples" / "seeds" / "data" / "digits_3v7.npz", tmp_path / "digits_3v7.npz")
    (tmp_path / "digits.yaml").write_text(YAML)
    return tmp_path


def found(j):
    return {(f"{f['id']}@{f['layer']}" if f["layer"] else f["id"]): (f.get("line") or {}).get("where")
            for f in j["findings"] if f["severity"] == "error"}


def test_a_training_loop_inside_a_function_binds_by_place_and_its_lines_are_named(loop):
    j = verify(loop / "digits.yaml").to_json()
    assert j["exit_code"] == 1, j["error"]
    assert found(j) == {"scale/batch-sum": "digits_loop.py:48",
                        "activation-derivative/formula@2": "digits_loop.py:51",
                        "activation-derivative/formula@1": "digits_loop.py:54"}
    assert any("inside a function" in n for n in j["notes"])


def test_the_fixed_loop_passes(loop):
    code = (loop / "digits_loop.py").read_text()
    code = code.replace("* (1 - sigmoid(a2))", "* a2 * (1 - a2)").replace("* (1 - sigmoid(a1))", "* a1 * (1 - a1)")
    code = code.replace("delta4[range(num_examples), y] -= 1", "delta4[range(num_examples), y] -= 1\n"
                        "        delta4 /= num_examples")
    (loop / "digits_loop.py").write_text(code)
    yaml = YAML.replace("backward: 47-56", "backward: 47-57")
    (loop / "digits.yaml").write_text(yaml)
    j = verify(loop / "digits.yaml").to_json()
    assert j["exit_code"] == 0, (j["error"], found(j))


def test_a_module_level_script_binds_by_place(tmp_path):
    (tmp_path / "script.py").write_text(textwrap.dedent('''\
        import numpy as np

        rng = np.random.default_rng(0)
        X = rng.normal(size=(4, 12))
        y = np.eye(3)[rng.integers(0, 3, 12)].T
        w1 = rng.normal(size=(5, 4)) * 0.5
        b1 = np.zeros((5, 1))
        w2 = rng.normal(size=(3, 5)) * 0.5
        b2 = np.zeros((3, 1))


        def softmax(z):
            e = np.exp(z - z.max(axis=0))
            return e / e.sum(axis=0)


        for epoch in range(100):
            x1 = np.tanh(w1 @ X + b1)
            x2 = softmax(w2 @ x1 + b2)
            delta2 = (x2 - y) / 12
            w2 = w2 - 0.1 * delta2 @ x1.T
            delta1 = (w2.T @ delta2) * (1 - x1 ** 2)
            w1 = w1 - 0.1 * delta1 @ X.T
        '''))
    (tmp_path / "script.yaml").write_text(textwrap.dedent('''\
        network:
          input: 4
          layers: [{units: 5, activation: tanh}, {units: 3, activation: softmax}]
          loss: cross_entropy
        code:
          file: script.py
          layout: columns
          place:
            forward: 18-19
            loss: spec
            backward: [20, 22]          # the update of w2 in between is left out
          params: [{W: w1, b: b1}, {W: w2, b: b2}]
          grads: [{W: "delta1 @ X.T", b: "delta1.sum(axis=1, keepdims=True)"},
                  {W: "delta2 @ x1.T", b: "delta2.sum(axis=1, keepdims=True)"}]
        '''))
    j = verify(tmp_path / "script.yaml").to_json()
    assert j["exit_code"] == 0, (j["error"], found(j))
    assert any("module level" in n for n in j["notes"])


def test_place_errors_say_where(loop):
    code = (loop / "digits_loop.py").read_text()
    (loop / "digits_loop.py").write_text(code + "\n\ndef unused():\n    a = 1\n    b = 2\n")
    lines = len(code.splitlines()) + 2
    never = YAML.replace("backward: 47-56", f"backward: {lines + 2}-{lines + 3}")
    (loop / "never.yaml").write_text(never.replace("loss: {lines: 40-46", f"loss: {{lines: {lines + 2}"))
    j = verify(loop / "never.yaml").to_json()
    assert j["exit_code"] == 2 and "without reaching" in j["error"]["message"], j["error"]
    (loop / "half.yaml").write_text(YAML.replace("backward: 47-56", "backward: 39"))
    j = verify(loop / "half.yaml").to_json()
    assert j["exit_code"] == 2 and "do not compile by themselves" in j["error"]["message"]
    assert j["error"]["where"].startswith(str(loop / "half.yaml") + ":")
    (loop / "name.yaml").write_text(YAML.replace('grads: {W: "dW{k}", b: "db{k}"}', 'grads: {W: "dW{k}", b: "dbias{k}"}'))
    j = verify(loop / "name.yaml").to_json()
    assert j["exit_code"] == 2 and "dbias1" in j["error"]["message"] and "names there" in j["error"]["message"]


def _notebook(path: Path, cells: list) -> None:
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": tags}, "source": src, "outputs": [],
                     "execution_count": None} for src, tags in cells], "metadata": {}, "nbformat": 4,
          "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


def test_a_notebook_binds_by_cells_and_tags(loop):
    code = (loop / "digits_loop.py").read_text().splitlines(keepends=True)
    head, body = code[:35], code[35:]
    _notebook(loop / "digits.ipynb", [(["%matplotlib inline\n", "!pip install numpy\n"], []), (head, []),
                                      (body, ["training"])])
    yaml = YAML.replace("file: digits_loop.py", "file: digits.ipynb")
    yaml = yaml.replace("loss: {lines: 40-46,", "loss: {lines: {cell: 3, lines: 5-11},")
    yaml = yaml.replace("backward: 47-56", "backward: {tag: training, lines: 12-21}")
    (loop / "nb.yaml").write_text(yaml)
    j = verify(loop / "nb.yaml").to_json()
    assert j["exit_code"] == 1, j["error"]
    assert found(j)["activation-derivative/formula@2"] == "digits.ipynb cell 3, line 16"
    assert any("%matplotlib skipped" in n for n in j["notes"])


def test_a_notebook_imports_as_a_module_too(tmp_path):
    src = (HERE.parent / "samples" / "styles" / "mlp_functions.py").read_text().splitlines(keepends=True)
    _notebook(tmp_path / "net.ipynb", [(["%load_ext autoreload\n"], []), (src, [])])
    yaml = (HERE.parent / "samples" / "styles" / "mlp_functions.yaml").read_text()
    (tmp_path / "net.yaml").write_text(yaml.replace("file: mlp_functions.py", "file: net.ipynb"))
    assert verify(tmp_path / "net.yaml").to_json()["exit_code"] == 0


def test_a_config_that_does_not_describe_the_code_is_the_configs_error(tmp_path):
    base = HERE.parent / "samples" / "styles"
    shutil.copy(base / "float32_mlp.py", tmp_path)
    shutil.copy(base / "mlp_functions.py", tmp_path)
    cases = {
        "targets": ("mlp_functions.yaml", "targets: onehot", "targets: labels", "code.targets", "onehot"),
        "layout": ("mlp_functions.yaml", "layout: rows", "layout: columns", "code.layout", "layout: rows"),
        "activation": ("mlp_functions.yaml", "activation: tanh", "activation: sigmoid", "activation", "tanh"),
        "units": ("float32_mlp.yaml", "units: 7", "units: 6", "network.layers[0].units", "units: 7"),
    }
    for name, (yaml, old, new, key, fits) in cases.items():
        text = (base / yaml).read_text()
        assert old in text
        (tmp_path / f"{name}.yaml").write_text(text.replace(old, new))
        j = verify(tmp_path / f"{name}.yaml").to_json()
        assert j["exit_code"] == 2, (name, j["error"])
        assert key in j["error"]["message"] and fits in j["error"]["message"], (name, j["error"]["message"])


def test_csv_columns_can_be_dropped(tmp_path):
    rows = ["Unnamed: 0,a,b,c,d,species"] + [f"{i},{i % 3}.1,{i % 5}.2,0.{i},1.{i % 7},s{i % 3}" for i in range(30)]
    (tmp_path / "iris.csv").write_text("\n".join(rows) + "\n")
    base = (HERE.parent / "configs" / "iris_reference.yaml").read_text()
    text = base.split("data:")[0] + "data:\n  csv: iris.csv\n  target: species\n  drop: [Unnamed: 0]\n"
    (tmp_path / "r.yaml").write_text(text)
    assert verify(tmp_path / "r.yaml").to_json()["exit_code"] == 0
    (tmp_path / "r2.yaml").write_text(text.replace("  drop: [Unnamed: 0]\n", ""))
    assert verify(tmp_path / "r2.yaml").to_json()["exit_code"] == 2


def test_a_notebooks_loss_is_lines_of_a_cell_beside_its_value(loop):
    code = (loop / "digits_loop.py").read_text().splitlines(keepends=True)
    _notebook(loop / "digits.ipynb", [(code[:35], []), (code[35:], ["training"])])
    yaml = YAML.replace("file: digits_loop.py", "file: digits.ipynb")
    yaml = yaml.replace("loss: {lines: 40-46,", "loss: {cell: 2, lines: 5-11,")
    yaml = yaml.replace("backward: 47-56", "backward: {cell: 2, lines: 12-21}")
    (loop / "nb.yaml").write_text(yaml)
    j = verify(loop / "nb.yaml").to_json()
    assert j["exit_code"] == 1, j["error"]
    line = next(f["line"] for f in j["findings"] if f["id"] == "activation-derivative/formula" and f["layer"] == 2)
    assert (line["file"], line["cell"], line["line"], line["where"]) == \
        ("digits.ipynb", 2, 16, "digits.ipynb cell 2, line 16")


SCRIPT_WITH_DATA = '''\
import numpy as np
data = np.load("digits.npz")
X, y = data["X"][:40], data["y"][:40]
rng = np.random.default_rng(0)
W1, b1 = rng.normal(0, 0.3, (64, 3)), np.zeros((1, 3))
W2, b2 = rng.normal(0, 0.3, (3, 2)), np.zeros((1, 2))
for epoch in range(2):
    a1 = np.tanh(X @ W1 + b1)
    z2 = a1 @ W2 + b2
    p = np.exp(z2 - z2.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[range(len(y)), y]).mean()
    d2 = p.copy()
    d2[range(len(y)), y] -= 1
    d2 /= len(y)
    dW2, db2 = a1.T @ d2, d2.sum(axis=0, keepdims=True)
    d1 = d2 @ W2.T * (1 - a1 ** 2)
    dW1, db1 = X.T @ d1, d1.sum(axis=0, keepdims=True)
    W1 -= 0.1 * dW1
'''

CWD_YAML = """network: {{input: 64, layers: [{{units: 3, activation: tanh}}, {{units: 2, activation: softmax}}], loss: cross_entropy}}
code:
  file: net.py
  targets: labels{cwd}
  place: {{loss: {{lines: 8-12, value: loss}}, backward: 13-18}}
  params: {{W: "W{{k}}", b: "b{{k}}"}}
  grads: {{W: "dW{{k}}", b: "db{{k}}"}}
"""


@pytest.mark.parametrize("isolate", [True, False])
def test_a_script_reads_its_data_from_its_own_folder_or_code_cwd(tmp_path, monkeypatch, isolate):
    shutil.copy(HERE.parent / "samples" / "seeds" / "data" / "digits_3v7.npz", tmp_path / "digits.npz")
    (tmp_path / "net.py").write_text(SCRIPT_WITH_DATA)
    (tmp_path / "net.yaml").write_text(CWD_YAML.format(cwd=""))
    monkeypatch.chdir(HERE)  # not where the code is
    j = verify(tmp_path / "net.yaml", isolate=isolate).to_json()
    assert j["exit_code"] == 0, j["error"]
    assert Path.cwd() == HERE  # the process is back where it was
    (tmp_path / "code").mkdir()
    (tmp_path / "net.py").rename(tmp_path / "code" / "net.py")
    (tmp_path / "net.yaml").write_text(CWD_YAML.format(cwd="\n  cwd: .").replace("file: net.py", "file: code/net.py"))
    j = verify(tmp_path / "net.yaml", isolate=isolate).to_json()
    assert j["exit_code"] == 0, j["error"]
    (tmp_path / "net.yaml").write_text(CWD_YAML.format(cwd="").replace("file: net.py", "file: code/net.py"))
    j = verify(tmp_path / "net.yaml", isolate=isolate).to_json()
    assert j["exit_code"] == 3 and "digits.npz" in j["error"]["message"]


def test_stale_weights_through_a_name_that_is_no_copy_say_where_the_name_was_made():
    j = verify(HERE.parent / "samples" / "students" / "dense_nn.yaml").to_json()
    stale = next(f for f in j["findings"] if f["id"] == "step/stale-weights")
    assert stale["line"]["where"] == "dense_nn.py:31"
    assert stale["line"]["alias"]["where"] == "dense_nn.py:25"
    assert "`w = self.weights` makes no copy" in stale["fix"]
    direct = verify(HERE.parent / "samples" / "bugs" / "stale_weights.yaml").to_json()
    f = next(f for f in direct["findings"] if f["id"] == "step/stale-weights")  # reads the weights themselves
    assert "alias" not in f["line"] and "makes no copy" not in f["fix"]


def test_a_dict_holding_the_same_arrays_sees_the_probed_parameters(tmp_path):
    # seed 002's answer style: the loss reads model['W1'], the YAML names the globals W1, ...
    code = SCRIPT_WITH_DATA.replace('data = np.load("digits.npz")', 'data = np.load("digits.npz")\n'
                                    '# the loss reads the weights through a dict of the same arrays')
    code = code.replace("for epoch in range(2):", "model = {'W1': W1, 'b1': b1, 'W2': W2, 'b2': b2}\n"
                        "def loss_of(m):\n"
                        "    q = np.exp(np.tanh(X @ m['W1'] + m['b1']) @ m['W2'] + m['b2'])\n"
                        "    return -np.log(q[range(len(y)), y] / q.sum(axis=1)).mean()\n"
                        "for epoch in range(2):")
    shutil.copy(HERE.parent / "samples" / "seeds" / "data" / "digits_3v7.npz", tmp_path / "digits.npz")
    (tmp_path / "net.py").write_text(code)
    yaml = CWD_YAML.format(cwd="").replace("{loss: {lines: 8-12, value: loss}, backward: 13-18}",
                                           "{loss: {lines: 13-17, value: loss_of(model)}, backward: 18-23}")
    (tmp_path / "net.yaml").write_text(yaml)
    j = verify(tmp_path / "net.yaml").to_json()
    assert j["exit_code"] == 0, (j["error"], j["findings"])


def _without_per_example(tmp_path, sample):
    base = HERE.parent / "samples" / "shapes"
    shutil.copy(base / f"{sample}.py", tmp_path)
    text = (base / f"{sample}.yaml").read_text()
    line = next(l for l in text.splitlines() if l.strip().startswith("per_example:"))
    (tmp_path / "c.yaml").write_text(text.replace(line + "\n", ""))
    return verify(tmp_path / "c.yaml").to_json()


def test_code_that_fails_on_a_batch_and_runs_per_example_is_the_configs_error(tmp_path):
    j = _without_per_example(tmp_path, "sample_sgd")  # x is (4,): a batch does not even multiply
    assert j["exit_code"] == 2, j["error"]
    assert j["error"]["message"].startswith("code.per_example: the code fails on the whole batch")
    assert "set per_example: vector" in j["error"]["message"]


def test_code_that_broadcasts_a_batch_into_a_batch_shaped_gradient_hears_of_both_readings(tmp_path):
    # x (6, 1) code given (6, 9) runs, and its bias gradient comes back (5, 9): a bias gradient not
    # summed over the batch looks exactly the same, so this stays the code's shape error, with both fixes.
    j = _without_per_example(tmp_path, "textbook_net")
    assert j["exit_code"] == 3
    shape = next(f for f in j["findings"] if f["id"] == "shape/mismatch")
    assert "sum it over the batch" in shape["fix"] and "set per_example: true" in shape["fix"]
