"""Binary classifier 3 -> 5 (tanh) -> 1 (sigmoid), binary cross-entropy (mean over the batch).
Rows layout: X is (batch, 3), Y is (batch, 1) with 0/1 entries.

Planted mistake: the output delta is y - p instead of p - y, so every gradient
has the wrong sign (gradient ascent when it is used with params -= lr * grad).
"""
import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def forward(params, X):
    h = np.tanh(X @ params["W1"] + params["b1"])
    p = sigmoid(h @ params["W2"] + params["b2"])
    return h, p


def loss(params, X, Y):
    _, p = forward(params, X)
    return -np.mean(Y * np.log(p) + (1 - Y) * np.log(1 - p))


def gradients(params, X, Y):
    n = X.shape[0]
    h, p = forward(params, X)

    delta2 = (Y - p) / n  # BUG: the gradient of BCE w.r.t. the sigmoid input is p - y, not y - p
    dW2 = h.T @ delta2
    db2 = delta2.sum(axis=0)

    delta1 = (delta2 @ params["W2"].T) * (1 - h ** 2)
    dW1 = X.T @ delta1
    db1 = delta1.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    Y = (X[:, :1] + X[:, 1:2] > 0).astype(float)
    params = {"W1": rng.normal(0, 0.5, (3, 5)), "b1": np.zeros(5),
              "W2": rng.normal(0, 0.5, (5, 1)), "b2": np.zeros(1)}
    for it in range(16):
        g = gradients(params, X, Y)
        for k in params:
            params[k] -= 0.1 * g[k]
        if it % 3 == 0:
            print(it, loss(params, X, Y))  # goes up!
