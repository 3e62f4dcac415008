"""MLP 4 -> 6 (sigmoid) -> 6 (sigmoid) -> 3 (softmax), columns layout, integer labels.
Both hidden layers have 6 units, so using the wrong layer's activation does not
raise a shape error.

Planted mistake: the derivative of layer 2 uses layer 1's activation a1.
"""
import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def softmax(z):
    z = z - z.max(axis=0)
    e = np.exp(z)
    return e / e.sum(axis=0)


def forward(params, X):
    a1 = sigmoid(params["W1"] @ X + params["b1"])
    a2 = sigmoid(params["W2"] @ a1 + params["b2"])
    a3 = softmax(params["W3"] @ a2 + params["b3"])
    return a1, a2, a3


def loss(params, X, y):
    m = X.shape[1]
    a3 = forward(params, X)[2]
    return -np.log(a3[y, np.arange(m)]).mean()


def gradients(params, X, y):
    m = X.shape[1]
    a1, a2, a3 = forward(params, X)
    Y = np.zeros_like(a3)
    Y[y, np.arange(m)] = 1

    d3 = (a3 - Y) / m
    dW3 = d3 @ a2.T
    db3 = d3.sum(axis=1, keepdims=True)

    d2 = (params["W3"].T @ d3) * a1 * (1 - a1)  # BUG: layer 2's derivative is a2 * (1 - a2), not a1 * (1 - a1)
    dW2 = d2 @ a1.T
    db2 = d2.sum(axis=1, keepdims=True)

    d1 = (params["W2"].T @ d2) * a1 * (1 - a1)
    dW1 = d1 @ X.T
    db1 = d1.sum(axis=1, keepdims=True)

    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}
