"""Regression net 3 -> 6 (sigmoid) -> 2 (identity), rows layout.
Loss: mean over the batch of the sum of squared errors (no 1/2 in front).

Planted mistake: the output delta forgets the factor 2 from d/dy (y - t)^2.
"""
import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def forward(params, X):
    h = sigmoid(X @ params["W1"] + params["b1"])
    out = h @ params["W2"] + params["b2"]  # identity output for regression
    return h, out


def loss(params, X, Y):
    _, out = forward(params, X)
    return np.mean(np.sum((out - Y) ** 2, axis=1))


def gradients(params, X, Y):
    n = X.shape[0]
    h, out = forward(params, X)

    d_out = (out - Y) / n  # BUG: d/d out of (out - Y)**2 is 2 * (out - Y); should be 2 * (out - Y) / n
    dW2 = h.T @ d_out
    db2 = d_out.sum(axis=0)

    d_h = d_out @ params["W2"].T
    d_z1 = d_h * h * (1 - h)
    dW1 = X.T @ d_z1
    db1 = d_z1.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
