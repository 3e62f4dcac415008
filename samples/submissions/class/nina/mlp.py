# -*- coding: latin-1 -*-
"""MLP 4 -> 6 (sigmoid) -> 3 (softmax), cross-entropy, rows layout (X is batch x features).

nina: right gradients, in a file saved as Latin-1 (her editor's choice) with a coding line that
says so, and accents in her comments: backcheck reads it as Python does. ok, 2/2.
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


def gradients(params, X, Y):
    m = X.shape[0]
    A1, P = forward(params, X)

    # couche de sortie : softmax + entropie croisée donnent P - Y
    dZ2 = (P - Y) / m
    dW2 = A1.T @ dZ2
    db2 = dZ2.sum(axis=0)

    # couche cachée : dérivée de la sigmoïde
    dA1 = dZ2 @ params["W2"].T
    dZ1 = dA1 * A1 * (1 - A1)
    dW1 = X.T @ dZ1
    db1 = dZ1.sum(axis=0)

    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
