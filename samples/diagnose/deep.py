"""A correct MLP of any depth (rows layout, softmax + cross-entropy) whose hidden activation,
initialisation and softmax are chosen by init_params' keyword arguments: the deeper programs
behind backcheck diagnose's examples (vanishing and exploding gradients, a bad initial loss, an
overflowing softmax).
"""
import numpy as np

ACTIVATIONS = {
    "relu": (lambda z: np.maximum(z, 0.0), lambda z, a: (z > 0).astype(float)),
    "sigmoid": (lambda z: 1.0 / (1.0 + np.exp(-z)), lambda z, a: a * (1.0 - a)),
    "tanh": (np.tanh, lambda z, a: 1.0 - a**2),
}
SETTINGS = {"activation": "relu", "stable": True}


def init_params(sizes, activation="relu", weight_scale=1.0, output_scale=1.0, bias=0.0, stable=True, seed=0):
    """sizes = [n_in, hidden..., n_out]; W_k ~ N(0, weight_scale**2 / fan_in), the output layer's
    times output_scale instead; the hidden layers' biases start at ``bias`` (the output layer's at 0);
    stable=False leaves the max out of the softmax (exp may overflow)."""
    SETTINGS.update(activation=activation, stable=stable)
    rng = np.random.default_rng(seed)
    params = {}
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        scale = output_scale if k == len(sizes) - 1 else weight_scale
        params[f"W{k}"] = rng.standard_normal((n_in, n_out)) * scale / np.sqrt(n_in)
        params[f"b{k}"] = np.full(n_out, 0.0 if k == len(sizes) - 1 else float(bias))
    return params


def _depth(params):
    return len(params) // 2


def forward(params, X):
    """Pre-activations Zs[k-1] and activations As[k] of layer k (As[0] is X; As[-1] the softmax)."""
    f, _ = ACTIVATIONS[SETTINGS["activation"]]
    As, Zs = [X], []
    for k in range(1, _depth(params) + 1):
        Z = As[-1] @ params[f"W{k}"] + params[f"b{k}"]
        Zs.append(Z)
        As.append(f(Z) if k < _depth(params) else Z)
    As[-1] = np.exp(_log_softmax(Zs[-1]))
    return Zs, As


def _log_softmax(Z):
    if SETTINGS["stable"]:
        Z = Z - Z.max(axis=1, keepdims=True)
        return Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    E = np.exp(Z)  # overflows to inf once a logit passes ~709, and inf / inf is NaN
    return np.log(E / E.sum(axis=1, keepdims=True))


def loss(params, X, Y):
    Zs, _ = forward(params, X)
    return -np.sum(Y * _log_softmax(Zs[-1])) / len(X)


def gradients(params, X, Y):
    _, df = ACTIVATIONS[SETTINGS["activation"]]
    Zs, As = forward(params, X)
    L = _depth(params)
    delta = (As[-1] - Y) / len(X)
    grads = {}
    for k in range(L, 0, -1):
        grads[f"W{k}"] = As[k - 1].T @ delta
        grads[f"b{k}"] = delta.sum(axis=0)
        if k > 1:
            delta = (delta @ params[f"W{k}"].T) * df(Zs[k - 2], As[k - 1])
    return grads
