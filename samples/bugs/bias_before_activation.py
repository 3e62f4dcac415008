"""MLP 3 -> 6 (tanh) -> 5 (tanh) -> 4 (softmax), rows layout, one-hot targets.

Planted mistake: the bias gradient of layer 2 is summed from the upstream gradient
before it is multiplied by the tanh derivative.
"""
import numpy as np


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def forward(params, X):
    a1 = np.tanh(X @ params["W1"] + params["b1"])
    a2 = np.tanh(a1 @ params["W2"] + params["b2"])
    p = softmax(a2 @ params["W3"] + params["b3"])
    return a1, a2, p


def loss(params, X, Y):
    _, _, p = forward(params, X)
    return -np.mean(np.sum(Y * np.log(p), axis=1))


def gradients(params, X, Y):
    n = X.shape[0]
    a1, a2, p = forward(params, X)

    dz3 = (p - Y) / n
    dW3 = a2.T @ dz3
    db3 = dz3.sum(axis=0)

    da2 = dz3 @ params["W3"].T
    db2 = da2.sum(axis=0)  # BUG: summed before the tanh derivative; should be dz2.sum(axis=0)
    dz2 = da2 * (1 - a2 ** 2)
    dW2 = a1.T @ dz2

    da1 = dz2 @ params["W2"].T
    dz1 = da1 * (1 - a1 ** 2)
    dW1 = X.T @ dz1
    db1 = dz1.sum(axis=0)

    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}
