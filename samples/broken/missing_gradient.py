"""Tiny 4 -> 5 tanh -> 3 softmax MLP (rows, one-hot) that forgets to return one gradient."""
import numpy as np


def forward(params, X):
    h = np.tanh(X @ params["W1"] + params["b1"])
    z = h @ params["W2"] + params["b2"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return h, e / e.sum(axis=1, keepdims=True)


def loss(params, X, Y):
    _, p = forward(params, X)
    return -np.sum(Y * np.log(p)) / X.shape[0]


def gradients(params, X, Y):
    h, p = forward(params, X)
    dz2 = (p - Y) / X.shape[0]
    dW2 = h.T @ dz2
    db2 = dz2.sum(axis=0)
    dz1 = (dz2 @ params["W2"].T) * (1 - h ** 2)
    dW1 = X.T @ dz1
    db1 = dz1.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2}   # BUG: db2 computed but never returned; add "b2": db2
