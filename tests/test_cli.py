"""The CLI end to end: exit codes, stdout vs stderr, JSON that parses."""

import json
from pathlib import Path

from click.testing import CliRunner

from backcheck.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_reference_example_passes():
    r = run("verify", str(ROOT / "configs/iris_reference.yaml"), "--no-color")
    assert r.exit_code == 0, r.output
    assert "OK: all 6 gradients agree" in r.stdout


def test_json_is_the_contract_object():
    r = run("verify", str(ROOT / "samples/bugs/sigmoid_of_output.yaml"), "--format", "json")
    assert r.exit_code == 1
    j = json.loads(r.stdout)
    assert set(j) >= {"backcheck", "config", "ok", "exit_code", "method", "origin_layer", "layers",
                      "findings", "warnings", "error"}
    assert j["ok"] is False and j["exit_code"] == 1
    assert j["findings"][0]["id"] == "activation-derivative/of-output"


def test_config_error_exit_2_json():
    r = run("verify", "nope.yaml", "--format", "json")
    assert r.exit_code == 2
    assert json.loads(r.stdout)["error"]["kind"] == "config"


def test_user_exception_exit_3_on_stderr():
    r = run("verify", str(ROOT / "samples/broken/raises_in_gradients.yaml"), "--no-color")
    assert r.exit_code == 3
    assert r.stdout == ""
    assert "raises_in_gradients.py:" in r.stderr and "Traceback" not in r.stderr


def test_inject_names_the_planted_mistake():
    r = run("verify", str(ROOT / "configs/iris_reference.yaml"), "--inject",
            "activation-derivative/of-output@2", "--format", "json")
    assert r.exit_code == 1
    j = json.loads(r.stdout)
    assert [(f["id"], f["layer"]) for f in j["findings"]] == [("activation-derivative/of-output", 2)]


def test_help_on_every_command():
    for cmd in ([], ["verify"], ["bugs"]):
        assert run(*cmd, "--help").exit_code == 0


def test_bugs_lists_every_id():
    r = run("bugs", "--no-color")
    assert r.exit_code == 0
    for ident in ("scale/batch-sum", "activation-derivative/of-output", "step/stale-weights", "unknown"):
        assert ident in r.stdout


def test_name_the_module_does_not_define_is_exit_2(tmp_path):
    (tmp_path / "net.py").write_text("def loss(params, X, Y):\n    return 0.0\n\ndef gradient(params, X, Y):\n"
                                     "    return {}\n")
    (tmp_path / "m.yaml").write_text(
        "network:\n  input: 2\n  layers: [{units: 2, activation: softmax}]\n  loss: cross_entropy\n"
        "data: {random: {}}\ncode:\n  file: net.py\n  params: [{W: W1, b: b1}]\n  loss: loss\n"
        "  gradients: gradients\n")
    r = run("verify", str(tmp_path / "m.yaml"), "--format", "json")
    assert r.exit_code == 2
    err = json.loads(r.stdout)["error"]
    assert err["where"].endswith("m.yaml:10:14")
    assert "defines no 'gradients' (did you mean 'gradient'?)" in err["message"]
