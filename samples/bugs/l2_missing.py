"""MLP 4 -> 6 (relu) -> 3 (softmax) with L2 weight decay, columns layout.
Loss = mean cross-entropy + lam/2 * (sum(W1**2) + sum(W2**2)); biases are not decayed.

Planted mistake: the L2 term is in the loss but not in the weight gradients.
"""
import numpy as np

LAM = 0.01  # must match l2: in the YAML


def softmax(Z):
    Z = Z - Z.max(axis=0, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=0, keepdims=True)


def forward(params, X):
    Z1 = params["W1"] @ X + params["b1"]
    A1 = np.maximum(Z1, 0)
    A2 = softmax(params["W2"] @ A1 + params["b2"])
    return Z1, A1, A2


def loss(params, X, Y):
    m = X.shape[1]
    _, _, A2 = forward(params, X)
    data_loss = -np.sum(Y * np.log(A2)) / m
    reg = LAM / 2 * (np.sum(params["W1"] ** 2) + np.sum(params["W2"] ** 2))
    return data_loss + reg


def gradients(params, X, Y):
    m = X.shape[1]
    Z1, A1, A2 = forward(params, X)

    dZ2 = (A2 - Y) / m
    dW2 = dZ2 @ A1.T  # BUG: the L2 term is missing here and in dW1: add LAM * params["W2"] (and LAM * params["W1"] below)
    db2 = dZ2.sum(axis=1, keepdims=True)

    dZ1 = (params["W2"].T @ dZ2) * (Z1 > 0)
    dW1 = dZ1 @ X.T
    db1 = dZ1.sum(axis=1, keepdims=True)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
