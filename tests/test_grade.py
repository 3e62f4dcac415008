"""backcheck grade: every submission gets its own verdict and score; outputs are whole files."""

import csv
import json
import os
import sys
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from backcheck.cli import main
from backcheck.grade import GradeOptions, grade

ROOT = Path(__file__).resolve().parent.parent
CLASS = ROOT / "samples" / "submissions" / "class"
CONFIG = ROOT / "samples" / "submissions" / "assignment.yaml"
EXPECTED = {"alice": ("ok", 2), "bob": ("wrong", 1), "carol": ("timeout", 0), "dave": ("config", 0),
            "erin": ("exception", 0), "frank": ("wrong", 0), "gina": ("wrong", 0), "hank": ("ok", 2) if os.geteuid() == 0 else ("exception", 0),
            "ivan": ("ok", 2), "judy": ("ok", 2), "ken": ("exception", 0), "leo": ("exception", 0), "mia": ("ok", 2),
            "nina": ("ok", 2), "oscar": ("exception", 0)}


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
    summary = ("15 submissions: 6 ok, 4 exception, 3 wrong, 1 config, 1 timeout; 13 of 30 layer points"
               if os.geteuid() == 0 else
               "15 submissions: 5 exception, 5 ok, 3 wrong, 1 config, 1 timeout; 11 of 30 layer points")
    assert summary in " ".join(result.output.split())

    data = json.loads(out["json"].read_text())
    subs = {s["submission"]: s for s in data["submissions"]}
    assert set(subs) == set(EXPECTED)
    for key in ("ok", "exit_code", "method", "origin_layer", "layers", "findings", "warnings", "error"):
        assert key in subs["bob"]  # the contract's object, per submission
    assert subs["carol"]["error"]["kind"] == "timeout" and subs["alice"]["score"] == 2

    suites = ET.parse(out["xml"]).getroot()
    errors = "12" if os.geteuid() == 0 else "14"
    assert (suites.get("tests"), suites.get("failures"), suites.get("errors")) == ("30", "5", errors)

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
    up = CliRunner().invoke(main, ["grade", str(CLASS.parent), "--config", str(CONFIG), "--json", str(out)])
    assert up.exit_code == 2 and "the sub-folders of class do: grade" in up.output  # a folder of classes
    assert not out.exists()


def test_hostile_submissions_reach_neither_the_grader_nor_each_other(tmp_path):
    """gina patches backcheck from inside, hank kills its parents, ivan overwrites alice's file,
    judy starts daemons, ken eats memory: each gets its own verdict, the rest are graded."""
    before = (CLASS / "alice" / "mlp.py").read_bytes()
    g = _grade()
    by = {s.name: s for s in g.submissions}
    assert [f.id for f in by["gina"].result.findings if f.severity == "error"] == ["scale/sign"]
    assert by["hank"].status == "ok" if os.geteuid() == 0 else "supervisor" in by["hank"].result.error.message
    assert "MemoryError" in by["ken"].result.error.message
    assert "closed backcheck's pipe" in by["leo"].result.error.message
    assert "SIGKILL" in by["oscar"].result.error.message and "memory limit" not in by["oscar"].result.error.message
    assert (CLASS / "alice" / "mlp.py").read_bytes() == before
    assert not (CLASS / "grades.csv").exists()
    from tests_helpers import marked_processes  # noqa: PLC0415

    assert marked_processes() == []


def test_output_paths_are_checked_before_anything_runs(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("keep")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    for path, says in ((link, "regular file"), (Path("/dev/full"), "regular file"), (tmp_path, "directory")):
        r = CliRunner().invoke(main, ["grade", str(CLASS), "--config", str(CONFIG), "--json", str(path)])
        assert r.exit_code == 2 and says in r.output, r.output
        assert "[1/" not in r.output  # no submission ran
    assert target.read_text() == "keep" and link.is_symlink()


def test_outputs_get_the_users_umask(tmp_path):
    import os

    shutil.copy(CLASS / "alice" / "mlp.py", tmp_path / "mlp.py")
    old = os.umask(0o027)
    try:
        r = CliRunner().invoke(main, ["grade", str(tmp_path), "--config", str(CONFIG), "--json",
                                      str(tmp_path / "g.json"), "--no-color"])
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "g.json").stat().st_mode & 0o777 == 0o640


def test_ctrl_c_exits_130_and_writes_nothing(tmp_path, monkeypatch):
    import backcheck.grade

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(backcheck.grade, "grade", interrupted)
    out = tmp_path / "g.json"
    r = CliRunner().invoke(main, ["grade", str(CLASS), "--config", str(CONFIG), "--json", str(out)])
    assert r.exit_code == 130 and not out.exists()


@pytest.mark.skipif(os.geteuid() != 0 or not sys.platform.startswith("linux"), reason="confinement needs root")
def test_as_root_a_write_outside_the_copy_fails_and_the_report_says_why(tmp_path):
    """Whichever user the code runs as, grading as root leaves every file outside the submission's
    copy read-only to it: the grader's own files too, which it can find through /proc or argv."""
    target = tmp_path / "grades.json"
    target.write_text("the grader's")
    (tmp_path / "class" / "mallory").mkdir(parents=True)
    source = (CLASS / "alice" / "mlp.py").read_text()
    (tmp_path / "class" / "mallory" / "mlp.py").write_text(f"open({str(target)!r}, 'w').write('0/0')\n" + source)
    (tmp_path / "class" / "trent").mkdir()
    (tmp_path / "class" / "trent" / "mlp.py").write_text(  # writing in its own folder and in TMPDIR is fine
        "import tempfile\nopen('notes.txt', 'w').write('x')\ntempfile.NamedTemporaryFile().write(b'x')\n" + source)
    by = {s.name: s for s in grade(CLASS.parent / "assignment.yaml", tmp_path / "class", GradeOptions(timeout=10)).submissions}
    assert target.read_text() == "the grader's"
    message = by["mallory"].result.error.message
    assert "Read-only file system" in message and "may write only in" in message, message
    assert by["trent"].result.error is None and by["trent"].score == by["trent"].max_score, by["trent"].result.error


CHEAT = '''
import os
import sys

OUT, CLASS = {out!r}, {cls!r}
for target in (OUT, os.path.join(CLASS, "alice", "mlp.py"), os.path.join(os.path.dirname(CLASS), "grades.csv")):
    try:
        with open(target, "w") as f:
            f.write("OVERWRITTEN")
    except OSError:
        pass
try:
    SEEN = sorted(os.listdir(CLASS))
except OSError:
    SEEN = []
'''


@pytest.mark.skipif(os.geteuid() != 0 or not sys.platform.startswith("linux"), reason="mount namespaces need root")
def test_as_root_the_code_sees_no_classmate_and_cannot_write_the_outputs(tmp_path):
    """Even running as root (nobody cannot read Python here), a submission that knows the absolute
    paths finds the submissions folder empty and the assignment's folder and the outputs read-only."""
    cls = tmp_path / "class"
    for name in ("alice", "mallory"):
        (cls / name).mkdir(parents=True)
        shutil.copy(CLASS / "alice" / "mlp.py", cls / name / "mlp.py")
    shutil.copy(CONFIG, tmp_path / "assignment.yaml")
    out = tmp_path / "out" / "g.json"
    out.parent.mkdir()
    out.write_text("{}")
    evil = (CLASS / "alice" / "mlp.py").read_text() + CHEAT.format(out=str(out), cls=str(cls)) + \
        "assert SEEN == [], SEEN\n"
    (cls / "mallory" / "mlp.py").write_text(evil)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    r = CliRunner().invoke(main, ["grade", str(cls), "--config", str(tmp_path / "assignment.yaml"), "--no-color",
                                  "--timeout", "5", "--json", str(out)])
    assert r.exit_code == 0, r.output
    scores = {s["submission"]: s["score"] for s in json.loads(out.read_text())["submissions"]}
    assert scores == {"alice": 2, "mallory": 2}, r.output  # mallory's assert: she saw no classmate
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p != out}
    assert after == {p: b for p, b in before.items() if p != out}
