"""backcheck.check: callables and arrays checked in this process, with the CLI's numerics and result."""

import numpy as np
import pytest

import backcheck

rng = np.random.default_rng(1)
W1, b1, W2, b2 = rng.normal(size=(3, 4)), np.zeros(4), rng.normal(size=(4, 2)), np.zeros(2)
X, Y = rng.normal(size=(9, 3)), np.eye(2)[rng.integers(0, 2, 9)]
NET = "3-4-2 sigmoid softmax cross_entropy"


def _forward(W1, b1, W2, b2):
    a = 1 / (1 + np.exp(-(X @ W1 + b1)))
    z = a @ W2 + b2
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return a, e / e.sum(axis=1, keepdims=True)


def _grads(W1, b1, W2, b2, bug=False):
    a, P = _forward(W1, b1, W2, b2)
    d2 = (P - Y) / len(X)
    d1 = d2 @ W2.T * (a * (1 - a) if not bug else 1 - a)
    return (X.T @ d1, d1.sum(0)), (a.T @ d2, d2.sum(0))


def test_a_list_of_layers_and_functions_of_nothing():
    layers = [(W1.copy(), b1.copy()), (W2.copy(), b2.copy())]

    def loss():
        (w1, c1), (w2, c2) = layers
        return -np.sum(Y * np.log(_forward(w1, c1, w2, c2)[1])) / len(X)

    def gradients():
        return list(_grads(*layers[0], *layers[1]))

    r = backcheck.check(loss, gradients, params=layers, X=X, Y=Y, network=NET)
    assert r.ok and r.exit_code == 0, r


def test_a_wrong_gradient_is_named_and_the_arrays_are_left_as_they_were():
    params = {"W1": W1.copy(), "b1": b1.copy(), "W2": W2.copy(), "b2": b2.copy()}
    before = {k: (v, v.copy()) for k, v in params.items()}

    def loss(p, X, Y):
        return -np.sum(Y * np.log(_forward(p["W1"], p["b1"], p["W2"], p["b2"])[1])) / len(X)

    def gradients(p, X, Y):
        (dW1, db1), (dW2, db2) = _grads(p["W1"], p["b1"], p["W2"], p["b2"], bug=True)
        return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}

    r = backcheck.check(loss, gradients, params=params, X=X, Y=Y, network=NET)
    assert not r.ok and r.exit_code == 1
    assert [(f.id, f.layer) for f in r.findings] == [("activation-derivative/formula", 1)]
    assert r.findings[0].line["file"] == "test_api.py"
    assert r.to_json()["exit_code"] == 1 and "WRONG" in str(r)
    for k, (obj, copy) in before.items():
        assert params[k] is obj and obj.tobytes() == copy.tobytes()


def test_a_bad_network_text_is_a_config_error():
    with pytest.raises(backcheck.ConfigError if hasattr(backcheck, "ConfigError") else Exception):
        backcheck.check(lambda: 0.0, lambda: {}, params={"W1": W1}, X=X, Y=Y, network="3-4 sigmoid")
