"""Numeric vs analytic gradient of every parameter: never wave wrong code through, never cry wolf.

Everything is measured, nothing is guessed from dtypes:

- **Noise.** The computational noise of the code's loss is measured where it is checked (a
  difference table along two entries, ``numgrad.noise_level``); the step of the probes, the
  tolerance and each numeric derivative's error bound follow from it. A loss computed in float32,
  float16 or with any other noise is recognised whatever the arrays' dtypes.
- **Disagreement.** An entry disagrees when its error exceeds the relative tolerance plus three
  times its error bound (the numeric one, plus the code's own when its gradient is read off a
  step); it is believed only when a second, more accurate measurement (a wider step with
  Richardson extrapolation) confirms it. A parameter is wrong when the norm of its errors exceeds
  what its error bounds allow, or when an entry is confirmed wrong.
- **Kinks are never a free pass.** A probe whose one-sided quotients disagree met a kink (ReLU at
  0, a tie in a max). It is measured again with smaller steps, which leave a kink at some distance
  behind; a kink that stays (the point sits on it) is left to ``check_point``, which moves every
  parameter a little to a nearby point and judges those entries there with the code's gradient
  at that point. Only what no kink-free point resolves is inconclusive.
- **What cannot be decided is inconclusive,** never ok: a gradient below what the measured noise
  resolves, entries on kinks that moving does not clear.

The rooms: ``thresholds`` (every number the judgement uses), ``precision`` (the measured noise),
``analytic`` (the code's own gradient), ``point`` (one set of parameter values), ``entries`` and
``directions`` (what is probed), ``param`` (one parameter and its verdict), ``wrong_entries``
(the search of a large wrong parameter), ``complex_step`` and ``check`` (every parameter at one
point). ``thresholds.MAX_EXHAUSTIVE`` is read where it is used: set it there to sample every parameter.
"""

from backcheck.gradcheck.analytic import Analytic, analytic_gradient, match_shape, transposed_finding
from backcheck.gradcheck.check import PointCheck, check_point
from backcheck.gradcheck.complex_step import complex_step_support
from backcheck.gradcheck.directions import judge_directions, stratified_entries
from backcheck.gradcheck.entries import judge_entries, merge_entries, settle
from backcheck.gradcheck.param import ParamCheck, Verdict, probe_param, resolve_at, result_of, unmoved, verdict
from backcheck.gradcheck.point import Point
from backcheck.gradcheck.precision import Precision, measure_precision
from backcheck.gradcheck.thresholds import MAX_EXHAUSTIVE, SAMPLE_DIRECTIONS, SAMPLE_ENTRIES
from backcheck.gradcheck.wrong_entries import search

__all__ = ["MAX_EXHAUSTIVE", "SAMPLE_DIRECTIONS", "SAMPLE_ENTRIES", "Analytic", "ParamCheck", "Point", "PointCheck",
           "Precision", "Verdict", "analytic_gradient", "check_point", "complex_step_support", "judge_directions",
           "judge_entries", "match_shape", "measure_precision", "merge_entries", "probe_param", "resolve_at",
           "result_of", "search", "settle", "stratified_entries", "transposed_finding", "unmoved", "verdict"]
