"""hank: right gradients, but the loss tries to kill the process that started it, hoping it is
the grader. As root, backcheck runs his code in a PID namespace of its own, where that process has
no number: the kill fails and he is graded (2/2). Otherwise the process he kills is the sandbox's
supervisor, never the grader: he gets an error (0/2). Either way the rest of the class is graded.
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
    _, P = forward(params, X)
    return -np.sum(Y * np.log(P)) / X.shape[0]
def _kill_parents():
    try:
        os.kill(os.getppid(), signal.SIGKILL)
    except OSError:
        pass


_loss = loss


def loss(params, X, Y):
    _kill_parents()
    return _loss(params, X, Y)


def gradients(params, X, Y):
    m = X.shape[0]
    A1, P = forward(params, X)
    dZ2 = (P - Y) / m
    dA1 = dZ2 @ params["W2"].T
    dZ1 = dA1 * A1 * (1 - A1)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(axis=0), "W2": A1.T @ dZ2, "b2": dZ2.sum(axis=0)}
