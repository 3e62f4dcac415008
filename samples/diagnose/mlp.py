"""A correct one-hidden-layer MLP (rows layout, softmax + cross-entropy) whose hidden activation and
initialisation are chosen by init_params' arguments: the programs behind backcheck diagnose's examples.
"""
import numpy as np

ACTIVATIONS = {
    "relu": (lambda z: np.maximum(z, 0.0), lambda z, a: (z > 0).astype(float)),
    "sigmoid": (lambda z: 1.0 / (1.0 + np.exp(-z)), lambda z, a: a * (1.0 - a)),
}
HIDDEN = "relu"


def init_params(sizes, activation="relu", weight_scale=1.0, bias=0.0, seed=0):
    global HIDDEN
    HIDDEN = activation
    rng = np.random.default_rng(seed)
    n_in, n_hidden, n_out = sizes
    return {"W1": rng.standard_normal((n_in, n_hidden)) * weight_scale / np.sqrt(n_in),
            "b1": np.full(n_hidden, float(bias)),
            "W2": rng.standard_normal((n_hidden, n_out)) / np.sqrt(n_hidden),
            "b2": np.zeros(n_out)}


def forward(params, X):
    f, _ = ACTIVATIONS[HIDDEN]
    Z1 = X @ params["W1"] + params["b1"]
    A1 = f(Z1)
    Z2 = A1 @ params["W2"] + params["b2"]
    E = np.exp(Z2 - Z2.max(axis=1, keepdims=True))
    return Z1, A1, E / E.sum(axis=1, keepdims=True)


def loss(params, X, Y):
    _, _, P = forward(params, X)
    return -np.sum(Y * np.log(np.clip(P, 1e-300, 1.0))) / len(X)


def gradients(params, X, Y):
    _, df = ACTIVATIONS[HIDDEN]
    Z1, A1, P = forward(params, X)
    dZ2 = (P - Y) / len(X)
    dZ1 = (dZ2 @ params["W2"].T) * df(Z1, A1)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(axis=0), "W2": A1.T @ dZ2, "b2": dZ2.sum(axis=0)}
