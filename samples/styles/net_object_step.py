"""Object-style regression net that trains itself with train_step (rows layout).

X is (N, 2), Y is (N, 2) real targets.
Network: 2 inputs -> 8 tanh -> 2 identity.
Loss: mean over the batch of the sum of squared errors (no 1/2 in front).
All weights live in one dict attribute: self.params['W1'], self.params['b1'], ...
"""
import numpy as np


class Regressor:
    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {
            "W1": rng.normal(size=(2, 8)) * 0.5, "b1": rng.normal(size=8) * 0.1,
            "W2": rng.normal(size=(8, 2)) * 0.5, "b2": np.zeros(2),
        }

    def predict(self, X):
        P = self.params
        self.h = np.tanh(X @ P["W1"] + P["b1"])
        return self.h @ P["W2"] + P["b2"]

    def loss(self, X, Y):
        out = self.predict(X)
        return np.sum((out - Y) ** 2) / X.shape[0]

    def train_step(self, X, Y, lr):
        P = self.params
        out = self.predict(X)
        N = X.shape[0]
        d_out = 2 * (out - Y) / N
        grads = {}
        grads["W2"] = self.h.T @ d_out
        grads["b2"] = d_out.sum(axis=0)
        d_h = (d_out @ P["W2"].T) * (1 - self.h ** 2)
        grads["W1"] = X.T @ d_h
        grads["b1"] = d_h.sum(axis=0)
        # all gradients are ready -> now update (so W2 above was the old one)
        for k in P:
            P[k] -= lr * grads[k]
        return self.loss(X, Y)


def make_model():
    return Regressor(seed=0)


if __name__ == "__main__":
    rng = np.random.default_rng(5)
    X = rng.normal(size=(64, 2))
    Y = np.stack([np.sin(X[:, 0]), X[:, 0] * X[:, 1]], axis=1)
    model = make_model()
    for it in range(501):
        l = model.train_step(X, Y, lr=0.05)
        if it % 100 == 0:
            print(it, l)
