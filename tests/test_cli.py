"""The CLI end to end: exit codes, stdout vs stderr, JSON that parses."""

import json
import shutil
from pathlib import Path

import pytest
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


def _strict(text):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


USAGE_ERRORS = {
    "folder as CONFIG": (["verify", str(ROOT)], "Invalid value for 'CONFIG': File "),
    "missing argument": (["verify"], "Missing argument 'CONFIG'."),
    "--jobs 0": (["verify", str(ROOT / "configs/iris_reference.yaml"), "--jobs", "0"],
                 "Invalid value for '--jobs': 0 is not in the range x>=1."),
    "unknown option": (["diagnose", str(ROOT / "configs/iris_reference.yaml"), "--bogus"], "No such option"),
    "grade has no --format": (["grade", str(ROOT), "--config", str(ROOT / "configs/iris_reference.yaml")],
                              "No such option '--format'"),
}


@pytest.mark.parametrize("case", USAGE_ERRORS, ids=list(USAGE_ERRORS))
def test_usage_error_with_format_json_is_the_json_object(case):
    args, message = USAGE_ERRORS[case]
    r = run(*args[:1], "--format", "json", *args[1:])
    assert r.exit_code == 2
    j = _strict(r.stdout)
    assert j["exit_code"] == 2 and j["ok"] is False and j["layers"] == [] and j["findings"] == []
    assert j["error"]["kind"] == "config" and j["error"]["message"].startswith(message)
    assert "Usage: backcheck " in j["error"]["message"]


def test_usage_error_without_json_is_clicks_message():
    r = run("verify", str(ROOT / "configs/iris_reference.yaml"), "--format", "xml")
    assert r.exit_code == 2 and r.stdout == ""
    assert "Invalid value for '--format': 'xml' is not one of 'text', 'json', 'lines', 'github'." in r.stderr
    r = run("verify", "--format=json", "--help")
    assert r.exit_code == 0 and "Usage: backcheck verify" in r.stdout


def test_a_python_file_as_config_is_exit_2_with_the_yaml_to_write():
    r = run("verify", str(ROOT / "samples/styles/mlp_functions.py"), "--format", "json")
    assert r.exit_code == 2
    message = _strict(r.stdout)["error"]["message"]
    assert "backcheck wants the YAML config" in message and "  file: mlp_functions.py\n" in message


@pytest.mark.parametrize("inject, message", [
    ("", "--inject '': expected a mistake id such as activation-derivative/of-output"),
    ("activation-derivative/of-output@x", "the layer after @ must be a number"),
    ("activation-derivative/of-output@9", "the network has layers 1 to 3"),
    ("activation-derivative/of-output@-1", "the network has layers 1 to 3"),
])
def test_bad_inject_is_exit_2(inject, message):
    r = run("verify", str(ROOT / "configs/iris_reference.yaml"), "--inject", inject, "--format", "json")
    assert r.exit_code == 2
    assert message in _strict(r.stdout)["error"]["message"]


def test_every_json_output_parses_strictly(tmp_path):
    r = run("verify", str(ROOT / "samples/bugs/sigmoid_of_output.yaml"), "--format", "json")
    assert r.exit_code == 1 and _strict(r.stdout)["findings"]
    # lr 20 with a softmax that overflows: the loss becomes NaN while training
    r = run("diagnose", str(ROOT / "samples/diagnose/nonfinite.yaml"), "--format", "json")
    j = _strict(r.stdout)
    assert r.exit_code == j["exit_code"] and "train/nonfinite" in {f["id"] for f in j["findings"]}
    shutil.copytree(ROOT / "samples/submissions/class/alice", tmp_path / "class" / "alice")
    r = run("grade", str(tmp_path / "class"), "--config", str(ROOT / "samples/submissions/assignment.yaml"),
            "--json", str(tmp_path / "grade.json"), "--gradescope", str(tmp_path / "results.json"))
    assert r.exit_code == 0, r.output
    assert _strict((tmp_path / "grade.json").read_text())["submissions"][0]["exit_code"] == 0
    assert _strict((tmp_path / "results.json").read_text())["score"] == 2


def test_nan_and_inf_in_a_result_are_written_as_null():
    from backcheck import render
    from backcheck.results import CheckResult

    result = CheckResult(config="m.yaml", name="m", extra={"train": {"lr": 0.1, "losses": [1.0, float("inf"),
                                                                                          float("nan")]}})
    assert _strict(render.to_json(result))["train"]["losses"] == [1.0, None, None]
