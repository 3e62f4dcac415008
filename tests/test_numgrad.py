import numpy as np
from numpy.testing import assert_allclose

from backcheck import numgrad


def test_central_differences_of_known_functions():
    x = np.array([0.3, -1.2, 2.0])
    p = numgrad.probe_entries(lambda v: float(np.sum(np.sin(v))), x, np.arange(3), 1e-6)
    assert_allclose(p.central, np.cos(x), rtol=1e-8)
    p = numgrad.richardson_entries(lambda v: float(np.sum(v**3)), x, np.arange(3), 1e-3)
    assert_allclose(p.central, 3 * x**2, rtol=1e-10)


def test_array_restored_bit_for_bit():
    x = np.array([0.1, 1e-300, 3.0000000000000004], dtype=np.float64)
    before = x.copy()
    numgrad.probe_entries(lambda v: float(np.sum(v**2)), x, np.arange(3), 1e-6)
    assert before.tobytes() == x.tobytes()
    rng = np.random.default_rng(0)
    numgrad.probe_directions(lambda v: float(np.sum(v**2)), x, 2 * x, 4, 1e-6, rng)
    assert before.tobytes() == x.tobytes()


def test_kink_gives_disagreeing_one_sided_derivatives():
    x = np.array([0.0])
    p = numgrad.probe_entries(lambda v: float(np.maximum(v, 0).sum()), x, np.arange(1), 1e-6)
    assert p.plus[0] == 1.0 and p.minus[0] == 0.0


def test_float32_uses_actual_step():
    x = np.array([0.7], dtype=np.float32)
    p = numgrad.probe_entries(lambda v: float(np.sum(v.astype(np.float64) ** 2)), x, np.arange(1), 1e-6)
    assert_allclose(p.central, 2 * 0.7, rtol=1e-5)


def test_direction_probes_agree_for_right_gradient():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4))
    d = numgrad.probe_directions(lambda v: float(np.sum(np.tanh(v))), x, 1 - np.tanh(x) ** 2, 6, 1e-6, rng)
    assert_allclose(d.analytic, d.numeric, rtol=1e-6, atol=1e-9)
