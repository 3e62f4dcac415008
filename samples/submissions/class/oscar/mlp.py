"""MLP 4 -> 6 (sigmoid) -> 3 (softmax), cross-entropy, rows layout (X is batch x features).

oscar: right gradients, but his loss sends SIGKILL to its own process ("stop when done").
Whatever user backcheck runs as, the process running the code dies: an exception, 0/2 (as root it
runs in a PID namespace of its own, but never as its first process, which the kernel would
keep from the signal).
"""
import os
import signal

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
    os.kill(os.getpid(), signal.SIGKILL)
    _, P = forward(params, X)
    return -np.sum(Y * np.log(P)) / X.shape[0]


def gradients(params, X, Y):
    m = X.shape[0]
    A1, P = forward(params, X)

    # output layer: softmax + cross-entropy together give P - Y
    dZ2 = (P - Y) / m
    dW2 = A1.T @ dZ2
    db2 = dZ2.sum(axis=0)

    # hidden layer
    dA1 = dZ2 @ params["W2"].T
    dZ1 = dA1 * A1 * (1 - A1)
    dW1 = X.T @ dZ1
    db1 = dZ1.sum(axis=0)

    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
