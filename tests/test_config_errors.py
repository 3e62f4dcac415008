"""Config errors name file:line:col and the key path, and exit 2 without checking anything."""

from pathlib import Path

import pytest

from backcheck.errors import ConfigError
from backcheck.spec import load_config

BASE = """network:
  input: 4
  layers:
    - {units: 5, activation: tanh}
    - {units: 3, activation: softmax}
  loss: cross_entropy
data:
  random: {batch: 8}
"""


def _err(tmp_path, text):
    p = tmp_path / "model.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    return str(info.value).replace(str(tmp_path) + "/", "")


def test_typo_in_activation(tmp_path):
    msg = _err(tmp_path, BASE.replace("activation: tanh", "activation: rleu"))
    assert msg == ("model.yaml:4:30: network.layers[0].activation: expected one of identity, leaky_relu, relu, "
                   "sigmoid, softmax, tanh; got 'rleu' (did you mean 'relu'?)")


def test_unknown_key(tmp_path):
    msg = _err(tmp_path, BASE + "chek: {eps: 1e-6}\n")
    assert msg.startswith("model.yaml:9:1: chek: unknown key; expected one of")
    assert "(did you mean 'check'?)" in msg


def test_bad_yaml(tmp_path):
    assert _err(tmp_path, "network: [1, 2\n").startswith("model.yaml:2:1: invalid YAML")


def test_missing_code_file(tmp_path):
    msg = _err(tmp_path, BASE + "code:\n  file: nope.py\n  params: [{W: W1, b: b1}, {W: W2, b: b2}]\n"
                               "  loss: loss\n  gradients: gradients\n")
    assert msg.startswith("model.yaml:10:9: code.file: no such file")


def test_softmax_not_last(tmp_path):
    msg = _err(tmp_path, BASE.replace("activation: tanh", "activation: softmax"))
    assert "softmax is allowed on the last layer only" in msg


def test_missing_file():
    with pytest.raises(ConfigError, match="no such file"):
        load_config("does/not/exist.yaml")


# ---------------------------------------------------------------- hostile input: every case its answer

CODE = "code:\n  file: net.py\n  params: [{W: W1, b: b1}, {W: W2, b: b2}]\n  loss: loss\n  gradients: gradients\n"
LAUGHS = "".join(f"{a}: &{a} [{', '.join(['*' + p] * 9)}]\n" for p, a in zip("abcdefgh", "bcdefghi"))


def _sub(old, new, text=BASE):
    assert old in text
    return text.replace(old, new, 1)


PINNED = {
    "tag": (_sub("input: 4", "input: !foo 4"),
            "model.yaml:2:10: network.input: the YAML tag !foo is not accepted: a config holds plain values "
            "(numbers, names, true/false, lists and mappings), never objects; remove the tag"),
    "python-tag": (_sub("input: 4", "input: !!python/object/apply:os.system ['echo hi']"),
                   "model.yaml:2:10: network.input: the YAML tag !!python/object/apply:os.system is not accepted"),
    "float-tag": (_sub("input: 4", "input: !!float abc"),
                  "model.yaml:2:10: network.input: !!float 'abc' cannot be read as a number"),
    "timestamp": (BASE + "check: {eps: !!timestamp 2001-12-14}\n",
                  "model.yaml:9:14: check.eps: expected a number, got '2001-12-14'"),
    "set-tag": (_sub("input: 4", "input: !!set {a, b}"), "model.yaml:2:10: network.input: the YAML tag !!set is"),
    "only-dashes": ("---\n", "model.yaml: the file holds no settings (only comments, or an empty document); "
                             "expected a mapping with network: and data:"),
    "only-comments": ("# nothing\n# here\n", "model.yaml: the file holds no settings"),
    "two-documents": (BASE + "---\n" + BASE, "model.yaml:9:1: a second YAML document starts here; backcheck reads "
                                             "one document per file"),
    "recursive-alias": (_sub("layers:\n", "layers: &a [*a]\n  xlayers:\n"),
                        "model.yaml:3:15: network.layers[0]: the alias *a stands inside the list or mapping &a it "
                        "repeats: a value that would contain itself"),
    "deep": ("network: " + "[" * 10_000 + "]" * 10_000 + "\n",
             "model.yaml:1:41: network" + "[0]" * 31 + ": nested more than 32 levels deep"),
    "alias-bomb": ("a: &a [x, x, x, x, x, x, x, x, x]\n" + LAUGHS + BASE,
                   "model.yaml:5:12: e[1]: with this alias the file stands for more than 20,000 values"),
    "null-input": (_sub("input: 4", "input: null"), "model.yaml:2:10: network.input: expected an integer, got nothing"),
    "empty-units": (_sub("{units: 5, activation: tanh}", "{units: , activation: tanh}"),
                    "model.yaml:4:14: network.layers[0].units: expected an integer, got nothing"),
    "null-loss": (_sub("loss: cross_entropy", "loss:"),
                  "model.yaml:6:8: network.loss: expected one of binary_cross_entropy, cross_entropy, mse, or "
                  "{type: mse, reduction: sum}, got nothing"),
    "null-code": (BASE + "code:\n", "model.yaml:9:6: code: expected a mapping with file: and the names of the "
                                    "code's functions, got nothing; remove code: to check backcheck's own "
                                    "reference network"),
    "null-code-file": (BASE + CODE.replace("file: net.py", "file: null"),
                       "model.yaml:10:9: code.file: expected the path of the Python file (.py) to check, got nothing"),
    "null-csv": (_sub("random: {batch: 8}", "csv: null\n  target: y"),
                 "model.yaml:8:8: data.csv: expected the path of a csv file, got nothing"),
    "null-target": (_sub("random: {batch: 8}", "csv: data.csv\n  target: null"),
                    "model.yaml:9:11: data.target: expected the name of the class column, got nothing"),
    "huge-units": (_sub("units: 5", "units: 1000000000000000000000000000000"),
                   "model.yaml:4:15: network.layers[0].units: expected an integer from 1 to 100,000 (backcheck's "
                   "limit on a layer's width), got 1e+30"),
    "huge-batch": (_sub("batch: 8", "batch: 100000"),
                   "model.yaml:8:19: data.random.batch: expected an integer from 1 to 10,000 (backcheck's limit "
                   "on the examples of a check), got 100000"),
    "negative-seed": (BASE + "check: {seed: -1}\n",
                      "model.yaml:9:15: check.seed: expected an integer from 0 to 4,294,967,295, got -1"),
    "seed-2**32": (BASE + "check: {seed: 4294967296}\n", "model.yaml:9:15: check.seed: expected an integer from 0"),
    "timeout-inf": (BASE + "check: {timeout: .inf}\n",
                    "model.yaml:9:18: check.timeout: expected a finite number, got .inf"),
    "timeout-1e300": (BASE + "check: {timeout: 1e300}\n",
                      "model.yaml:9:18: check.timeout: expected a number from 0.1 to 86,400 (seconds: at most a "
                      "day), got 1e+300"),
    "timeout-tiny": (BASE + "check: {timeout: 1e-300}\n",
                     "model.yaml:9:18: check.timeout: expected a number from 0.1 to 86,400 (seconds: at most a "
                     "day), got 1e-300"),
    "eps-zero": (BASE + "check: {eps: 0}\n",
                 "model.yaml:9:14: check.eps: expected a number above 0 and below 1 (eps is the finite-difference "
                 "step, such as 1e-6), got 0.0"),
    "eps-inf": (BASE + "check: {eps: .inf}\n", "model.yaml:9:14: check.eps: expected a finite number, got .inf"),
    "tolerance-nan": (BASE + "check: {tolerance: .nan}\n",
                      "model.yaml:9:20: check.tolerance: expected a finite number, got .nan"),
    "tolerance-negative": (BASE + "check: {tolerance: -1}\n",
                           "model.yaml:9:20: check.tolerance: expected a number above 0 and below 1 (a relative "
                           "error is at most 1: a tolerance of 1 or more passes every gradient), got -1.0"),
    "l2-nan": (_sub("loss: cross_entropy", "loss: cross_entropy\n  l2: .nan"),
               "model.yaml:7:7: network.l2: expected a finite number, got .nan"),
    "alpha-inf": (_sub("activation: tanh", "activation: leaky_relu, alpha: .inf"),
                  "model.yaml:4:49: network.layers[0].alpha: expected a finite number, got .inf"),
    "scale-inf": (_sub("loss: cross_entropy", "loss: {type: cross_entropy, scale: -.inf}"),
                  "model.yaml:6:38: network.loss.scale: expected a finite number, got -.inf"),
    "lr-inf": (BASE + "train: {lr: .inf}\n", "model.yaml:9:13: train.lr: expected a finite number, got .inf"),
    "long-file-name": (BASE + CODE.replace("net.py", "a" * 10_000 + ".py"),
                       "model.yaml:10:9: code.file: the system cannot look up this path: File name too long"),
    "not-python": (BASE + CODE.replace("net.py", "net.txt"),
                   "model.yaml:10:9: code.file: expected a Python file ending in .py (or a notebook, .ipynb), got "
                   "'net.txt'"),
    "no-extension": (BASE + CODE.replace("net.py", "net"),
                     "model.yaml:10:9: code.file: expected a Python file ending in .py (or a notebook, .ipynb), got "
                     "'net'"),
    "missing-notebook": (BASE + CODE.replace("net.py", "net.ipynb"), "model.yaml:10:9: code.file: no such file"),
    "code-folder": (BASE + CODE.replace("net.py", "pkg.py"),
                    "model.yaml:10:9: code.file: expected a Python file (.py), got the folder pkg.py"),
    "data-folder": (_sub("random: {batch: 8}", "csv: pkg.py\n  target: y"),
                    "model.yaml:8:8: data.csv: expected a csv file, got the folder pkg.py"),
    "nul": (_sub("input: 4", "input: 4\x00"), "model.yaml:2:11: the file holds the character U+0000 (NUL) here, "
                                              "which YAML does not allow; a config is plain text: remove it"),
    "bel": (_sub("input: 4", "input: \x074"), "model.yaml:2:10: the file holds the character U+0007 (BEL) here"),
}


@pytest.mark.parametrize("case", PINNED, ids=list(PINNED))
def test_hostile_input_gets_its_answer(tmp_path, case):
    text, expected = PINNED[case]
    (tmp_path / "pkg.py").mkdir()
    msg = _err(tmp_path, text).replace("pkg.py/", "pkg.py")
    assert msg.startswith(expected), msg
    assert "\n" not in msg and "position" not in msg


def test_non_utf8_bytes_are_placed_by_line_and_column(tmp_path):
    p = tmp_path / "model.yaml"
    p.write_bytes(BASE.encode().replace(b"input: 4", b"input: 4 \xff"))
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert str(info.value) == (f"{p}:2:12: the file is not UTF-8 text: byte 0xff here cannot be read; save the "
                               "file as UTF-8")


def test_null_is_the_default_of_an_optional_key(tmp_path):
    p = tmp_path / "model.yaml"
    p.write_text(BASE.replace("random: {batch: 8}", "random:") + "check: {eps: null, seed: ~}\ntrain:\n")
    config = load_config(p)
    assert config.data.batch is None and config.check.eps is None and config.check.seed == 0
    assert config.train.lr == 0.1


def test_a_python_file_as_config_gets_the_yaml_that_points_at_it(tmp_path):
    py = tmp_path / "student_mlp.py"
    py.write_text("def init():\n    pass\n\ndef compute_loss(p, X, Y):\n    return 0.0\n\n"
                  "def backward(p, X, Y):\n    return {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(py)
    msg = info.value.message
    assert msg.startswith("this is a Python file; backcheck wants the YAML config that says what network the code "
                          "should be and points at the code. Save something like this as student_mlp.yaml")
    yaml_part = msg.split("\n\n", 1)[1]
    assert "code:\n  file: student_mlp.py\n" in yaml_part
    assert "  loss: compute_loss\n  gradients: backward\n" in yaml_part
    (tmp_path / "student_mlp.yaml").write_text(yaml_part)
    assert load_config(tmp_path / "student_mlp.yaml").code.loss.name == "compute_loss"


def test_the_config_path_is_a_folder(tmp_path):
    with pytest.raises(ConfigError, match="this is a folder; expected the YAML config file"):
        load_config(tmp_path)


def test_configs_readme_states_the_limits():
    from backcheck.spec import check, data, network, reader

    text = (Path(__file__).resolve().parent.parent / "configs" / "README.md").read_text()
    for number in (network.MAX_WIDTH, network.MAX_PARAMS, data.MAX_BATCH, check.MAX_SEED, check.MAX_TIMEOUT,
                   check.MAX_STEPS, reader.MAX_DEPTH, reader.MAX_VALUES, reader.MAX_BYTES):
        assert f"{number:,}" in text, number
