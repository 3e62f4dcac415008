"""Config errors name file:line:col and the key path, and exit 2 without checking anything."""

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
