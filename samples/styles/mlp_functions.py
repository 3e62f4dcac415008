"""Iris-style MLP written as plain module functions (rows layout, one-hot targets).

Network: 4 inputs -> 5 tanh -> 4 tanh -> 3 softmax, cross-entropy averaged over the batch.
Shapes (rows layout): X is (N, 4), Y is one-hot (N, 3), W1 is (4, 5), b1 is (5,), ...
There is no init_params here: backcheck creates W1, b1, W2, b2, W3, b3 itself.
"""
import numpy as np


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)      # for numerical stability
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def forward(params, X):
    z1 = X @ params["W1"] + params["b1"]
    a1 = np.tanh(z1)
    z2 = a1 @ params["W2"] + params["b2"]
    a2 = np.tanh(z2)
    z3 = a2 @ params["W3"] + params["b3"]
    p = softmax(z3)
    return a1, a2, p


def loss(params, X, Y):
    _, _, p = forward(params, X)
    N = X.shape[0]
    return -np.sum(Y * np.log(p)) / N


def gradients(params, X, Y):
    a1, a2, p = forward(params, X)
    N = X.shape[0]

    dz3 = (p - Y) / N                          # softmax + cross-entropy together
    dW3 = a2.T @ dz3
    db3 = dz3.sum(axis=0)

    dz2 = (dz3 @ params["W3"].T) * (1 - a2 ** 2)   # tanh'(z) = 1 - tanh(z)^2
    dW2 = a1.T @ dz2
    db2 = dz2.sum(axis=0)

    dz1 = (dz2 @ params["W2"].T) * (1 - a1 ** 2)
    dW1 = X.T @ dz1
    db1 = dz1.sum(axis=0)

    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}


if __name__ == "__main__":
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 4))
    Y = np.eye(3)[rng.integers(0, 3, size=30)]
    params = {"W1": rng.normal(size=(4, 5)) * 0.5, "b1": np.zeros(5),
              "W2": rng.normal(size=(5, 4)) * 0.5, "b2": np.zeros(4),
              "W3": rng.normal(size=(4, 3)) * 0.5, "b3": np.zeros(3)}
    for epoch in range(201):
        g = gradients(params, X, Y)
        for k in params:
            params[k] -= 0.5 * g[k]
        if epoch % 50 == 0:
            print(epoch, loss(params, X, Y))
