"""Iris flowers classifier from scratch with NumPy.

Network: 4 inputs -> 5 tanh -> 4 tanh -> 3 softmax, cross-entropy loss
(mean over the examples).

I keep everything "one example per column" like in the lecture notes:
X is (4, N), the one-hot targets Y are (3, N), z = W @ X + b.
Every bias is a whole matrix with one column per example, so b has shape
(units, N) -- that is why N_EXAMPLES is fixed below.

FIXED version: the output delta is just (p - y) / N (softmax and cross-entropy
together); the biases are still stored per example, which is legal but odd.
"""
import os

import numpy as np

N_EXAMPLES = 60          # flowers per training batch (the biases are (units, 60))
SPECIES = ["setosa", "versicolor", "virginica"]


def softmax(z):
    # normalise every column (= every example) separately
    e = np.exp(z - np.max(z, axis=0, keepdims=True))
    return e / np.sum(e, axis=0, keepdims=True)


def init_params(seed=42):
    rng = np.random.RandomState(seed)
    return {
        "w1": rng.randn(5, 4) * 0.1,            # input -> hidden 1 (small: the raw features go up to ~8)
        "b0": np.ones((5, N_EXAMPLES)),         # bias of hidden 1 (one column per flower)
        "w2": rng.randn(4, 5) / np.sqrt(5),     # hidden 1 -> hidden 2
        "b1": np.ones((4, N_EXAMPLES)),
        "w3": rng.randn(3, 4) / np.sqrt(4),     # hidden 2 -> output
        "b2": np.ones((3, N_EXAMPLES)),
    }


def forward(params, X):
    x1 = np.tanh(params["w1"] @ X + params["b0"])
    x2 = np.tanh(params["w2"] @ x1 + params["b1"])
    x3 = softmax(params["w3"] @ x2 + params["b2"])
    return x1, x2, x3


def loss(params, X, Y):
    _, _, x3 = forward(params, X)
    n = X.shape[1]
    return -np.sum(Y * np.log(x3)) / n


def gradients(params, X, Y):
    x1, x2, x3 = forward(params, X)
    n = X.shape[1]

    # output layer: softmax and cross-entropy simplify, no extra softmax derivative
    delta3 = (x3 - Y) / n  # softmax + cross-entropy together: dL/dz3 = (p - y) / N
    # hidden layers: tanh'(z) = 1 - tanh(z)^2
    delta2 = (params["w3"].T @ delta3) * (1 - x2 ** 2)
    delta1 = (params["w2"].T @ delta2) * (1 - x1 ** 2)

    return {
        "w1": delta1 @ X.T, "b0": delta1,
        "w2": delta2 @ x1.T, "b1": delta2,
        "w3": delta3 @ x2.T, "b2": delta3,
    }


def load_iris(path):
    """Read the csv by hand: 4 numeric columns + the species name."""
    X, labels = [], []
    with open(path) as f:
        next(f)  # header
        for line in f:
            parts = line.strip().split(",")
            if len(parts) < 5:
                continue
            X.append([float(v) for v in parts[:4]])
            labels.append(SPECIES.index(parts[4]))
    return np.array(X).T, np.array(labels)      # X is (4, 150)


def one_hot(labels):
    Y = np.zeros((3, len(labels)))
    Y[labels, np.arange(len(labels))] = 1
    return Y


if __name__ == "__main__":
    X_all, labels_all = load_iris(os.path.join(os.path.dirname(__file__), "data", "iris.csv"))
    # 20 flowers of each species -> 60 columns
    pick = np.concatenate([np.where(labels_all == k)[0][:20] for k in range(3)])
    X, Y = X_all[:, pick], one_hot(labels_all[pick])

    params = init_params()
    alpha = 0.1
    for epoch in range(2001):
        grads = gradients(params, X, Y)
        for name in params:
            params[name] = params[name] - alpha * grads[name]
        if epoch % 200 == 0:
            acc = np.mean(np.argmax(forward(params, X)[2], axis=0) == labels_all[pick])
            print("epoch %4d  loss %.4f  accuracy %.2f" % (epoch, loss(params, X, Y), acc))
