"""Object-style network, column layout (one example per COLUMN).

X is (features, batch) = (3, N), Y is (1, N) with 0/1 labels.
Network: 3 inputs -> 6 relu -> 1 sigmoid, binary cross-entropy averaged over the batch.
Each Dense layer keeps W (out, in), b (out, 1) and, after backward(), dW and db.
"""
import numpy as np


def relu(z):
    return np.maximum(z, 0.0)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class Dense:
    def __init__(self, n_in, n_out, activation, rng):
        self.W = rng.normal(size=(n_out, n_in)) * np.sqrt(2.0 / n_in)
        self.b = rng.normal(size=(n_out, 1)) * 0.1
        self.activation = activation
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)

    def forward(self, A_prev):
        self.A_prev = A_prev
        self.Z = self.W @ A_prev + self.b
        if self.activation == "relu":
            self.A = relu(self.Z)
        else:
            self.A = sigmoid(self.Z)
        return self.A

    def backward(self, dZ):
        """dZ is dLoss/dZ of this layer; returns dLoss/dA of the previous layer."""
        self.dW = dZ @ self.A_prev.T
        self.db = dZ.sum(axis=1, keepdims=True)
        return self.W.T @ dZ


class Network:
    def __init__(self):
        rng = np.random.default_rng(42)
        self.layers = [Dense(3, 6, "relu", rng), Dense(6, 1, "sigmoid", rng)]

    def forward(self, X):
        A = X
        for layer in self.layers:
            A = layer.forward(A)
        return A

    def loss(self, X, Y):
        p = self.forward(X)
        N = X.shape[1]
        return float(-np.sum(Y * np.log(p) + (1 - Y) * np.log(1 - p)) / N)

    def backward(self, X, Y):
        p = self.forward(X)
        N = X.shape[1]
        dZ = (p - Y) / N                                # sigmoid + BCE together
        dA = self.layers[1].backward(dZ)
        dZ = dA * (self.layers[0].Z > 0)                 # relu'(z)
        self.layers[0].backward(dZ)


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 50))
    Y = (X[0:1] + X[1:2] > 0).astype(float)
    net = Network()
    for it in range(201):
        net.backward(X, Y)
        for layer in net.layers:
            layer.W -= 0.5 * layer.dW
            layer.b -= 0.5 * layer.db
        if it % 50 == 0:
            print(it, net.loss(X, Y))
