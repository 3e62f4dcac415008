"""A correct ReLU MLP whose checks start exactly on ReLU kinks (rows layout, integer labels).

Network: 4 inputs -> 6 relu -> 5 relu -> 3 softmax, mean cross-entropy.
init_params gives zero biases and switches off two units of layer 2 (zero weight columns),
and the data (relu_kink.npz) has all-zero rows, so many ReLU inputs are exactly 0.
Convention used here: relu'(0) = 0 (the mask is z > 0).
"""
import numpy as np


def init_params(seed=0):
    rng = np.random.default_rng(seed)
    W1 = rng.normal(size=(4, 6)) * 0.7
    W2 = rng.normal(size=(6, 5)) * 0.7
    W3 = rng.normal(size=(5, 3)) * 0.7
    W2[:, 0] = 0.0       # units 1 and 4 of layer 2 start switched off
    W2[:, 3] = 0.0       # (their ReLU input is exactly 0 for every example)
    return {"W1": W1, "b1": np.zeros(6),
            "W2": W2, "b2": np.zeros(5),
            "W3": W3, "b3": np.zeros(3)}


def forward(params, X):
    z1 = X @ params["W1"] + params["b1"]
    a1 = np.maximum(z1, 0)
    z2 = a1 @ params["W2"] + params["b2"]
    a2 = np.maximum(z2, 0)
    z3 = a2 @ params["W3"] + params["b3"]
    z3 = z3 - z3.max(axis=1, keepdims=True)
    p = np.exp(z3)
    p /= p.sum(axis=1, keepdims=True)
    return z1, a1, z2, a2, p


def loss(params, X, y):
    *_, p = forward(params, X)
    N = len(y)
    return -np.mean(np.log(p[np.arange(N), y]))


def gradients(params, X, y):
    z1, a1, z2, a2, p = forward(params, X)
    N = len(y)
    d3 = p.copy()
    d3[np.arange(N), y] -= 1
    d3 /= N
    d2 = (d3 @ params["W3"].T) * (z2 > 0)        # relu'(0) = 0
    d1 = (d2 @ params["W2"].T) * (z1 > 0)
    return {
        "W3": a2.T @ d3, "b3": d3.sum(axis=0),
        "W2": a1.T @ d2, "b2": d2.sum(axis=0),
        "W1": X.T @ d1, "b1": d1.sum(axis=0),
    }


if __name__ == "__main__":
    import os
    data = np.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "relu_kink.npz"))
    X, y = data["X"], data["y"]
    params = init_params(0)
    for it in range(101):
        g = gradients(params, X, y)
        for k in params:
            params[k] -= 0.3 * g[k]
        if it % 25 == 0:
            print(it, loss(params, X, y))
