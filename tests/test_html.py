"""--html: one self-contained HTML document whose numbers are the result's, with a heat map for
every wrong parameter (and none for a right one), written whole or not at all."""

import json
import math
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from backcheck import html, render
from backcheck.cli import main
from backcheck.html import heatmap
from backcheck.results import CheckResult, ErrorInfo, Finding, LayerResult, Method, ParamResult, Worst
from backcheck.runner import diagnose_config_path, verify

ROOT = Path(__file__).resolve().parent.parent
SIGMOID = ROOT / "samples" / "bugs" / "sigmoid_of_output.yaml"
VOID = {"meta", "br", "hr", "img", "input", "link", "source", "wbr", "col", "area", "base", "embed", "param",
        "track"}
SVG_LEAVES = {"rect", "line", "circle", "path", "polyline", "stop"}  # written closed (<rect ...></rect>) or not


class Document(HTMLParser):
    """Checks that tags nest and close, and keeps every element with its attributes and its text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open, self.elements, self.doctype, self.problems = [], [], None, []

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "text": "", "parents": [e["tag"] for e in self.open],
                   "within": [e["attrs"].get("class") for e in self.open]}
        self.elements.append(element)
        if tag not in VOID:
            self.open.append(element)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.open.pop()

    def handle_endtag(self, tag):
        if not self.open or self.open[-1]["tag"] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1]['tag'] if self.open else 'nothing'}")
            return
        self.open.pop()
        if tag in ("td", "th"):  # cells read apart
            for element in self.open:
                element["text"] += " "

    def handle_data(self, data):
        for element in self.open:
            element["text"] += data

    def all(self, tag, **attrs):
        return [e for e in self.elements if e["tag"] == tag and all(e["attrs"].get(k) == v for k, v in attrs.items())]


def parse(text: str) -> Document:
    doc = Document()
    doc.feed(text)
    doc.close()
    assert doc.doctype and doc.doctype.lower() == "doctype html"
    assert not doc.problems, doc.problems[:5]
    assert not doc.open, [e["tag"] for e in doc.open]
    assert [e["tag"] for e in doc.elements if not e["parents"]] == ["html"]  # one document
    for tag in ("html", "head", "body"):
        assert len(doc.all(tag)) == 1, tag
    assert [e["parents"] for e in doc.all("title") if "svg" not in e["parents"]] == [["html", "head"]]
    return doc


def self_contained(text: str) -> None:
    assert not re.search(r"https?://", text, re.I)
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", text, re.I)
    assert not re.search(r"\b(src|href)\s*=", text, re.I)
    assert not re.search(r"@import|url\((?!#)", text, re.I)  # only url(#id) of the page's own SVG patterns


@pytest.fixture(scope="module")
def wrong():
    return verify(SIGMOID, isolate=False)


@pytest.fixture(scope="module")
def digits():
    return verify(ROOT / "samples" / "seeds" / "digits_sigmoid.yaml", isolate=False)


@pytest.fixture(scope="module")
def trained():
    return diagnose_config_path(ROOT / "samples" / "diagnose" / "lr_too_large.yaml", isolate=False)


def _params(result):
    return [(layer, p) for layer in result.layers for p in layer.params]


def _cells(doc, code_name):
    """{code index: (analytic, numeric, rel)} from the cell titles of one parameter's heat map."""
    [figure] = [e for e in doc.all("figure") if e["attrs"].get("data-param") == code_name]
    start = doc.elements.index(figure)
    cells = {}
    for e in doc.elements[start + 1:]:
        if e["tag"] == "figure":
            break
        m = re.search(rf"{re.escape(code_name)}\[([\d,]+)\]: analytic (\S+), numeric (\S+), relative error (\S+)$",
                      e["text"])
        if e["tag"] == "title" and m:
            cells[tuple(int(i) for i in m.group(1).split(","))] = tuple(float(m.group(k)) for k in (2, 3, 4))
    return cells


def test_a_wrong_report_is_one_self_contained_document(wrong):
    text = html.page(wrong)
    self_contained(text)
    doc = parse(text)
    assert len(doc.all("style")) == 1 and doc.all("svg")


def test_the_table_has_a_row_per_parameter_with_the_results_numbers(wrong, digits):
    for result in (wrong, digits):
        doc = parse(html.page(result))
        rows = [e for e in doc.all("tr") if "layers" in e["within"] and "tbody" in e["parents"]]
        assert len(rows) == len(_params(result))
        for row, (layer, p) in zip(rows, _params(result)):
            text = " ".join(row["text"].split())
            assert p.code_name in text and p.status in text and f"{p.rel_error:.1e}" in text
            idx = ",".join(map(str, p.worst.index))
            assert f"[{idx}] {p.worst.analytic:.3g} / {p.worst.numeric:.3g}" in text
            assert ("origin" in text) == (layer.index == result.origin_layer and p is layer.params[0])


def test_the_verdict_is_the_text_reports_line(wrong, trained):
    for result in (wrong, trained):
        [verdict] = parse(html.page(result)).all("p", **{"class": "verdict wrong"})
        assert verdict["text"] == render._verdict(result).plain


def test_a_heat_map_for_each_wrong_parameter_and_none_for_a_right_one(wrong, digits):
    for result in (wrong, digits):
        doc = parse(html.page(result))
        mapped = [e["attrs"]["data-param"] for e in doc.all("figure") if "data-param" in e["attrs"]]
        assert mapped == [p.code_name for _, p in _params(result) if p.status == "wrong"]
        assert len([e for e in doc.all("svg") if e["attrs"].get("class") == "heat"]) == len(mapped)
    ok = verify(ROOT / "configs" / "iris_reference.yaml", isolate=False)
    doc = parse(html.page(ok))
    assert not doc.all("svg") and "Where the gradients are wrong" not in html.page(ok)


def test_every_cell_shows_its_entrys_numbers(digits):
    doc = parse(html.page(digits))
    for _, p in _params(digits):
        if p.status != "wrong":
            continue
        a, n = digits.entries[p.code_name]
        cells = _cells(doc, p.code_name)
        assert len(cells) == p.size
        for index, (an, nu, rel) in cells.items():
            expected = abs(a[index] - n[index]) / (abs(a[index]) + abs(n[index])) if a[index] or n[index] else 0.0
            assert float(f"{a[index]:.3g}") == an and float(f"{n[index]:.3g}") == nu
            assert float(f"{expected:.3g}") == rel


def test_rows_are_inputs_and_columns_units_however_w_is_stored():
    """W stored (out, in) = (3, 2) for a layer 2->3: the cell in row i, column j is the code's W[j, i]."""
    a = np.arange(6.0).reshape(3, 2) + 1
    n = a.copy()
    n[2, 0] = 100.0  # unit 2's weight from input 0
    p = ParamResult("W", "W1", (3, 2), "wrong", 0.5, 1.0, 6, 6, 1e-6, 1e-6, Worst((2, 0), 3.0, 100.0))
    grid, rows, cols, caveat = heatmap.canonical(p, "dense 2->3 tanh", 1, None)
    assert grid.shape == (2, 3) and rows.startswith("inputs") and cols == "units of layer 1"
    assert np.unravel_index(grid[0, 2], (3, 2)) == (2, 0) and "transposed" in caveat
    svg, caption = heatmap.svg(p, "dense 2->3 tanh", 1, a, n, None, key="t")
    titles = re.findall(r"<title>(.*?)</title>", svg)
    assert titles[2].startswith("input 0, unit 2: W1[2,0]: analytic 5, numeric 100")
    assert "W1[2,0], the table's worst entry" in caption


def test_a_line_search_loss_gets_the_digits_that_tell_it_from_the_loss_before():
    j = diagnose_config_path(ROOT / "samples" / "bugs" / "sign_flipped.yaml", isolate=False)
    search = j.extra["train"]["line_search"][0]
    doc = parse(html.page(j))
    shown = [e["text"].split()[1] for e in doc.all("tr") if "steps" in e["within"] and "tbody" in e["parents"]]
    before = f"{search['loss']:.6g}"
    for text, v in zip(shown, search["losses"]):
        assert text != before and math.isclose(float(text), v, rel_tol=5e-6)  # every step raises it, some in digit 8
    assert f"before the step: {before}" in html.page(j)


def test_a_large_parameter_is_drawn_in_blocks_and_unprobed_entries_are_hatched():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(784, 64))
    n = np.full_like(a, np.nan)
    probed = rng.choice(a.size, 300, replace=False)
    n.flat[probed] = a.flat[probed] * 2
    p = ParamResult("W", "W1", (784, 64), "wrong", 0.33, 1.0, 300, a.size, 1e-6, 1e-6, None, directions=8)
    svg, caption = heatmap.svg(p, "dense 784->64 sigmoid", 1, a, n, None, key="big")
    cells = re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="\d+" height="\d+" fill="([^"]+)">', svg)
    assert len(cells) == 61 * 64  # 784 inputs in blocks of 13, 64 units
    assert "block of 13 entries (13 inputs x 1 unit)" in caption
    assert "url(#unprobed-big)" in cells and len(svg) < 1_000_000
    assert "largest of 1 probed of 13: W1[" in svg or "largest of 2 probed of 13: W1[" in svg


def test_relative_error_per_entry():
    rel = heatmap.rel_errors(np.array([1.0, 0.0, 2.0, 1.0]), np.array([1.0, 0.0, -2.0, np.nan]))
    assert rel[0] == 0 and rel[1] == 0 and rel[2] == 1 and math.isnan(rel[3])


def test_findings_show_id_title_fix_evidence_and_line_warnings_and_notes():
    layer = LayerResult(1, "dense 2->1 sigmoid", (
        ParamResult("W", "W1", (2, 1), "wrong", 0.2, 0.1, 2, 2, 1e-6, 1e-6, Worst((0, 0), 1.0, 0.5)),))
    result = CheckResult(
        "net.yaml", "net", Method("central", 1e-6, "float64"), (layer,),
        findings=(Finding("activation-derivative/of-output", 1, "error", "derivative of the output", "matches to 1e-17",
                          "use a * (1 - a)", 0.98, line={"file": "net.py", "line": 71, "source": "d = s(a) * <1 - s(a)>"}),
                  Finding("train/dead-units", 1, "warning", "most units are dead", fix="use leaky_relu")),
        warnings=(type("W", (), {"id": "precision/float32", "message": "the code computes in float32"})(),),
        notes=("random data: batch 8",),
        entries={"W1": (np.array([[1.0], [2.0]]), np.array([[0.5], [2.0]]))})
    text = html.page(result)
    doc = parse(text)
    words = " ".join(doc.all("main")[0]["text"].split())
    for said in ("activation-derivative/of-output", "derivative of the output", "use a * (1 - a)", "matches to 1e-17",
                 "confidence 0.98", "net.py:71", "d = s(a) * <1 - s(a)>", "train/dead-units", "most units are dead",
                 "use leaky_relu", "precision/float32", "the code computes in float32", "random data: batch 8"):
        assert said in words, said
    assert "&lt;1 - s(a)&gt;" in text  # the code's text is escaped, never markup


def test_an_error_result_shows_the_text_reports_error_line():
    result = CheckResult("m.yaml", "m", error=ErrorInfo("exception", "gradients raised <IndexError>", "net.py:32"))
    doc = parse(html.page(result))
    [verdict] = doc.all("p", **{"class": "verdict wrong"})
    assert verdict["text"] == "error (code under test: exception): net.py:32: gradients raised <IndexError>"


def test_diagnose_draws_every_step_and_the_line_searchs_measured_losses(trained):
    text = html.page(trained)
    self_contained(text)
    doc = parse(text)
    train = trained.extra["train"]
    points = [e["text"] for e in doc.all("title") if e["text"].startswith("after ")]
    assert points == [f"after {i} step{'s' if i != 1 else ''}: {v:.6g}" for i, v in enumerate(train["losses"])]
    assert "loss (log scale)" in text  # 1.1 to 432: the text report's sparkline is on a log scale too
    [search] = train["line_search"]
    rows = [" ".join(e["text"].split()) for e in doc.all("tr") if "steps" in e["within"] and "tbody" in e["parents"]]
    assert len(rows) == len(search["steps"])
    for row, s, v in zip(rows, search["steps"], search["losses"]):
        step, loss, change = row.split()
        assert step == f"{s:.3g}" and loss in {f"{v:.{d}g}" for d in range(6, 18)}  # more digits where 6 tie
        assert change == ("lowers" if v < search["loss"] else "raises")
    assert f"before the step: {search['loss']:.6g}" in text
    assert train["trend"].upper() in text


# ---------------------------------------------------------------- the CLI


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_writes_the_file_and_keeps_the_exit_code(tmp_path):
    out = tmp_path / "report.html"
    r = invoke("verify", SIGMOID, "--html", out, "--format", "json")
    assert r.exit_code == 1 and json.loads(r.stdout)["exit_code"] == 1
    text = out.read_text()
    parse(text)
    self_contained(text)
    assert "activation-derivative/of-output" in text
    assert not [p for p in tmp_path.iterdir() if p.name != "report.html"]  # no temporary file left behind
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def test_cli_diagnose_writes_the_curve(tmp_path):
    out = tmp_path / "sub" / "diagnose.html"
    r = invoke("diagnose", ROOT / "samples" / "diagnose" / "healthy.yaml", "--html", out, "--no-color")
    assert r.exit_code == 0, r.output
    assert "FALLING" in out.read_text() and "Line search from the starting parameters" in out.read_text()


def test_cli_never_replaces_a_symlink_a_folder_or_a_device(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "link.html"
    link.symlink_to(target)
    for path, kind in ((link, "a symlink"), (tmp_path, "a folder"), (Path(os.devnull), "a device")):
        r = invoke("verify", SIGMOID, "--html", path, "--format", "json")
        if kind == "a folder":  # click refuses a folder for a FILE option itself
            assert r.exit_code == 2
            continue
        assert r.exit_code == 2, r.output
        error = json.loads(r.stdout)["error"]
        assert error["kind"] == "config" and kind in error["message"] and not json.loads(r.stdout)["layers"]
    assert link.is_symlink() and target.read_text() == "keep me"


def test_a_page_that_fails_leaves_the_old_file_whole(tmp_path, monkeypatch):
    out = tmp_path / "report.html"
    out.write_text("the previous report")

    def broken(result):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(html, "page", broken)
    r = invoke("verify", SIGMOID, "--html", out, "--no-color")
    assert r.exit_code == 4 and "WRONG" in r.stdout and "bug in backcheck" in r.stderr
    assert out.read_text() == "the previous report" and sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_a_write_that_fails_leaves_no_half_file(tmp_path, monkeypatch):
    out = tmp_path / "report.html"
    out.write_text("the previous report")
    real = os.replace

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    r = invoke("verify", SIGMOID, "--html", out, "--no-color")
    monkeypatch.setattr(os, "replace", real)
    assert r.exit_code == 2 and "was not written" in r.stderr and "No space left" in r.stderr
    assert out.read_text() == "the previous report" and sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_grade_writes_a_page_per_submission(tmp_path):
    import shutil

    for name in ("alice", "bob"):
        shutil.copytree(ROOT / "samples" / "submissions" / "class" / name, tmp_path / "class" / name)
    r = invoke("grade", tmp_path / "class", "--config", ROOT / "samples" / "submissions" / "assignment.yaml",
               "--html", tmp_path / "pages")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "pages").iterdir()) == ["alice.html", "bob.html"]
    for page in (tmp_path / "pages").iterdir():
        parse(page.read_text())


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask
