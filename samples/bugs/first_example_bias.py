"""MLP with three hidden layers, each with its own activation:
4 -> 8 (relu) -> 6 (tanh) -> 5 (sigmoid) -> 3 (softmax). Rows layout, one-hot targets.

Planted mistake (fits no known pattern): the bias gradient of layer 2 uses only
the first example of the batch instead of summing over all of them.
"""
import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def forward(params, X):
    cache = {}
    cache["z1"] = X @ params["W1"] + params["b1"]
    cache["a1"] = np.maximum(0, cache["z1"])
    cache["a2"] = np.tanh(cache["a1"] @ params["W2"] + params["b2"])
    cache["a3"] = sigmoid(cache["a2"] @ params["W3"] + params["b3"])
    cache["p"] = softmax(cache["a3"] @ params["W4"] + params["b4"])
    return cache


def loss(params, X, Y):
    p = forward(params, X)["p"]
    return -np.sum(Y * np.log(p)) / X.shape[0]


def gradients(params, X, Y):
    N = X.shape[0]
    c = forward(params, X)
    g = {}

    dz4 = (c["p"] - Y) / N
    g["W4"] = c["a3"].T @ dz4
    g["b4"] = dz4.sum(axis=0)

    dz3 = (dz4 @ params["W4"].T) * c["a3"] * (1 - c["a3"])
    g["W3"] = c["a2"].T @ dz3
    g["b3"] = dz3.sum(axis=0)

    dz2 = (dz3 @ params["W3"].T) * (1 - c["a2"] ** 2)
    g["W2"] = c["a1"].T @ dz2
    g["b2"] = dz2[0]  # BUG: only the first example; the bias gradient is dz2.sum(axis=0)

    dz1 = (dz2 @ params["W2"].T) * (c["z1"] > 0)
    g["W1"] = X.T @ dz1
    g["b1"] = dz1.sum(axis=0)
    return g
