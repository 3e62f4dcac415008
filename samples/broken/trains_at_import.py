"""Tiny 4 -> 5 tanh -> 3 softmax MLP (rows, one-hot) that starts training as soon as it is imported."""
import numpy as np


def forward(params, X):
    h = np.tanh(X @ params["W1"] + params["b1"])
    z = h @ params["W2"] + params["b2"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return h, e / e.sum(axis=1, keepdims=True)


def loss(params, X, Y):
    _, p = forward(params, X)
    return -np.sum(Y * np.log(p)) / X.shape[0]


def gradients(params, X, Y):
    h, p = forward(params, X)
    dz2 = (p - Y) / X.shape[0]
    dz1 = (dz2 @ params["W2"].T) * (1 - h ** 2)
    return {"W1": X.T @ dz1, "b1": dz1.sum(axis=0), "W2": h.T @ dz2, "b2": dz2.sum(axis=0)}


# training script -- BUG: runs at import time, no `if __name__ == "__main__":` guard around it
rng = np.random.default_rng(0)
X_train = rng.normal(size=(150, 4))
Y_train = np.eye(3)[rng.integers(0, 3, size=150)]
params = {"W1": rng.normal(size=(4, 5)) * 0.5, "b1": np.zeros(5),
          "W2": rng.normal(size=(5, 3)) * 0.5, "b2": np.zeros(3)}
for epoch in range(10 ** 9):
    g = gradients(params, X_train, Y_train)
    for k in params:
        params[k] -= 0.1 * g[k]
    if epoch % 100000 == 0:
        print("epoch", epoch, "loss", loss(params, X_train, Y_train))
