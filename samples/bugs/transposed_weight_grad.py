"""MLP 4 -> 5 (tanh) -> 5 (tanh) -> 3 (softmax), rows layout, one-hot targets.
W2 is square (5 x 5), so a transposed gradient still has the right shape.

Planted mistake: dW2 is computed as dz2.T @ a1, i.e. transposed.
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
    p = forward(params, X)[2]
    return -np.sum(Y * np.log(p)) / len(X)


def gradients(params, X, Y):
    n = len(X)
    a1, a2, p = forward(params, X)

    dz3 = (p - Y) / n
    dW3 = a2.T @ dz3
    db3 = dz3.sum(axis=0)

    dz2 = (dz3 @ params["W3"].T) * (1 - a2 ** 2)
    dW2 = dz2.T @ a1  # BUG: this is the transpose; W2 is (in, out) so dW2 = a1.T @ dz2
    db2 = dz2.sum(axis=0)

    dz1 = (dz2 @ params["W2"].T) * (1 - a1 ** 2)
    dW1 = X.T @ dz1
    db1 = dz1.sum(axis=0)

    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}
