"""Bias-free sigmoid network, rows layout (X is batch x features, Y is batch x outputs).

NoBiasNet(n_input, n_hidden1, n_hidden2, n_output) has three weight matrices W1 (in, h1),
W2 (h1, h2), W3 (h2, out) and no biases. The loss is HALF THE SUM of squared errors over the
whole batch (no mean), and backward(X, Y) returns the tuple (dW1, dW2, dW3) of that loss.

Planted mistake: the output delta leaves out the sigmoid derivative (out - Y is the delta of
sigmoid with cross-entropy, not with a squared error).
"""
import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class NoBiasNet:
    def __init__(self, n_input, n_hidden1, n_hidden2, n_output, seed=0):
        rng = np.random.default_rng(seed)
        self.W1 = rng.uniform(-1, 1, size=(n_input, n_hidden1))
        self.W2 = rng.uniform(-1, 1, size=(n_hidden1, n_hidden2))
        self.W3 = rng.uniform(-1, 1, size=(n_hidden2, n_output))

    def forward(self, X):
        self.h1 = sigmoid(X @ self.W1)
        self.h2 = sigmoid(self.h1 @ self.W2)
        self.out = sigmoid(self.h2 @ self.W3)
        return self.out

    def loss(self, X, Y):
        return 0.5 * np.sum((self.forward(X) - Y) ** 2)

    def backward(self, X, Y):
        out = self.forward(X)
        delta3 = out - Y  # BUG: no sigmoid derivative; with a squared error it is (out - Y) * out * (1 - out)
        delta2 = (delta3 @ self.W3.T) * self.h2 * (1 - self.h2)
        delta1 = (delta2 @ self.W2.T) * self.h1 * (1 - self.h1)
        return X.T @ delta1, self.h1.T @ delta2, self.h2.T @ delta3

    def fit(self, X, Y, epochs=2000, lr=0.05):
        for epoch in range(epochs):
            dW1, dW2, dW3 = self.backward(X, Y)
            self.W1 -= lr * dW1
            self.W2 -= lr * dW2
            self.W3 -= lr * dW3
            if epoch % 400 == 0:
                print(f"epoch {epoch}: loss {self.loss(X, Y):.4f}")


if __name__ == "__main__":
    rng = np.random.default_rng(7)
    X = rng.normal(size=(60, 4))
    # two targets in (0, 1): whether x0 + x1 > 0 and whether x2 > x3
    Y = np.stack([X[:, 0] + X[:, 1] > 0, X[:, 2] > X[:, 3]], axis=1).astype(float)
    net = NoBiasNet(4, 6, 5, 2)
    net.fit(X, Y)
    print("accuracy", np.mean((net.forward(X) > 0.5) == Y))
