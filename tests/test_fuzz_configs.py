"""Mutated configs (benchmarks/fuzz.py's mutations, drawn by hypothesis with a fixed seed and a bounded
number of examples; the long run is `python benchmarks/fuzz.py configs`): whatever the file holds,
backcheck answers with an exit code of the contract and never 4, prints no traceback, and with
--format json prints exactly one JSON object that a strict parser reads."""

import dataclasses
import re
import sys
from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import fuzz  # noqa: E402
from tests_helpers import DrawChooser  # noqa: E402

from backcheck import render, runner  # noqa: E402
from backcheck.runner import pipeline  # noqa: E402
from backcheck.cli import main  # noqa: E402
from backcheck.errors import ConfigError  # noqa: E402
from backcheck.spec import load_config  # noqa: E402

CHECK_SECONDS = 3  # the code under test gets at most this long per example


def _settings(examples: int):
    return settings(max_examples=examples, derandomize=True, deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return fuzz.scratch_copy(tmp_path_factory.mktemp("fuzz"))


def _capped(path, *args, **kwargs):
    config = runner_load_config(path, *args, **kwargs)
    return dataclasses.replace(config, check=dataclasses.replace(
        config.check, timeout=min(config.check.timeout, CHECK_SECONDS)))


runner_load_config = pipeline.load_config


@_settings(300)
@given(data=st.data())
def test_reading_a_mutated_config_gives_a_config_or_a_config_error(workdir, data):
    choose = DrawChooser(data)
    seed = choose.pick(fuzz.seed_configs(workdir))
    text, what = fuzz.mutate_config(seed, choose)
    path = seed.with_name("_fuzz.yaml")
    path.write_bytes(text)
    try:
        load_config(path)
    except ConfigError as exc:
        assert re.fullmatch(re.escape(str(path)) + r"(:\d+:\d+)?", exc.where or ""), (what, str(exc))
        assert "\n" not in exc.message and fuzz.TRACEBACK not in exc.message, (what, str(exc))
        assert not re.search(r"\bposition \d", exc.message), (what, str(exc))  # lines and columns, not offsets
    finally:
        path.unlink()


@_settings(30)
@given(data=st.data())
def test_verify_answers_a_mutated_config_with_a_contract_exit_code(workdir, data):
    choose = DrawChooser(data)
    seed = choose.pick(fuzz.seed_configs(workdir))
    text, what = fuzz.mutate_config(seed, choose)
    path = seed.with_name("_fuzz.yaml")
    path.write_bytes(text)
    check = choose.pick([runner.verify, runner.diagnose_config_path])
    with mock.patch.object(pipeline, "load_config", _capped):
        result = check(path)
    path.unlink()
    out = render.to_json(result)  # strict: a NaN or inf raises here
    code = int(result.exit_code)
    assert code in fuzz.ALLOWED_EXITS and code != 4, (what, result.error)
    assert fuzz.TRACEBACK not in out, what
    assert fuzz.strict_json(out)["exit_code"] == code


@_settings(30)
@given(data=st.data())
def test_the_command_line_answers_a_mutated_config(workdir, data):
    case = fuzz.config_case(DrawChooser(data), workdir)
    for file, content in case.files.items():
        Path(file).write_bytes(content)
    try:
        with mock.patch.object(pipeline, "load_config", _capped):
            r = CliRunner().invoke(main, case.args)
    finally:
        for file in case.files:
            Path(file).unlink()
    assert r.exception is None or isinstance(r.exception, SystemExit), (case.what, repr(r.exception))
    problems = fuzz.judge(r.exit_code, r.stdout, r.stderr, case.json)
    assert not problems, (case.what, problems, r.stdout[-3000:], r.stderr[-3000:])
