"""gina: sign-flipped gradients, and an attempt to patch backcheck from inside so that every check
passes. The check runs in the grading process, which never imports this file: the patch changes
nothing there, and the gradients are found wrong.
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
    dZ2 = (Y - P) / m                     # the sign is wrong
    dA1 = dZ2 @ params["W2"].T
    dZ1 = dA1 * A1 * (1 - A1)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(axis=0), "W2": A1.T @ dZ2, "b2": dZ2.sum(axis=0)}


try:  # "make the autograder happy"
    import backcheck.gradcheck as _gc
    import backcheck.results as _res

    _gc.verdict = lambda *a, **k: _gc.Verdict("ok", 0.0, 0.0, 1.0, 0.0)
    _res.CheckResult.exit_code = property(lambda self: _res.ExitCode.OK)
except Exception:
    pass
