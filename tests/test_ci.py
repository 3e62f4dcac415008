"""CI formats: `--format lines`, `--format github`, `verify --junit`, and the per-layer tests that
grade, verify and the pytest plugin share. Exit codes stay the contract's in every format."""

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from backcheck import ci
from backcheck.cli import main
from backcheck.grade import GradeOptions, grade, to_junit
from backcheck.results import CheckResult, CheckWarning, Finding, LayerResult, ParamResult

ROOT = Path(__file__).resolve().parent.parent
SIGMOID = "samples/bugs/sigmoid_of_output.yaml"
SIGMOID_LINE = ("samples/bugs/sigmoid_of_output.py:42: activation-derivative/of-output: layer 1 (sigmoid): "
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


# ---------------------------------------------------------------- --format lines


def test_lines_put_a_finding_at_the_line_it_blames():
    assert "dZ1 = dA1 * sigmoid(A1)" in (ROOT / "samples/bugs/sigmoid_of_output.py").read_text().splitlines()[41]
    r = run("verify", SIGMOID, "--format", "lines")
    assert r.exit_code == 1
    assert r.stdout.splitlines() == [SIGMOID_LINE]


def test_lines_put_a_finding_without_a_line_at_the_configs_code_key():
    assert (ROOT / SIGMOID).read_text().splitlines()[9].startswith("code:")
    finding = Finding("scale/batch-sum", None, "error", "every gradient is the batch size times too large",
                      fix="divide by the batch size")
    out = ci.to_lines(_result(LayerResult(1, "dense 4->6 sigmoid", (_param("W1", "wrong"),)), findings=[finding]))
    assert out == (f"{SIGMOID}:10: scale/batch-sum: every gradient is the batch size times too large; "
                   "fix: divide by the batch size")


def test_lines_put_a_finding_at_the_code_line_it_carries():
    finding = Finding("activation-derivative/of-output", 1, "error", "layer 1 (sigmoid): derivative of the output",
                      fix="use a * (1 - a)", line={"file": "sigmoid_of_output.py", "line": 42, "source": "dZ1 = ..."})
    out = ci.to_lines(_result(LayerResult(1, "dense 4->6 sigmoid", (_param("W1", "wrong"),)), findings=[finding]))
    assert out == ("samples/bugs/sigmoid_of_output.py:42: activation-derivative/of-output: layer 1 (sigmoid): "
                   "derivative of the output; fix: use a * (1 - a)")


def test_lines_of_warnings_notes_and_undecided_parameters():
    layer = LayerResult(1, "dense 4->6 sigmoid", (_param("W1", "inconclusive", "the loss is noise"), _param("b1", "ok")))
    result = _result(layer, findings=[Finding("forward/mismatch", None, "warning", "the loss differs\nfrom the config"),
                                      Finding("train/initial-loss", None, "note", "high")],
                     warnings=[CheckWarning("precision/float32", "float32")])
    assert int(result.exit_code) == 5
    assert ci.to_lines(result).splitlines() == [
        f"{SIGMOID}:10: warning: forward/mismatch: the loss differs from the config",  # one line, always
        f"{SIGMOID}:10: note: train/initial-loss: high",
        f"{SIGMOID}:10: warning: precision/float32: float32",
        f"{SIGMOID}:10: inconclusive: layer 1 W1: could not be checked: the loss is noise",
    ]


def test_lines_say_a_wrong_gradient_that_no_finding_names():
    out = ci.to_lines(_result(LayerResult(2, "dense 6->3 softmax", (_param("W2", "wrong"),))))
    assert out == f"{SIGMOID}:10: wrong: layer 2 W2: the gradient disagrees with finite differences (relative error 5.0e-01)"


@pytest.mark.parametrize("config, code, line", [
    ("samples/broken/raises_in_gradients.yaml", 3, "samples/broken/raises_in_gradients.py:32: exception: "
                                                   "gradients(params, X, Y) raised IndexError: list index out of range"),
    ("samples/broken/expected.yaml", 2, "samples/broken/expected.yaml:4: config: raises_in_gradients.yaml: unknown "
                                        "key; expected one of name, network, data, code, check, train"),
    ("samples/broken/nan_loss.yaml", 3, "samples/broken/nan_loss.yaml:10: nan: loss() returned nan: the loss is not "
                                        "finite at the starting parameters"),  # no line in the code: the code: key
])
def test_lines_of_an_error_point_at_its_where(config, code, line):
    r = run("verify", config, "--format", "lines")
    assert r.exit_code == code
    assert r.stdout.splitlines() == [line]


def test_diagnose_speaks_lines_too():
    r = run("diagnose", "samples/diagnose/lr_too_large.yaml", "--format", "lines")
    assert r.exit_code == 1
    assert any(s.startswith("samples/diagnose/lr_too_large.yaml:10: train/lr-too-large: the step overshoots")
               for s in r.stdout.splitlines())


# ---------------------------------------------------------------- --format github


def test_github_workflow_commands_escape_as_githubs_toolkit_does():
    assert ci.escape_data("100%\r\nnext: a, b") == "100%25%0D%0Anext: a, b"
    assert ci.escape_property("dir,1/a:b.py%") == "dir%2C1/a%3Ab.py%25"
    finding = Finding("scale/sign", None, "error", "every gradient has the wrong sign", fix="negate: 100%",
                      detail="first line\nsecond", line={"file": "odd,name:1.py", "line": 7})
    out = ci.to_github(_result(findings=[finding], config="samples/x.yaml"))
    assert out == ("::error file=samples/odd%2Cname%3A1.py,line=7,title=backcheck%3A scale/sign::every gradient has "
                   "the wrong sign%0Afix: negate: 100%25%0Afirst line%0Asecond")


def test_github_annotates_the_config_and_the_code():
    r = run("verify", SIGMOID, "--format", "github")
    assert r.exit_code == 1
    assert r.stdout.startswith("::error file=samples/bugs/sigmoid_of_output.py,line=42,"
                               "title=backcheck%3A activation-derivative/of-output::layer 1 (sigmoid): derivative "
                               "taken of the activated output: sigmoid'(a) where a = sigmoid(z) already%0Afix: a is "
                               "already sigmoid(z)")
    assert len(r.stdout.splitlines()) == 1
    r = run("verify", "samples/broken/expected.yaml", "--format", "github")
    assert r.exit_code == 2 and r.stdout.startswith("::error file=samples/broken/expected.yaml,line=4,col=1,")
    r = run("verify", "samples/styles/relu_kink.yaml", "--format", "github")
    assert r.exit_code == 0
    assert r.stdout.startswith("::warning file=samples/styles/relu_kink.yaml,line=11,"
                               "title=backcheck%3A kink/nondifferentiable::")


def test_github_paths_are_relative_to_the_workspace():
    r = run("verify", SIGMOID, "--format", "github", env={"GITHUB_WORKSPACE": str(ROOT / "samples")})
    assert r.stdout.startswith("::error file=bugs/sigmoid_of_output.py,line=42,")


@pytest.mark.parametrize("fmt", ["lines", "github"])
@pytest.mark.parametrize("config, code", [("samples/styles/mlp_functions.yaml", 0), (SIGMOID, 1),
                                          ("samples/broken/expected.yaml", 2),
                                          ("samples/broken/raises_in_gradients.yaml", 3)])
def test_exit_codes_are_the_contracts_in_every_format(fmt, config, code):
    r = run("verify", config, "--format", fmt)
    assert r.exit_code == code
    assert (r.stdout == "") == (code == 0) and r.stderr == ""  # a clean check says nothing; all on stdout


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


def test_the_docs_show_what_the_formats_print():
    """README.md and docs/ci.md quote the formats' output for samples/bugs/sigmoid_of_output.yaml verbatim."""
    assert SIGMOID_LINE in (ROOT / "README.md").read_text()
    github = run("verify", SIGMOID, "--format", "github").stdout.strip()
    assert _rounding(f"--format github\n{github}\n```") in _rounding((ROOT / "docs" / "ci.md").read_text())


def _rounding(text: str) -> str:
    """Distances at rounding level (a match to 6.6e-17) differ with the BLAS and the CPU: one word for them."""
    return re.sub(r"\d\.\de-(1[3-9]|[2-9]\d)", "<rounding>", text)


def test_a_notebook_finding_is_said_at_the_code_key_with_its_cell():
    finding = Finding("scale/batch-sum", None, "error", "every gradient is N times too large", fix="divide by N",
                      line={"file": "net.ipynb", "cell": 6, "line": 2, "where": "net.ipynb cell 6, line 2",
                            "source": "delta4[range(n), y] -= 1"})
    out = ci.to_lines(_result(LayerResult(3, "dense 3->2 softmax", (_param("W3", "wrong"),)), findings=[finding]))
    assert out == f"{SIGMOID}:10: scale/batch-sum: net.ipynb cell 6, line 2: every gradient is N times too large; " \
                  "fix: divide by N"
