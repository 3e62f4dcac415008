"""A correct MLP for 0/1 targets (rows layout) in the spirit of seed 001: sigmoid layers all the way
up, and the binary cross-entropy of the question, averaged over the examples, with its clip
(p squeezed into [1e-10, 1 - 1e-10] before the logs). The gradient is the exact derivative of that
loss, clip included: 0 for an output past the clip. init_params' keyword arguments set the scale
of the weights.
"""
import numpy as np

CLIP = 1e-10


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def init_params(sizes, weight_scale=1.0, output_scale=1.0, seed=0):
    """sizes = [n_in, hidden..., n_out]; W_k ~ N(0, weight_scale**2 / fan_in), the output layer's
    times output_scale instead; biases at 0."""
    rng = np.random.default_rng(seed)
    params = {}
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        scale = output_scale if k == len(sizes) - 1 else weight_scale
        params[f"W{k}"] = rng.standard_normal((n_in, n_out)) * scale / np.sqrt(n_in)
        params[f"b{k}"] = np.zeros(n_out)
    return params


def forward(params, X):
    """As[k] is the output of layer k (As[0] is X)."""
    As = [X]
    for k in range(1, len(params) // 2 + 1):
        As.append(sigmoid(As[-1] @ params[f"W{k}"] + params[f"b{k}"]))
    return As


def loss(params, X, Y):
    p = np.clip(forward(params, X)[-1], CLIP, 1 - CLIP)
    return -np.sum(Y * np.log(p) + (1 - Y) * np.log(1 - p)) / len(X)


def gradients(params, X, Y):
    As = forward(params, X)
    p = As[-1]
    inside = (p > CLIP) & (p < 1 - CLIP)  # np.clip passes no gradient where it clips
    c = np.clip(p, CLIP, 1 - CLIP)
    delta = -(Y / c - (1 - Y) / (1 - c)) * inside * p * (1 - p) / len(X)
    grads = {}
    for k in range(len(params) // 2, 0, -1):
        grads[f"W{k}"] = As[k - 1].T @ delta
        grads[f"b{k}"] = delta.sum(axis=0)
        if k > 1:
            delta = (delta @ params[f"W{k}"].T) * As[k - 1] * (1 - As[k - 1])
    return grads
