"""Tiny 4 -> 5 tanh -> 3 softmax MLP (rows, one-hot) whose loss is NaN from the first call.

init_params uses a huge weight scale, so the softmax saturates: some probabilities underflow to
exactly 0.0, and the loss takes log(0) = -inf without clipping; 0 * -inf is NaN.
"""
import numpy as np


def init_params(seed=0):
    rng = np.random.default_rng(seed)
    return {"W1": rng.normal(size=(4, 5)) * 10, "b1": np.zeros(5),
            "W2": rng.normal(size=(5, 3)) * 1000, "b2": np.zeros(3)}   # "bigger init learns faster"


def forward(params, X):
    h = np.tanh(X @ params["W1"] + params["b1"])
    z = h @ params["W2"] + params["b2"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return h, e / e.sum(axis=1, keepdims=True)


def loss(params, X, Y):
    _, p = forward(params, X)
    return -np.sum(Y * np.log(p)) / X.shape[0]   # BUG: log(0) = -inf once a probability underflows to 0.0, and 0 * -inf = nan; take log-probabilities from a log-softmax: zs - log(sum(exp(zs)))


def gradients(params, X, Y):
    h, p = forward(params, X)
    dz2 = (p - Y) / X.shape[0]
    dz1 = (dz2 @ params["W2"].T) * (1 - h ** 2)
    return {"W1": X.T @ dz1, "b1": dz1.sum(axis=0), "W2": h.T @ dz2, "b2": dz2.sum(axis=0)}
