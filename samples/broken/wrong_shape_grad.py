"""Tiny 4 -> 5 tanh -> 7 tanh -> 3 softmax MLP (rows, one-hot).

dW1 should be (4, 5) like W1, but a line copied from layer 3 in the column convention
gives a (3, 7) array instead.
"""
import numpy as np


def forward(params, X):
    a1 = np.tanh(X @ params["W1"] + params["b1"])
    a2 = np.tanh(a1 @ params["W2"] + params["b2"])
    z3 = a2 @ params["W3"] + params["b3"]
    e = np.exp(z3 - z3.max(axis=1, keepdims=True))
    return a1, a2, e / e.sum(axis=1, keepdims=True)


def loss(params, X, Y):
    *_, p = forward(params, X)
    return -np.sum(Y * np.log(p)) / X.shape[0]


def gradients(params, X, Y):
    a1, a2, p = forward(params, X)
    dz3 = (p - Y) / X.shape[0]
    dW3 = a2.T @ dz3
    dz2 = (dz3 @ params["W3"].T) * (1 - a2 ** 2)
    dW2 = a1.T @ dz2
    dz1 = (dz2 @ params["W2"].T) * (1 - a1 ** 2)
    dW1 = dz3.T @ a2             # BUG: copied layer 3's "dZ @ A_prev.T" (column formula) -> (3, 7); should be X.T @ dz1
    return {"W1": dW1, "b1": dz1.sum(axis=0),
            "W2": dW2, "b2": dz2.sum(axis=0),
            "W3": dW3, "b3": dz3.sum(axis=0)}
