"""MLP with three hidden tanh layers: 5 -> 7 -> 6 -> 4 -> 3 (softmax).
Rows layout, integer class labels as targets.

Planted mistake: the tanh derivative of hidden layer 2 is forgotten.
"""
import numpy as np


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def one_hot(y, n_classes):
    out = np.zeros((len(y), n_classes))
    out[np.arange(len(y)), y] = 1.0
    return out


def forward(params, X):
    h1 = np.tanh(X @ params["W1"] + params["b1"])
    h2 = np.tanh(h1 @ params["W2"] + params["b2"])
    h3 = np.tanh(h2 @ params["W3"] + params["b3"])
    probs = softmax(h3 @ params["W4"] + params["b4"])
    return h1, h2, h3, probs


def loss(params, X, y):
    probs = forward(params, X)[-1]
    n = X.shape[0]
    return -np.mean(np.log(probs[np.arange(n), y]))


def gradients(params, X, y):
    n = X.shape[0]
    h1, h2, h3, probs = forward(params, X)
    grads = {}

    d4 = (probs - one_hot(y, probs.shape[1])) / n
    grads["W4"] = h3.T @ d4
    grads["b4"] = d4.sum(axis=0)

    d3 = (d4 @ params["W4"].T) * (1 - h3 ** 2)
    grads["W3"] = h2.T @ d3
    grads["b3"] = d3.sum(axis=0)

    d2 = d3 @ params["W3"].T  # BUG: forgot the tanh derivative, should be (d3 @ W3.T) * (1 - h2 ** 2)
    grads["W2"] = h1.T @ d2
    grads["b2"] = d2.sum(axis=0)

    d1 = (d2 @ params["W2"].T) * (1 - h1 ** 2)
    grads["W1"] = X.T @ d1
    grads["b1"] = d1.sum(axis=0)
    return grads
