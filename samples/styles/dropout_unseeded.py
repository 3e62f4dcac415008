"""An MLP with dropout drawn from a fresh, unseeded generator on every call."""
import numpy as np


def init_params(seed=0):
    rng = np.random.default_rng(seed)
    return {"W1": rng.normal(0, 0.5, (4, 8)), "b1": np.zeros(8),
            "W2": rng.normal(0, 0.5, (8, 3)), "b2": np.zeros(3)}


def forward(params, X, keep=0.8):
    mask = np.random.default_rng().random((X.shape[0], 8)) < keep   # a new mask every call
    a1 = np.tanh(X @ params["W1"] + params["b1"]) * mask / keep
    z = a1 @ params["W2"] + params["b2"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return a1, mask, e / e.sum(axis=1, keepdims=True)


def loss(params, X, Y):
    return -np.sum(Y * np.log(forward(params, X)[2])) / len(X)


def gradients(params, X, Y):
    a1, mask, p = forward(params, X)
    d2 = (p - Y) / len(X)
    d1 = d2 @ params["W2"].T * (1 - (a1 * 0.8) ** 2) * mask / 0.8
    return {"W1": X.T @ d1, "b1": d1.sum(0), "W2": a1.T @ d2, "b2": d2.sum(0)}
