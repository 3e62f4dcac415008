"""Hostile user code and hostile submissions (benchmarks/hostile.py's acts, drawn by hypothesis with
a fixed seed and a bounded number of examples; the long run is `python benchmarks/fuzz.py code` and
`... submissions`), through the real command line and sandbox: whatever the code does, backcheck
answers with the exit code the act calls for, never 4, never a traceback, never exit 0 for code with
a planted gradient bug, with --format json exactly one JSON object, a text report free of the code's
control characters, and no process left behind. A class with hostile students is graded whole:
good ones get full marks, wrong or cheating ones never do, and nothing outside the copies changes."""

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import fuzz  # noqa: E402
import hostile  # noqa: E402
from tests_helpers import DrawChooser  # noqa: E402

RUN_SECONDS = 60  # a run that takes longer is a hang


def _settings(examples: int):
    # no shrinking: every example is a real run of a few seconds
    return settings(max_examples=examples, derandomize=True, deadline=None, database=None, print_blob=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz-code")


@pytest.fixture(autouse=True)
def short_timeouts(monkeypatch):
    """The code's time limit, short (sleeping past it is one of the acts), yet long enough for right
    code on a loaded CI machine: a submission's process start and check took over 2 s there."""
    monkeypatch.setattr(fuzz, "CODE_TIMEOUT", 4)
    monkeypatch.setattr(fuzz, "GRADE_TIMEOUT", 8)
    monkeypatch.setattr(fuzz, "GOOD_STUDENTS", 1)
    monkeypatch.setattr(fuzz, "HOSTILE_STUDENTS", 1)


def test_every_group_has_acts_and_every_act_a_place():
    assert set(hostile.GROUPS) == {"values", "exits", "fds", "signals", "processes", "arrays", "output", "source"}
    for act in hostile.ACTS + hostile.GRADER_ACTS:
        assert act.places and set(act.places) <= set(hostile.PLACES), act.name


def _problems(case):
    code, out, err, problems = fuzz.check(case, RUN_SECONDS)
    return problems, (case.what, code, out[-2000:], err[-2000:])


@pytest.mark.parametrize("group", hostile.GROUPS)
@_settings(3)
@given(data=st.data())
def test_hostile_code_gets_its_answer(workdir, group, data):
    acts = [a for a in hostile.ACTS if a.group == group]
    case = fuzz.code_case(DrawChooser(data), workdir, acts=acts)
    problems, seen = _problems(case)
    assert problems == [], seen


@_settings(2)
@given(data=st.data())
def test_a_class_with_a_hostile_submission_is_graded_whole(workdir, data):
    case = fuzz.submissions_case(DrawChooser(data), workdir, acts=hostile.GRADER_ACTS)
    problems, seen = _problems(case)
    assert problems == [], seen


def test_the_judge_sees_a_false_ok_and_a_leftover(workdir):
    """The counts can fail: exit 0 for code with a planted bug, a process that carries the run's token."""
    case = fuzz.Case(["verify", "x.yaml"], "planted", bug=True, clean_text=True)
    assert "false-ok" in fuzz.judge(0, "OK", "", False, case)
    assert "leak" in fuzz.judge(1, "a \x1b[2J b", "", False, case)
    import subprocess

    sleeper = subprocess.Popen(["sleep", "30"], env={"FUZZ_RUN": case.token, "PATH": "/usr/bin:/bin"})
    try:
        assert fuzz.leftovers(case.token) == [sleeper.pid]
    finally:
        sleeper.kill()
        sleeper.wait()
