"""The binding keys of issue #4 are checked like the rest: file:line:col, the key path, what was expected."""

import pytest

from backcheck.errors import ConfigError
from backcheck.spec import load_config

NET = """network:
  input: 4
  layers:
    - {units: 5, activation: tanh}
    - {units: 3, activation: softmax}
  loss: cross_entropy
data:
  random: {}
code:
  file: code.py
"""


def _err(tmp_path, code: str, net: str = NET) -> str:
    (tmp_path / "code.py").write_text("")
    p = tmp_path / "model.yaml"
    p.write_text(net + code)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    return str(info.value).replace(str(tmp_path) + "/", "")


def _ok(tmp_path, code: str, net: str = NET):
    (tmp_path / "code.py").write_text("")
    p = tmp_path / "model.yaml"
    p.write_text(net + code)
    return load_config(p)


def test_undefined_dollar_name_points_at_the_argument(tmp_path):
    msg = _err(tmp_path, "  params: {W: 'W{k}', b: 'b{k}'}\n"
                         "  loss: {call: cost, args: [$AL, $Y]}\n"
                         "  gradients: {call: grads, args: [$params, $X, $Y], returns: g}\n"
                         "  grads: {W: \"$g['dW{k}']\", b: \"$g['db{k}']\"}\n")
    assert msg.startswith("model.yaml:12:29: code.loss.args[0]: $AL is not defined")


def test_dollar_name_typo_gets_a_suggestion(tmp_path):
    msg = _err(tmp_path, "  params: {W: 'W{k}', b: 'b{k}'}\n"
                         "  loss: {call: cost, args: [$paramz, $X, $Y]}\n"
                         "  gradients: grads\n")
    assert "$paramz is not defined" in msg and "(did you mean 'params'?)" in msg


def test_unknown_call_key(tmp_path):
    msg = _err(tmp_path, "  params: {W: 'W{k}', b: 'b{k}'}\n"
                         "  loss: {call: cost, argz: [$X]}\n  gradients: grads\n")
    assert msg.startswith("model.yaml:12:22: code.loss.argz: unknown key; expected one of call, args")
    assert "(did you mean 'args'?)" in msg


def test_returns_must_be_names(tmp_path):
    msg = _err(tmp_path, "  params: {W: 'W{k}', b: 'b{k}'}\n"
                         "  loss: {call: cost, returns: [loss, 3]}\n  gradients: grads\n")
    assert "code.loss.returns: expected a name or a list of names; got 3" in msg


def test_returns_may_not_shadow_a_builtin_name(tmp_path):
    msg = _err(tmp_path, "  params: {W: 'W{k}', b: 'b{k}'}\n"
                         "  loss: {call: cost, returns: X}\n  gradients: grads\n")
    assert "'X' is a name backcheck defines" in msg


def test_bad_path_in_template(tmp_path):
    msg = _err(tmp_path, "  params: {W: 'weights[{i}', b: 'b{k}'}\n  loss: loss\n  gradients: grads\n")
    assert msg.startswith("model.yaml:11:")
    assert "code.params.W: cannot read 'weights[0'" in msg


def test_step_without_lr_must_say_where_the_rate_goes(tmp_path):
    msg = _err(tmp_path, "  model: Net\n  params: {W: 'W{k}', b: 'b{k}'}\n  loss: loss\n"
                         "  step: {call: train_on_batch, args: [$X, $Y]}\n")
    assert "code.step: this step takes no $lr argument" in msg


def test_per_example_value(tmp_path):
    msg = _err(tmp_path, "  per_example: sometimes\n  params: {W: 'W{k}', b: 'b{k}'}\n"
                         "  loss: loss\n  gradients: grads\n")
    assert msg.startswith("model.yaml:11:16: code.per_example: expected true, false or vector")


def test_bias_false_layer_rejects_a_bias_path(tmp_path):
    net = NET.replace("- {units: 5, activation: tanh}", "- {units: 5, activation: tanh, bias: false}")
    msg = _err(tmp_path, "  params:\n    - {W: W1, b: b1}\n    - {W: W2, b: b2}\n  loss: loss\n"
                         "  gradients: grads\n", net)
    assert "code.params[0].b: layer 1 has bias: false in network:; remove b" in msg


def test_chain_needs_loss_grad(tmp_path):
    msg = _err(tmp_path, "  chain:\n    layers: [{call: Dense, args: [4, 5]}]\n    forward: forward\n"
                         "    backward: backward\n    loss: {call: mse, args: [$Y, $output]}\n"
                         "  params: [{W: '[0].W', b: '[0].b'}, {W: '[0].W', b: '[0].b'}]\n"
                         "  grads: [{W: '[0].dW', b: '[0].db'}, {W: '[0].dW', b: '[0].db'}]\n")
    assert "code.chain.loss_grad: missing; this key is required" in msg


def test_chain_names_outside_a_chain(tmp_path):
    msg = _err(tmp_path, "  params: {W: 'W{k}', b: 'b{k}'}\n"
                         "  loss: {call: cost, args: [$output, $Y]}\n  gradients: grads\n")
    assert "$output is not defined" in msg


def test_l2_mapping_and_loss_scale(tmp_path):
    net = NET.replace("  loss: cross_entropy\n", "  loss: {type: cross_entropy, scale: 0.5}\n"
                                                 "  l2: {strength: 0.1, half: false}\n")
    config = _ok(tmp_path, "  params: {W: 'W{k}', b: 'b{k}'}\n  loss: loss\n  gradients: grads\n", net)
    assert config.network.scale == 0.5
    assert config.network.l2 == pytest.approx(0.2)  # strength * sum(W**2) = (2 * strength) / 2 * sum(W**2)


def test_template_expands_per_layer(tmp_path):
    config = _ok(tmp_path, "  params: {W: 'weights[{i}]', b: \"params['b{k}']\"}\n  loss: loss\n"
                           "  gradients: grads\n")
    assert config.code.params == ({"W": "weights[0]", "b": "params['b1']"}, {"W": "weights[1]", "b": "params['b2']"})


def test_root_must_contain_the_file(tmp_path):
    (tmp_path / "other").mkdir()
    msg = _err(tmp_path, "  root: other\n  params: {W: 'W{k}', b: 'b{k}'}\n  loss: loss\n  gradients: grads\n")
    assert "code.root: the folder other does not contain code.file code.py" in msg


def test_gradient_of_sum_needs_the_whole_batch(tmp_path):
    msg = _err(tmp_path, "  per_example: true\n  gradient_of: sum\n  params: {W: 'W{k}', b: 'b{k}'}\n"
                         "  loss: loss\n  gradients: grads\n")
    assert msg.startswith("model.yaml:12:16: code.gradient_of: gradient_of: sum is for code that takes the whole")


def test_objects_may_not_take_a_backcheck_name(tmp_path):
    msg = _err(tmp_path, "  objects: {X: {call: Scaler}}\n  params: {W: 'W{k}', b: 'b{k}'}\n"
                         "  loss: loss\n  gradients: grads\n")
    assert "code.objects.X: 'X' cannot name an object" in msg


def test_a_list_of_calls_is_checked_call_by_call(tmp_path):
    msg = _err(tmp_path, "  params: {W: 'W{k}', b: 'b{k}'}\n  loss: loss\n"
                         "  gradients:\n    - {call: prep, returns: z}\n    - {call: grads, args: [$params, $zz]}\n")
    assert "code.gradients[1].args[1]: $zz is not defined" in msg and "(did you mean 'z'?)" in msg


def test_undefined_name_in_a_grads_table_is_a_config_error(tmp_path):
    msg = _err(tmp_path, "  params: {W: 'W{k}', b: 'b{k}'}\n  loss: loss\n"
                         "  gradients: {call: grads, returns: g}\n  grads: {W: \"$G['dW{k}']\", b: \"$g['db{k}']\"}\n")
    assert msg.startswith("model.yaml:14:")
    assert "code.grads.W: $G is not defined" in msg and "(did you mean 'g'?)" in msg
