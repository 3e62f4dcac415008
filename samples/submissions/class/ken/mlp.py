"""ken: the gradients are right, but the loss keeps a cache that grows by 512 MB on every call.
The memory limit (grade --memory, 4096 MB by default) stops it with a MemoryError at its line; the
rest of the class is graded.
"""
import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)  # subtract the max so exp does not overflow
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def forward(params, X):
    Z1 = X @ params["W1"] + params["b1"]
    A1 = sigmoid(Z1)
    Z2 = A1 @ params["W2"] + params["b2"]
    P = softmax(Z2)
    return A1, P


def loss(params, X, Y):
    _, P = forward(params, X)
    return -np.sum(Y * np.log(P)) / X.shape[0]
_HOARD = []


_loss = loss


def loss(params, X, Y):
    _HOARD.append(np.empty((8192, 8192)))   # 512 MB more on every call
    return _loss(params, X, Y)


def gradients(params, X, Y):
    m = X.shape[0]
    A1, P = forward(params, X)
    dZ2 = (P - Y) / m
    dA1 = dZ2 @ params["W2"].T
    dZ1 = dA1 * A1 * (1 - A1)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(axis=0), "W2": A1.T @ dZ2, "b2": dZ2.sum(axis=0)}
