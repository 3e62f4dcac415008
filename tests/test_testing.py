"""backcheck in a course's tests: assert_gradients, the backcheck_check fixture and
`pytest --backcheck CONFIG...` (a test per layer), run as a course's autograder would run them."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import backcheck
from backcheck.testing import GradientCheckFailed, assert_gradients

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


@pytest.fixture
def course(pytester):
    """A course folder: a correct assignment (ok.yaml + mlp.py), a planted bug, code that raises
    and a config with a typo."""
    shutil.copy(SAMPLES / "submissions" / "class" / "alice" / "mlp.py", pytester.path / "mlp.py")
    shutil.copy(SAMPLES / "submissions" / "assignment.yaml", pytester.path / "ok.yaml")
    for stem in ("bugs/sigmoid_of_output", "broken/raises_in_gradients"):
        for suffix in (".py", ".yaml"):
            shutil.copy(SAMPLES / f"{stem}{suffix}", pytester.path)
    (pytester.path / "typo.yaml").write_text((pytester.path / "ok.yaml").read_text().replace("sigmoid", "sigmod"))
    return pytester


def test_assert_gradients_returns_the_result_or_fails_with_the_plain_report(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("FORCE_COLOR", "1")  # even where rich would colour a terminal
    result = backcheck.assert_gradients("samples/styles/mlp_functions.yaml")
    assert result.ok and int(result.exit_code) == 0
    with pytest.raises(AssertionError) as caught:
        assert_gradients("samples/bugs/sigmoid_of_output.yaml")
    assert isinstance(caught.value, GradientCheckFailed) and int(caught.value.result.exit_code) == 1
    message = str(caught.value)
    assert message.startswith("backcheck verify samples/bugs/sigmoid_of_output.yaml")
    assert "[activation-derivative/of-output]" in message and "fix: a is already sigmoid(z)" in message
    assert message.splitlines()[-2:] == ["WRONG: 2 of 4 gradients disagree; the error starts at layer 1. Most likely:",
                                         "       activation-derivative/of-output at layer 1."]
    assert "\x1b" not in message and max(len(line) for line in message.splitlines()) <= 80


@pytest.mark.parametrize("config, says", [
    ("samples/broken/expected.yaml", "error (configuration error): samples/broken/expected.yaml:4:1: "),
    ("samples/broken/raises_in_gradients.yaml", "error (code under test: exception): raises_in_gradients.py:32: "),
    ("samples/styles/dropout_unseeded.yaml", "INCONCLUSIVE: nothing was found wrong, but W1, b1, W2, b2 could not"),
])
def test_anything_but_exit_0_fails(monkeypatch, config, says):
    monkeypatch.chdir(ROOT)
    with pytest.raises(GradientCheckFailed) as caught:
        assert_gradients(config)
    assert says in " ".join(str(caught.value).split())


def test_a_course_test_file_with_the_api_and_the_fixture(course):
    course.makepyfile(test_course="""
        import backcheck

        def test_backprop():
            backcheck.assert_gradients("ok.yaml")

        def test_planted_bug():
            backcheck.assert_gradients("sigmoid_of_output.yaml")

        def test_fixture_ok(backcheck_check):
            assert backcheck_check("ok.yaml").ok

        def test_fixture_wrong(backcheck_check):
            backcheck_check("sigmoid_of_output.yaml")
    """)
    result = course.runpytest("-p", "no:cacheprovider", "--junitxml=report.xml")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*GradientCheckFailed: backcheck verify sigmoid_of_output.yaml*",
                                 "E*WRONG: 2 of 4 gradients disagree; the error starts at layer 1. Most likely:*"])
    assert "backcheck/testing.py" not in result.stdout.str()  # the test's line is shown, not backcheck's
    assert '<property name="backcheck_exit_code" value="1"' in (course.path / "report.xml").read_text()


def test_pytest_backcheck_collects_a_test_per_layer(course):
    course.makepyfile(test_other="def test_other():\n    pass\n")
    result = course.runpytest("-p", "no:cacheprovider", "-v", "--backcheck", "ok.yaml", "sigmoid_of_output.yaml",
                              "raises_in_gradients.yaml", "typo.yaml")
    result.assert_outcomes(passed=3, failed=4)  # only the configs: test_other.py is not collected
    result.stdout.fnmatch_lines([
        "ok.yaml::layer 1: dense 4->6 sigmoid PASSED*",
        "ok.yaml::layer 2: dense 6->3 softmax PASSED*",
        "sigmoid_of_output.yaml::layer 1: dense 4->6 sigmoid FAILED*",
        "sigmoid_of_output.yaml::layer 2: dense 6->3 softmax PASSED*",
        "raises_in_gradients.yaml::layer 1: dense 4->5 tanh FAILED*",
        "raises_in_gradients.yaml::layer 2: dense 5->3 softmax FAILED*",
        "typo.yaml::config FAILED*",
    ])
    result.stdout.fnmatch_lines([
        "W (W1): wrong, relative error 8.1e-02",
        "b (b1): wrong, relative error 1.1e-01",
        "[[]activation-derivative/of-output[]] layer 1 (sigmoid): derivative taken of the activated output*",
        "  fix: a is already sigmoid(z): use a * (1 - a) (times the upstream gradient)",
    ])
    result.stdout.fnmatch_lines(["not checked: exception error: gradients(params, X, Y) raised IndexError: list "
                                 "index out of range (raises_in_gradients.py:32)"] * 2)
    result.stdout.fnmatch_lines(["not checked: config error: network.layers[[]0[]].activation: expected one of *"
                                 "got 'sigmod' (did you mean 'sigmoid'?)*"])


def test_pytest_backcheck_beside_other_paths(course):
    course.makepyfile(test_other="def test_other():\n    pass\n")
    result = course.runpytest("-p", "no:cacheprovider", "test_other.py", "--backcheck", "ok.yaml")
    result.assert_outcomes(passed=3)
    result = course.runpytest("-p", "no:cacheprovider", "--backcheck", "ok.yaml", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["ok.yaml::layer 1: dense 4->6 sigmoid", "ok.yaml::layer 2: dense 6->3 softmax"])


def test_an_inconclusive_layer_fails_with_its_reason(pytester):
    for suffix in (".py", ".yaml"):
        shutil.copy(SAMPLES / "styles" / f"dropout_unseeded{suffix}", pytester.path)
    result = pytester.runpytest("-p", "no:cacheprovider", "--backcheck", "dropout_unseeded.yaml")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["W (W1): inconclusive, relative error *(its gradient * is below what the loss's "
                                 "noise lets finite differences resolve *)"])


def test_importing_backcheck_and_its_plugin_stays_light():
    """pytest loads the plugin in every run of every project where backcheck is installed."""
    code = ("import sys, backcheck, backcheck.testing; backcheck.assert_gradients; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'rich', 'yaml', 'click'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert "assert_gradients" in dir(backcheck)
