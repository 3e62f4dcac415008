"""Tiny 4 -> 5 tanh -> 3 softmax MLP (rows, one-hot) that does not even parse."""
import numpy as np


def forward(params, X):
    h = np.tanh(X @ params["W1"] + params["b1"])
    z = h @ params["W2"] + params["b2"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return h, e / e.sum(axis=1, keepdims=True)


def loss(params, X, Y)   # BUG: missing ':' at the end of the def line -> SyntaxError
    _, p = forward(params, X)
    return -np.sum(Y * np.log(p)) / X.shape[0]


def gradients(params, X, Y):
    h, p = forward(params, X)
    dz2 = (p - Y) / X.shape[0]
    dz1 = (dz2 @ params["W2"].T) * (1 - h ** 2)
    return {"W1": X.T @ dz1, "b1": dz1.sum(axis=0), "W2": h.T @ dz2, "b2": dz2.sum(axis=0)}
