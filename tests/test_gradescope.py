"""samples/gradescope is an autograder that works as-is: laid out as Gradescope lays out /autograder
(AUTOGRADER_ROOT stands in for it), run_autograder always leaves a results.json in Gradescope's schema."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "gradescope"
CLASS = ROOT / "samples" / "submissions" / "class"
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}  # Gradescope's visibility settings


def _autograde(tmp_path: Path, *files: Path) -> dict:
    """Gradescope's layout: the zip in source/, run_autograder copied to the root, the student's
    files in submission/; then run_autograder, as Gradescope runs it, from the root."""
    root = tmp_path / "autograder"
    shutil.copytree(SAMPLE, root / "source")
    shutil.copy(SAMPLE / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir()
    for f in files:
        shutil.copy(f, root / "submission" / f.name)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([str(root / "run_autograder")], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    _check_schema(results)
    return results


def _check_schema(results: dict) -> None:
    """The fields Gradescope's autograder specification documents, with their types."""
    assert isinstance(results["score"], float)
    assert isinstance(results["output"], str) and results["output"]
    assert results["visibility"] in VISIBILITY and results["stdout_visibility"] in VISIBILITY
    for test in results["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output", "visibility"}
        assert isinstance(test["name"], str) and isinstance(test["output"], str)
        assert 0 <= test["score"] <= test["max_score"]
        assert test["status"] in {"passed", "failed"} and test["visibility"] in VISIBILITY
    if results["tests"]:
        assert results["score"] == sum(t["score"] for t in results["tests"])


@pytest.mark.parametrize("student, score, statuses", [
    ("alice", 2.0, ["passed", "passed"]),
    ("bob", 1.0, ["failed", "passed"]),
    ("erin", 0.0, ["failed", "failed"]),  # a syntax error: every layer fails and says where
])
def test_a_submission_gets_a_test_per_layer(tmp_path, student, score, statuses):
    results = _autograde(tmp_path, CLASS / student / "mlp.py")
    assert results["score"] == score
    assert [t["name"] for t in results["tests"]] == ["layer 1: dense 4->6 sigmoid", "layer 2: dense 6->3 softmax"]
    assert [t["status"] for t in results["tests"]] == statuses
    assert [t["max_score"] for t in results["tests"]] == [1.0, 1.0]
    if student == "bob":  # what the student reads: the mistake named, and its fix
        assert "[activation-derivative/of-output]" in results["tests"][0]["output"]
        assert "fix: a is already sigmoid(z): use a * (1 - a)" in results["tests"][0]["output"]
    if student == "erin":
        assert "SyntaxError: expected ':' (mlp.py:31)" in results["tests"][0]["output"]


def test_a_submission_without_the_file_still_gets_results(tmp_path):
    results = _autograde(tmp_path, CLASS / "dave" / "README.txt")
    assert results["score"] == 0.0 and results["tests"] == []
    assert "no mlp.py here" in results["output"] and "exited with 2" in results["output"]


def test_the_scripts_are_executable_bash():
    for name in ("setup.sh", "run_autograder"):
        path = SAMPLE / name
        assert os.access(path, os.X_OK), f"{name} must be executable (git keeps the mode)"
        assert path.read_text().startswith("#!/usr/bin/env bash\n")
        subprocess.run(["bash", "-n", str(path)], check=True)
    assert 'backcheck grade "$root/submission" --config "$root/source/assignment.yaml"' in \
        (SAMPLE / "run_autograder").read_text()
