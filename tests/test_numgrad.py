import numpy as np
from numpy.testing import assert_allclose

from backcheck import numgrad


def _entries(f, x, eps, richardson=False):
    probe = numgrad.richardson_entries if richardson else numgrad.probe_entries
    return probe(numgrad.InPlace(f, x).entries, x, np.arange(x.size), eps, f0=f(x))


def test_central_differences_of_known_functions():
    x = np.array([0.3, -1.2, 2.0])
    p = _entries(lambda v: float(np.sum(np.sin(v))), x, 1e-6)
    assert_allclose(p.central, np.cos(x), rtol=1e-8)
    p = _entries(lambda v: float(np.sum(v**3)), x, 1e-3, richardson=True)
    assert_allclose(p.central, 3 * x**2, rtol=1e-10)


def test_array_restored_bit_for_bit():
    x = np.array([0.1, 1e-300, 3.0000000000000004], dtype=np.float64)
    before = x.copy()
    f = lambda v: float(np.sum(v**2))  # noqa: E731
    _entries(f, x, 1e-6)
    assert before.tobytes() == x.tobytes()
    rng = np.random.default_rng(0)
    numgrad.probe_directions(numgrad.InPlace(f, x).arrays, x, 2 * x, 4, 1e-6, rng, f0=f(x))
    assert before.tobytes() == x.tobytes()


def test_kink_gives_disagreeing_one_sided_derivatives():
    x = np.array([0.0])
    p = _entries(lambda v: float(np.maximum(v, 0).sum()), x, 1e-6)
    assert p.plus[0] == 1.0 and p.minus[0] == 0.0


def test_float32_uses_actual_step():
    x = np.array([0.7], dtype=np.float32)
    p = _entries(lambda v: float(np.sum(v.astype(np.float64) ** 2)), x, 1e-6)
    assert_allclose(p.central, 2 * np.float64(np.float32(0.7)), rtol=1e-6)


def test_a_step_below_the_dtype_resolution_still_moves_the_entry():
    x = np.array([1.0], dtype=np.float32)
    p = _entries(lambda v: float(v[0]) * 3.0, x, 1e-12)
    assert_allclose(p.central, 3.0, rtol=1e-6)


def test_direction_probes_agree_for_right_gradient():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4))
    f = lambda v: float(np.sum(np.tanh(v)))  # noqa: E731
    d = numgrad.probe_directions(numgrad.InPlace(f, x).arrays, x, 1 - np.tanh(x) ** 2, 6, 1e-6, rng, f0=f(x))
    assert_allclose(d.analytic, d.numeric, rtol=1e-6, atol=1e-9)


def _noise_at(f, x0, h):
    return numgrad.noise_level([f(x0 + (j - 4) * h) for j in range(9)])


def test_noise_level_of_a_smooth_float64_function_is_rounding():
    est = _noise_at(lambda t: float(np.sum(np.sin(np.linspace(0, 1, 50) * t))), 0.7, 1e-6)
    assert est.inform == 1 and est.level < 1e-14


def test_noise_level_of_float32_arithmetic():
    v = np.linspace(0, 1, 200)
    f = lambda t: float(np.sum(np.sin((v * t).astype(np.float32)), dtype=np.float32))  # noqa: E731
    est = _noise_at(f, 0.7, 1e-4)
    assert est.inform == 1 and 1e-7 * abs(f(0.7)) / 30 < est.level < 1e-5 * abs(f(0.7))


def test_noise_level_of_added_random_noise_is_its_size():
    rng = np.random.default_rng(0)
    levels = [_noise_at(lambda t: np.sin(t) + 1e-6 * rng.standard_normal(), 0.3, 1e-3).level for _ in range(20)]
    assert 0.3e-6 < np.median(levels) < 3e-6


def test_noise_level_says_when_the_spacing_is_too_small_or_too_large():
    assert numgrad.noise_level([1.0] * 9).inform == 2
    assert _noise_at(lambda t: t**2, 3.0, 1e-1).inform == 3
