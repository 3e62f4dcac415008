"""Golden outputs of the text report at 80 and 120 columns (STYLE habit 12).

Each case renders a fixed result into a colourless in-memory console and compares it with
tests/golden/<case>-<width>.txt; ``pytest --update-golden`` rewrites those files. The results are
frozen as the contract's JSON in tests/golden/<case>.json (recorded once from the bundled samples:
function_wrong from samples/bugs/sigmoid_of_output.yaml, object_wrong from samples/seeds/
dense_object.yaml, ok_warnings from samples/styles/float32_mlp.yaml, inconclusive from samples/
styles/dropout_unseeded.yaml, sampled_wrong from a 784-64-10 reference network with
--inject activation-derivative/missing@1, config_error from a config with 'rleu', diagnose from
samples/diagnose/lr_too_large.yaml, grade from samples/submissions), so what is pinned is the
layout, not the arithmetic of this machine."""

import difflib
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from backcheck import render
from backcheck.grade import Grade, LayerTest, Submission
from backcheck.results import (CheckResult, CheckWarning, ErrorInfo, Finding, LayerResult, Method, ParamResult,
                               Worst)

GOLDEN = Path(__file__).resolve().parent / "golden"
WIDTHS = (80, 120)


def _num(x):
    return float("nan") if x is None else x


def _param(j: dict) -> ParamResult:
    worst = j["worst"]
    return ParamResult(
        j["name"], j["code_name"], tuple(j["shape"]), j["status"], _num(j["rel_error"]), _num(j["max_abs_error"]),
        j["checked"], j["size"], 0.0, 0.0,
        Worst(tuple(worst["index"]), _num(worst["analytic"]), _num(worst["numeric"])) if worst else None,
        j["directions"], j["kinks"], j["wrong_entries"], j["pattern"], _num(j["numeric_error"]), j["method"] or "",
        j["blocks"], j["searched"], j["estimated"], j["point"], j.get("why", ""))


def result_of(j: dict) -> CheckResult:
    """The CheckResult whose to_json() is ``j`` (as far as the report reads it)."""
    m = j["method"]
    fields = set(Finding.__dataclass_fields__)
    return CheckResult(
        config=j["config"], name=j["name"],
        method=Method(m["name"], m["eps"], m["dtype"], m["mode"], m["seed"], m["jobs"], m["loss_calls"],
                      m["gradient_calls"]) if m else None,
        layers=tuple(LayerResult(L["index"], L["label"], tuple(_param(p) for p in L["params"])) for L in j["layers"]),
        findings=tuple(Finding(**{k: v for k, v in f.items() if k in fields}) for f in j["findings"]),
        warnings=tuple(CheckWarning(w["id"], w["message"]) for w in j["warnings"]),
        notes=tuple(j["notes"]), error=ErrorInfo(**j["error"]) if j["error"] else None,
        extra={"train": j["train"]} if "train" in j else {})


def _grade(j: dict) -> Grade:
    subs = []
    for s in j["submissions"]:
        scored = int(s["score"])
        tests = tuple(LayerTest(f"layer {k}", k <= scored, float(k <= scored), 1.0, "")
                      for k in range(1, int(s["max_score"]) + 1))
        subs.append(Submission(s["submission"], Path(s["submission"]), result_of(s), tests))
    return Grade(j["config"], tuple(subs))


def _draw(case: str, width: int) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, no_color=True, color_system=None, highlight=False, emoji=False,
                      force_terminal=False, legacy_windows=False)
    if case == "bugs":
        render.catalog(console)
    elif case == "grade":
        render.grade_summary(_grade(json.loads((GOLDEN / "grade.json").read_text())), console)
    elif case == "training":
        render.training(result_of(json.loads((GOLDEN / "diagnose.json").read_text())), console)
    else:
        render.report(result_of(json.loads((GOLDEN / f"{case}.json").read_text())), console)
    return out.getvalue()


CASES = ["function_wrong", "object_wrong", "ok_warnings", "inconclusive", "sampled_wrong", "config_error",
         "diagnose", "training", "grade", "bugs"]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("case", CASES)
def test_golden(case, width, update_golden):
    drawn = _draw(case, width)
    path = GOLDEN / f"{case}-{width}.txt"
    if update_golden:
        path.write_text(drawn)
        return
    assert path.exists(), f"{path.name} is missing: run pytest --update-golden and read what it wrote"
    expected = path.read_text()
    if drawn != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), drawn.splitlines(True), path.name, "drawn"))
        pytest.fail(f"{path.name} differs from the report drawn now (pytest --update-golden rewrites it):\n{diff}")


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("case", CASES)
def test_no_line_is_wider_than_the_console(case, width):
    assert max(len(line) for line in _draw(case, width).splitlines()) <= width


@pytest.mark.parametrize("width", [72, 80, 90, 100, 120])
@pytest.mark.parametrize("case", ["function_wrong", "object_wrong", "sampled_wrong", "inconclusive", "diagnose"])
def test_numbers_indexes_and_code_names_are_never_broken(case, width):
    result = result_of(json.loads((GOLDEN / f"{case}.json").read_text()))
    words = {w for line in _draw(case, width).splitlines() for w in line.replace("│", " ").split()}
    for p in (p for layer in result.layers for p in layer.params):
        tokens = [f"{p.rel_error:.1e}", "x".join(map(str, p.shape))]
        if p.worst is not None:
            tokens += ["[" + ",".join(map(str, p.worst.index)) + "]", f"{p.worst.analytic:.3g}/{p.worst.numeric:.3g}"]
        for token in tokens:
            assert token in words, (p.code_name, token)
        if p.pattern:  # "W1: 3 of 50 entries wrong ...", or listed among those wrong in every entry
            assert {f"{p.code_name}:", f"{p.code_name},", p.code_name} & words, p.code_name


def test_a_mistake_found_alike_at_several_layers_is_one_entry_and_different_ones_stay_apart():
    from backcheck.render import report_text
    from backcheck.results import CheckResult, Finding, Method

    def f(layer, act, line="net.py:26"):
        return Finding("activation-derivative/of-upstream", layer, "error",
                       f"layer {layer} ({act}): derivative at the upstream gradient", fix="use f'(z)",
                       detail=f"matches at layer {layer}", line={"file": "net.py", "line": 26, "where": line,
                                                                 "source": "d = f(up)"})

    text = report_text(CheckResult(config="c.yaml", name=None, findings=(f(3, "sigmoid"), f(2, "sigmoid"),
                                                                         f(1, "tanh"), f(4, "sigmoid", "net.py:9")),
                                   method=Method("central", 1e-6, "float64")), width=100)
    assert "1. [activation-derivative/of-upstream] layers 3, 2 (sigmoid): derivative" in text
    assert "likewise at layer 2 (each layer's numbers: --format json)" in text
    assert "2. [activation-derivative/of-upstream] layer 1 (tanh)" in text  # other words: its own entry
    assert "3. [activation-derivative/of-upstream] layer 4 (sigmoid)" in text  # another line: its own entry
    assert "matches at layer 3" in text and "matches at layer 2" not in text
