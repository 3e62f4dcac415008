"""CI formats: `verify --junit` and the per-layer tests that grade and verify share."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from backcheck import ci
from backcheck.cli import main
from backcheck.grade import GradeOptions, grade, to_junit
from backcheck.results import CheckResult, Finding, LayerResult, ParamResult

ROOT = Path(__file__).resolve().parent.parent
SIGMOID = "samples/bugs/sigmoid_of_output.yaml"
SIGMOID_LINE = ("samples/bugs/sigmoid_of_output.yaml:10: activation-derivative/of-output: layer 1 (sigmoid): "
                "derivative taken of the activated output: sigmoid'(a) where a = sigmoid(z) already; fix: a is "
                "already sigmoid(z): use a * (1 - a) (times the upstream gradient)")


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # paths in the output are relative to the current folder
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env)


def _param(name, status, why=""):
    return ParamResult(name[0], name, (2, 2), status, 0.5 if status == "wrong" else 1e-9, 0.1, 4, 4, 1e-6, 1e-6,
                       why=why)


def _result(*layers, findings=(), warnings=(), config=SIGMOID):
    return CheckResult(config=config, name="sigmoid-of-output", layers=tuple(layers), findings=tuple(findings),
                       warnings=tuple(warnings))


# ---------------------------------------------------------------- verify --junit


def _cases(xml_text):
    root = ET.fromstring(xml_text)
    return root, [(c.get("name"), [(n.tag, n.get("type"), n.get("message")) for n in c])
                  for c in root.iter("testcase")]


def test_verify_junit_has_a_testcase_per_layer(tmp_path):
    out = tmp_path / "reports" / "backcheck.xml"
    r = run("verify", SIGMOID, "--junit", str(out), "--format", "json")
    assert r.exit_code == 1 and '"exit_code": 1' in r.stdout
    root, cases = _cases(out.read_text())
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "0")
    assert root.find("testsuite").get("name") == "sigmoid-of-output"
    wrong = ("failure", "wrong-gradient", "W (W1): wrong, relative error 8.1e-02")
    assert cases == [("layer 1: dense 4->6 sigmoid", [wrong]), ("layer 2: dense 6->3 softmax", [])]
    assert "fix: a is already sigmoid(z)" in root.find(".//failure").text


def test_verify_junit_when_nothing_could_be_checked(tmp_path):
    out = tmp_path / "j.xml"
    r = run("verify", "samples/broken/raises_in_gradients.yaml", "--junit", str(out))
    assert r.exit_code == 3
    root, cases = _cases(out.read_text())
    assert [c[0] for c in cases] == ["layer 1: dense 4->5 tanh", "layer 2: dense 5->3 softmax"]
    assert all(c[1][0][:2] == ("error", "exception") and "IndexError" in c[1][0][2] for c in cases)
    r = run("verify", "samples/broken/expected.yaml", "--junit", str(out))  # no network: one testcase says why
    assert r.exit_code == 2
    root, cases = _cases(out.read_text())
    assert cases == [("config", [("error", "config", cases[0][1][0][2])])]
    assert "unknown key" in cases[0][1][0][2] and root.get("errors") == "1"


def test_an_unwritable_junit_path_is_exit_2_before_anything_runs(tmp_path):
    link = tmp_path / "report.xml"
    link.symlink_to(tmp_path / "elsewhere.xml")
    r = run("verify", "samples/broken/hangs_in_loss.yaml", "--junit", str(link), "--format", "json")
    assert r.exit_code == 2  # refused at once, not after the 3 s the code would hang
    error = json.loads(r.stdout)["error"]
    assert error["kind"] == "config" and error["where"] == str(link)
    assert error["message"].startswith(f"--junit: {link} is a symlink; backcheck writes only regular files")
    assert not (tmp_path / "elsewhere.xml").exists()


def test_an_inconclusive_layer_is_a_junit_failure_with_its_reason():
    layer = LayerResult(1, "dense 4->6 sigmoid", (_param("W1", "inconclusive", "the loss is noise"),))
    tests = ci.layer_tests(_result(layer))
    assert [(t.passed, t.status) for t in tests] == [(False, "inconclusive")]
    _, cases = _cases(ci.junit_xml([("n", tests, None)]))
    assert cases == [("layer 1: dense 4->6 sigmoid",
                      [("failure", "inconclusive", "W (W1): inconclusive, relative error 1.0e-09 (the loss is noise)")])]


def test_layer_tests_name_the_line_a_finding_blames():
    finding = Finding("scale/batch-sum", None, "error", "summed", fix="divide by N",
                      line={"file": "mlp.py", "line": 40, "source": "dZ2 = P - Y"})
    tests = ci.layer_tests(_result(LayerResult(1, "dense", (_param("W1", "ok"),)),
                                   LayerResult(2, "dense", (_param("W2", "ok"),)), findings=[finding]))
    assert [t.passed for t in tests] == [False, False]  # a finding without a layer blames every layer
    assert tests[0].output.endswith("[scale/batch-sum] summed\n  fix: divide by N\n  at mlp.py:40: dZ2 = P - Y")


def test_grade_and_verify_write_the_same_junit_shape(tmp_path):
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "mlp.py").write_text((ROOT / "samples/submissions/class/bob/mlp.py").read_text())
    g = grade(ROOT / "samples/submissions/assignment.yaml", tmp_path, GradeOptions(timeout=5))
    out = tmp_path / "v.xml"
    run("verify", SIGMOID, "--junit", str(out))  # the same network and the same mistake as bob's
    strip = lambda cases: [(name, [tag_type[:2] for tag_type in nodes]) for name, nodes in cases]
    assert strip(_cases(to_junit(g))[1]) == strip(_cases(out.read_text())[1])
