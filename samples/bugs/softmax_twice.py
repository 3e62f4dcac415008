"""MLP 4 -> 7 (tanh) -> 3 (softmax), cross-entropy, columns layout (X is features x batch).

Planted mistake: the softmax derivative p * (1 - p) is multiplied onto p - y, although
p - y is already the gradient of softmax + cross-entropy w.r.t. the logits.
"""
import numpy as np


def softmax(z):
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def forward(params, X):
    A1 = np.tanh(params["W1"] @ X + params["b1"])
    A2 = softmax(params["W2"] @ A1 + params["b2"])
    return A1, A2


def loss(params, X, Y):
    _, A2 = forward(params, X)
    m = X.shape[1]
    return -np.sum(Y * np.log(A2)) / m


def gradients(params, X, Y):
    m = X.shape[1]
    A1, A2 = forward(params, X)

    dZ2 = (A2 - Y) * A2 * (1 - A2) / m  # BUG: A2 - Y already includes the softmax; drop "* A2 * (1 - A2)"
    dW2 = dZ2 @ A1.T
    db2 = np.sum(dZ2, axis=1, keepdims=True)

    dZ1 = (params["W2"].T @ dZ2) * (1 - A1 ** 2)
    dW1 = dZ1 @ X.T
    db1 = np.sum(dZ1, axis=1, keepdims=True)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
