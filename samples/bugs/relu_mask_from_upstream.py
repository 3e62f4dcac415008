"""MLP 4 -> 6 (relu) -> 5 (relu) -> 3 (softmax), rows layout, one-hot targets.

Planted mistake: the ReLU mask of layer 2 is taken from the upstream gradient
(`dout > 0`) instead of from the layer's pre-activation.
"""
import numpy as np


def relu(z):
    return np.maximum(0, z)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def forward(params, X):
    z1 = X @ params["W1"] + params["b1"]
    a1 = relu(z1)
    z2 = a1 @ params["W2"] + params["b2"]
    a2 = relu(z2)
    z3 = a2 @ params["W3"] + params["b3"]
    return z1, a1, z2, a2, softmax(z3)


def loss(params, X, Y):
    p = forward(params, X)[-1]
    return -np.sum(Y * np.log(p)) / X.shape[0]


def relu_backward(dout, z):
    return dout * (z > 0)


def gradients(params, X, Y):
    N = X.shape[0]
    z1, a1, z2, a2, p = forward(params, X)

    dz3 = (p - Y) / N
    dW3 = a2.T @ dz3
    db3 = np.sum(dz3, axis=0)

    dout = dz3 @ params["W3"].T
    dz2 = dout * (dout > 0)  # BUG: the mask must come from the pre-activation: dout * (z2 > 0)
    dW2 = a1.T @ dz2
    db2 = np.sum(dz2, axis=0)

    dz1 = relu_backward(dz2 @ params["W2"].T, z1)
    dW1 = X.T @ dz1
    db1 = np.sum(dz1, axis=0)

    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}
