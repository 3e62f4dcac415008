"""MLP 4 -> 6 (sigmoid) -> 4 (sigmoid) -> 3 (softmax), columns layout (X is features x batch),
integer class labels as targets.

Planted mistake: the sigmoid derivative of layer 1 is written as 1 - sigmoid(z).
"""
import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    z = z - np.max(z, axis=0, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=0, keepdims=True)


def forward(params, X):
    z1 = params["W1"] @ X + params["b1"]
    a1 = sigmoid(z1)
    z2 = params["W2"] @ a1 + params["b2"]
    a2 = sigmoid(z2)
    z3 = params["W3"] @ a2 + params["b3"]
    return z1, a1, z2, a2, softmax(z3)


def loss(params, X, labels):
    p = forward(params, X)[-1]
    m = X.shape[1]
    return -np.sum(np.log(p[labels, np.arange(m)])) / m


def gradients(params, X, labels):
    m = X.shape[1]
    z1, a1, z2, a2, p = forward(params, X)

    delta3 = p.copy()
    delta3[labels, np.arange(m)] -= 1.0  # p - y without building the one-hot matrix
    delta3 /= m
    dW3 = delta3 @ a2.T
    db3 = delta3.sum(axis=1, keepdims=True)

    delta2 = (params["W3"].T @ delta3) * a2 * (1 - a2)
    dW2 = delta2 @ a1.T
    db2 = delta2.sum(axis=1, keepdims=True)

    delta1 = (params["W2"].T @ delta2) * (1 - sigmoid(z1))  # BUG: sigmoid'(z) is sigmoid(z) * (1 - sigmoid(z)), not 1 - sigmoid(z)
    dW1 = delta1 @ X.T
    db1 = delta1.sum(axis=1, keepdims=True)

    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}
