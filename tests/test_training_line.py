"""The training line of backcheck diagnose: the loss curve as a sparkline (render.sparkline, on
plain lists) and the one line render.training draws around it."""

import io
from types import SimpleNamespace

import numpy as np
import pytest
from rich.console import Console

from backcheck.render import short, sparkline, training

LEVELS = "▁▂▃▄▅▆▇█"


def _levels(spark):
    return [LEVELS.index(c) for c in spark]


def _line(losses, trend="falling", width=80, steps=None):
    out = io.StringIO()
    train = {"lr": 0.5, "steps": steps or len(losses), "losses": losses, "trend": trend}
    training(SimpleNamespace(extra={"train": train}), Console(file=out, width=width, no_color=True, highlight=False))
    return out.getvalue()


def test_a_short_run_gets_a_character_per_step():
    spark, log = sparkline([1.1 * 0.85**t for t in range(10)])
    assert len(spark) == 10 and not log
    levels = _levels(spark)
    assert levels[0] == 7 and levels[-1] == 0 and levels == sorted(levels, reverse=True)


def test_a_long_run_keeps_its_spike():
    losses = [1.1 * 0.99**t for t in range(200)]
    losses[120] = 5.0
    spark, _ = sparkline(losses, 40)
    assert len(spark) == 40
    assert spark.count("█") == 1 and spark.index("█") in (24, 25)  # the bucket of steps 120-129
    assert spark.index("█") > 0  # not the first loss, which is only 1.1


@pytest.mark.parametrize("width", [16, 20, 39, 40])
def test_every_spike_of_a_long_run_shows_at_any_width(width):
    rng = np.random.default_rng(0)
    losses = list(1.0 + 0.01 * rng.random(500))
    for t in (3, 250, 498):
        losses[t] = 2.0
    spark, _ = sparkline(losses, width)
    assert len(spark) <= width and spark.count("█") == 3


def test_a_wide_range_is_drawn_on_a_log_scale():
    """A loss that swings between 4 and 20 after a spike to 431: linear, the swings would all be ▁."""
    losses = [50 * 0.97**t for t in range(57)] + [431.0] + [4.0, 20.0] * 71
    spark, log = sparkline(losses, 40)
    assert log
    after = _levels(spark[12:])  # past the spike's bucket
    assert min(after) == 0 and max(after) >= 2
    assert not sparkline([1.1, 0.5, 0.3])[1]  # a range under 10x stays linear
    assert not sparkline([1.0, -0.5, 20.0])[1]  # so does one below 0
    assert sparkline([5e4, 7.9e4, 2.4, 31.0, 0.0, -0.0]) == ("██▂▃▁▁", True)  # zeros alone at the bottom


def test_a_flat_curve_is_a_flat_line():
    assert sparkline([0.7] * 5) == ("▄▄▄▄▄", False)
    assert sparkline([]) == ("", False)


def test_numbers_are_short_and_never_minus_zero():
    assert [short(v) for v in (-0.0, 0.0, 1.1024, 12.34, 431.2, 1.5e-05, 12345.0, -2.5)] == \
        ["0", "0", "1.1", "12.3", "431", "1.5e-5", "1.23e4", "-2.5"]
    line = _line([0.3, 0.01, -0.0, -0.0])
    assert "-0 " not in line and "-0\n" not in line and "0.3 " in line


def test_the_line_names_the_scale_and_the_extremes_beyond_both_ends():
    line = _line([50 * 0.97**t for t in range(57)] + [431.0] + [4.0, 20.0] * 70 + [4.2], "oscillating", 100)
    assert "(log scale, min 4, max 431)" in line and line.count("\n") == 1
    line = _line([1.1 * 0.85**t for t in range(10)])
    assert line == "training: lr 0.5, 10 steps  1.1 █▇▅▄▄▃▂▂▁▁ 0.255  FALLING\n"  # the min is the last loss
    assert "3 of 100 steps" in _line([1.0, 3.0, 40.0], "diverged", steps=100)


@pytest.mark.parametrize("n", [5, 40, 41, 200, 100000])
def test_the_line_fits_80_columns(n):
    rng = np.random.default_rng(1)
    losses = list(np.exp(rng.normal(0, 2, n)) * 1.2345)  # a wide, jumpy range: every extra wants a place
    line = _line(losses, "oscillating", steps=10**8)
    assert line.count("\n") == 1 and len(line.rstrip("\n")) <= 80, line
    assert "log scale" in line
