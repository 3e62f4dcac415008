"""float32 network trained with SGD + momentum."""
import numpy as np


class Net:
    def __init__(self, n_in=4, n_hidden=4, n_out=3, lr=0.05, momentum=0.9, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {
            "W1": (rng.standard_normal((n_in, n_hidden)) * 0.5).astype(np.float32),
            "b1": np.full(n_hidden, 0.1, dtype=np.float32),
            "W2": (rng.standard_normal((n_hidden, n_out)) * 0.5).astype(np.float32),
            "b2": np.zeros(n_out, dtype=np.float32),
        }
        self.velocity = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.lr = lr
        self.momentum = momentum

    def forward(self, X):
        X = X.astype(np.float32)
        p = self.params
        z1 = X @ p["W1"] + p["b1"]
        a1 = np.tanh(z1)
        z2 = a1 @ p["W2"] + p["b2"]
        e = np.exp(z2 - z2.max(axis=1, keepdims=True))
        return a1, e / e.sum(axis=1, keepdims=True)

    def loss(self, X, Y):
        _, prob = self.forward(X)
        Y = Y.astype(np.float32)
        return float(-np.mean(np.sum(Y * np.log(prob + 1e-12), axis=1)))

    def gradients(self, X, Y):
        p = self.params
        X = X.astype(np.float32)
        Y = Y.astype(np.float32)
        n = X.shape[0]
        a1, prob = self.forward(X)
        dz2 = (prob - Y) / n
        g = {"W2": a1.T @ dz2, "b2": dz2.sum(axis=0)}
        dz1 = (dz2 @ p["W2"].T) * (1 - a1 ** 2)
        g["W1"] = X.T @ dz1
        g["b1"] = dz1.sum(axis=0)
        return g

    def step(self, X, Y):
        g = self.gradients(X, Y)
        for k in self.params:
            self.velocity[k] = self.momentum * self.velocity[k] - self.lr * g[k]
            self.params[k] += self.velocity[k]
