"""MLP 4 -> 6 (tanh) -> 3 (softmax), rows layout, one-hot targets, trained with a
hand-written SGD step: step(params, X, Y, lr) updates params in place.

Planted mistake: W2 is updated BEFORE the error is sent back through it, so the
hidden layer's delta uses the already-updated W2.
"""
import numpy as np


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def forward(params, X):
    a1 = np.tanh(X @ params["W1"] + params["b1"])
    p = softmax(a1 @ params["W2"] + params["b2"])
    return a1, p


def loss(params, X, Y):
    _, p = forward(params, X)
    return -np.sum(Y * np.log(p)) / X.shape[0]


def step(params, X, Y, lr):
    n = X.shape[0]
    a1, p = forward(params, X)

    # output layer
    d2 = (p - Y) / n
    params["W2"] -= lr * (a1.T @ d2)
    params["b2"] -= lr * d2.sum(axis=0)

    # hidden layer
    d1 = (d2 @ params["W2"].T) * (1 - a1 ** 2)  # BUG: W2 was already updated above; keep the old W2 (or update after this line)
    params["W1"] -= lr * (X.T @ d1)
    params["b1"] -= lr * d1.sum(axis=0)


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    Y = np.eye(3)[rng.integers(0, 3, 40)]
    params = {"W1": rng.normal(0, 0.5, (4, 6)), "b1": np.zeros(6),
              "W2": rng.normal(0, 0.5, (6, 3)), "b2": np.zeros(3)}
    for it in range(300):
        step(params, X, Y, 0.5)
        if it % 50 == 0:
            print(it, loss(params, X, Y))
