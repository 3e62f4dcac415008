"""A correct MLP that does all its arithmetic in float32 (rows layout, one-hot targets).

Network: 4 inputs -> 7 tanh -> 3 softmax, mean cross-entropy.
Everything is cast to float32 ("to save memory"), which is fine for training but makes
finite differences with a tiny eps useless: the loss is only good to ~1e-7 relative.
"""
import numpy as np

F = np.float32


def init_params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "W1": (rng.normal(size=(4, 7)) * 0.5).astype(F), "b1": np.zeros(7, dtype=F),
        "W2": (rng.normal(size=(7, 3)) * 0.5).astype(F), "b2": np.zeros(3, dtype=F),
    }


def forward(params, X):
    X = X.astype(F)
    W1, b1 = params["W1"].astype(F), params["b1"].astype(F)
    W2, b2 = params["W2"].astype(F), params["b2"].astype(F)
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    return X, h, p


def loss(params, X, Y):
    _, _, p = forward(params, X)
    Y = Y.astype(F)
    return -np.sum(Y * np.log(p)) / F(X.shape[0])     # a float32 scalar


def gradients(params, X, Y):
    X, h, p = forward(params, X)
    Y = Y.astype(F)
    N = F(X.shape[0])
    dz2 = (p - Y) / N
    dh = dz2 @ params["W2"].astype(F).T
    dz1 = dh * (F(1) - h * h)
    return {"W1": X.T @ dz1, "b1": dz1.sum(axis=0),
            "W2": h.T @ dz2, "b2": dz2.sum(axis=0)}


if __name__ == "__main__":
    rng = np.random.default_rng(2)
    X = rng.normal(size=(32, 4)).astype(F)
    Y = np.eye(3, dtype=F)[rng.integers(0, 3, size=32)]
    params = init_params(0)
    for it in range(101):
        g = gradients(params, X, Y)
        for k in params:
            params[k] -= F(0.5) * g[k]
        if it % 25 == 0:
            print(it, loss(params, X, Y), params["W1"].dtype)
