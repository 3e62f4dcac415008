"""MLP 6 -> 8 (leaky relu, alpha 0.01) -> 5 (leaky relu) -> 4 (softmax), rows layout,
integer labels. The loss is the MEAN cross-entropy over the batch.

Planted mistake: the output delta is not divided by the batch size, so every
gradient is the SUM over the batch (N times too large).
"""
import numpy as np

ALPHA = 0.01


def leaky_relu(z):
    return np.where(z > 0, z, ALPHA * z)


def leaky_relu_grad(z):
    return np.where(z > 0, 1.0, ALPHA)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def forward(params, X):
    z1 = X @ params["W1"] + params["b1"]
    h1 = leaky_relu(z1)
    z2 = h1 @ params["W2"] + params["b2"]
    h2 = leaky_relu(z2)
    p = softmax(h2 @ params["W3"] + params["b3"])
    return z1, h1, z2, h2, p


def loss(params, X, y):
    p = forward(params, X)[-1]
    return -np.mean(np.log(p[np.arange(len(y)), y]))


def gradients(params, X, y):
    z1, h1, z2, h2, p = forward(params, X)

    d3 = p.copy()
    d3[np.arange(len(y)), y] -= 1  # BUG: the loss is a mean, so this needs "/ len(y)" too
    g = {"W3": h2.T @ d3, "b3": d3.sum(axis=0)}

    d2 = (d3 @ params["W3"].T) * leaky_relu_grad(z2)
    g["W2"] = h1.T @ d2
    g["b2"] = d2.sum(axis=0)

    d1 = (d2 @ params["W2"].T) * leaky_relu_grad(z1)
    g["W1"] = X.T @ d1
    g["b1"] = d1.sum(axis=0)
    return g
