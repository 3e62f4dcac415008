"""backcheck grade: every submission gets its own verdict and score; outputs are whole files."""

import csv
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from backcheck.cli import main
from backcheck.grade import GradeOptions, grade

ROOT = Path(__file__).resolve().parent.parent
CLASS = ROOT / "samples" / "submissions" / "class"
CONFIG = ROOT / "samples" / "submissions" / "assignment.yaml"
EXPECTED = {"alice": ("ok", 2), "bob": ("wrong", 1), "carol": ("timeout", 0), "dave": ("config", 0),
            "erin": ("exception", 0), "frank": ("wrong", 0)}


def _grade():
    return grade(CONFIG, CLASS, GradeOptions(jobs=2, timeout=2))


def test_every_submission_gets_its_own_verdict_and_score():
    g = _grade()
    assert {s.name: (s.status, s.score) for s in g.submissions} == EXPECTED
    bob = next(s for s in g.submissions if s.name == "bob")
    assert [t.passed for t in bob.tests] == [False, True]
    assert bob.result.findings[0].id == "activation-derivative/of-output"
    assert int(g.exit_code(strict=False)) == 0 and int(g.exit_code(strict=True)) == 1


def test_cli_writes_every_output(tmp_path):
    out = {k: tmp_path / f"out.{k}" for k in ("json", "xml", "csv")}
    result = CliRunner().invoke(main, [
        "grade", str(CLASS), "--config", str(CONFIG), "--timeout", "2", "--jobs", "2", "--no-color",
        "--json", str(out["json"]), "--junit", str(out["xml"]), "--csv", str(out["csv"]),
        "--gradescope", str(tmp_path / "gs" / "{submission}.json")])
    assert result.exit_code == 0, result.output
    assert "6 submissions: 2 wrong, 1 config, 1 exception, 1 ok, 1 timeout; 3 of 12 layer points" in result.output

    data = json.loads(out["json"].read_text())
    subs = {s["submission"]: s for s in data["submissions"]}
    assert set(subs) == set(EXPECTED)
    for key in ("ok", "exit_code", "method", "origin_layer", "layers", "findings", "warnings", "error"):
        assert key in subs["bob"]  # the contract's object, per submission
    assert subs["carol"]["error"]["kind"] == "timeout" and subs["alice"]["score"] == 2

    suites = ET.parse(out["xml"]).getroot()
    assert (suites.get("tests"), suites.get("failures"), suites.get("errors")) == ("12", "3", "6")

    rows = {r["submission"]: r for r in csv.DictReader(out["csv"].open())}
    assert rows["frank"]["findings"] == "scale/batch-sum" and rows["erin"]["status"] == "exception"

    gs = json.loads((tmp_path / "gs" / "bob.json").read_text())
    assert gs["score"] == 1.0 and [t["status"] for t in gs["tests"]] == ["failed", "passed"]
    assert not list(tmp_path.glob(".*.tmp")) and not list((tmp_path / "gs").glob(".*.tmp"))


def test_strict_exit_code():
    result = CliRunner().invoke(main, ["grade", str(CLASS), "--config", str(CONFIG), "--timeout", "2",
                                       "--strict", "--no-color"])
    assert result.exit_code == 1


def test_a_gradescope_submission_folder_is_one_submission(tmp_path):
    shutil.copy(CLASS / "alice" / "mlp.py", tmp_path / "mlp.py")
    results = tmp_path / "results.json"
    result = CliRunner().invoke(main, ["grade", str(tmp_path), "--config", str(CONFIG), "--gradescope",
                                       str(results), "--no-color"])
    assert result.exit_code == 0, result.output
    assert json.loads(results.read_text())["score"] == 2.0


def test_usage_errors_exit_2_and_write_nothing(tmp_path):
    out = tmp_path / "g.json"
    missing = CliRunner().invoke(main, ["grade", str(tmp_path / "nope"), "--config", str(CONFIG),
                                        "--json", str(out)])
    assert missing.exit_code == 2 and "no such folder" in missing.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.read_text().replace("activation: sigmoid", "activation: sigmod"))
    typo = CliRunner().invoke(main, ["grade", str(CLASS), "--config", str(bad), "--json", str(out)])
    assert typo.exit_code == 2 and "did you mean 'sigmoid'" in typo.output
    several = CliRunner().invoke(main, ["grade", str(CLASS), "--config", str(CONFIG), "--timeout", "2",
                                        "--gradescope", str(tmp_path / "results.json")])
    assert several.exit_code == 2 and "{submission}" in several.output
    assert not out.exists()
