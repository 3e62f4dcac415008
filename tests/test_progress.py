"""Progress of long work: the library's callback hears every phase, and the display on a terminal's
stderr says what is happening without touching stdout or anything off a terminal."""

import io
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from backcheck.cli import main
from backcheck.render import Progress
from backcheck.runner import diagnose_config_path, verify

ROOT = Path(__file__).resolve().parent.parent


def _recorder():
    heard = []

    def progress(phase, done, total, **detail):
        heard.append((phase, done, total, detail))
    return heard, progress


def test_verify_reports_the_import_then_every_parameter_probed():
    heard, progress = _recorder()
    result = verify(ROOT / "samples/bugs/sigmoid_of_output.yaml", progress=progress)
    assert result.exit_code == 1
    phases = [h[0] for h in heard]
    assert phases[:2] == ["import", "check"] and set(phases[2:]) == {"probe"}
    probes = [h for h in heard if h[0] == "probe"]
    total = sum(p.size for layer in result.layers for p in layer.params)
    assert [p[1] for p in probes] == [0, 24, 30, 48, total] and {p[2] for p in probes} == {total}
    detail = probes[0][3]
    assert detail["point"] == "start" and detail["loss_calls"] == 2 * total and detail["call_seconds"] > 0


def test_the_reference_network_gives_no_time_per_call():
    heard, progress = _recorder()
    verify(ROOT / "configs/iris_reference.yaml", progress=progress)
    assert heard[0][0] == "check" and all(h[3].get("call_seconds") is None for h in heard if h[0] == "probe")


def test_diagnose_reports_every_training_step():
    heard, progress = _recorder()
    result = diagnose_config_path(ROOT / "samples/diagnose/healthy.yaml", progress=progress)
    steps = [h[1:3] for h in heard if h[0] == "train"]
    assert steps == [(t, 100) for t in range(100)] and result.extra["train"]["steps"] == 100


def _terminal():
    out = io.StringIO()
    return out, Console(file=out, width=80, force_terminal=True, no_color=True, highlight=False)


def test_a_long_probe_is_announced_with_its_estimate():
    out, console = _terminal()
    with Progress(console) as progress:
        progress("import", 0, None)
        progress("probe", 0, 25_818, point="start", loss_calls=51_636, call_seconds=0.00065)
        progress("probe", 25_088, 25_818, point="start", loss_calls=51_636, call_seconds=0.00065)
    assert "probing 25,818 entries: 51,636 loss calls at 0.65 ms each, about 34 s" in out.getvalue()


def test_a_short_probe_is_not_announced():
    out, console = _terminal()
    with Progress(console) as progress:
        progress("probe", 0, 54, point="start", loss_calls=108, call_seconds=0.0005)
    assert "loss calls" not in out.getvalue()


def test_off_a_terminal_the_cli_prints_no_progress():
    r = CliRunner().invoke(main, ["verify", str(ROOT / "samples/bugs/sigmoid_of_output.yaml"), "--no-color"])
    assert r.exit_code == 1 and r.stderr == "" and r.stdout.startswith("backcheck verify ")
    r = CliRunner().invoke(main, ["diagnose", str(ROOT / "samples/diagnose/healthy.yaml"), "--format", "json"])
    assert r.exit_code == 0 and r.stderr == "" and r.stdout.startswith("{")
