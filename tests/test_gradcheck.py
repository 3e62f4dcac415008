"""Large parameters are sampled (entries plus random directions) and still judged both ways."""

from pathlib import Path

from backcheck.runner import Options, run_guarded
from backcheck.spec import parse_config

BIG = """network:
  input: 784
  layers:
    - {units: 16, activation: tanh}
    - {units: 10, activation: softmax}
  loss: cross_entropy
data:
  random: {batch: 32}
"""


def test_large_parameter_is_sampled_and_passes():
    result = run_guarded(parse_config(BIG, Path("big.yaml")), Options(), "big.yaml")
    assert result.exit_code == 0
    W1 = result.layers[0].params[0]
    assert W1.size == 12544 and W1.checked < W1.size and W1.directions > 0


def test_large_parameter_mistake_is_found():
    result = run_guarded(parse_config(BIG, Path("big.yaml")),
                         Options(inject=("activation-derivative/missing@1",)), "big.yaml")
    assert result.exit_code == 1
    assert [(f.id, f.layer) for f in result.findings] == [("activation-derivative/missing", 1)]
