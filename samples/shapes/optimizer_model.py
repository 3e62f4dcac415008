"""A small Keras-like model: every Dense layer owns its optimizer object, train_on_batch(X, y) does the rest.

Network: 5 inputs -> 6 tanh -> 3 softmax, cross-entropy (mean over the batch), rows layout, one-hot y.
Each layer gets its own SGD(lr=...) when the model is built; train_on_batch takes no learning
rate: forward, backward through every layer, then each layer asks its optimizer to update it.
Weights are (in, out), biases (out,).
"""
import numpy as np


class SGD:
    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for p, g in zip(params, grads):
            p -= self.lr * g


class Dense:
    def __init__(self, n_in, n_out, activation, optimizer, rng):
        self.W = rng.normal(0.0, np.sqrt(1.0 / n_in), size=(n_in, n_out))
        self.b = np.zeros(n_out)
        self.activation = activation
        self.optimizer = optimizer

    def forward(self, x):
        self.x = x
        z = x @ self.W + self.b
        if self.activation == "tanh":
            self.a = np.tanh(z)
        else:  # softmax
            e = np.exp(z - z.max(axis=1, keepdims=True))
            self.a = e / e.sum(axis=1, keepdims=True)
        return self.a

    def backward(self, grad):
        # for the softmax layer the model already passes dL/dz (softmax and cross-entropy together)
        if self.activation == "tanh":
            grad = grad * (1 - self.a ** 2)
        self.dW = self.x.T @ grad
        self.db = grad.sum(axis=0)
        return grad @ self.W.T

    def apply_gradients(self):
        self.optimizer.update([self.W, self.b], [self.dW, self.db])


class Model:
    def __init__(self, sizes, lr=0.1, seed=0):
        rng = np.random.default_rng(seed)
        acts = ["tanh"] * (len(sizes) - 2) + ["softmax"]
        self.layers = [Dense(n_in, n_out, act, SGD(lr=lr), rng)
                       for n_in, n_out, act in zip(sizes[:-1], sizes[1:], acts)]

    def predict(self, X):
        for layer in self.layers:
            X = layer.forward(X)
        return X

    def loss(self, X, y):
        p = self.predict(X)
        return -np.sum(y * np.log(p + 1e-12)) / len(X)

    def train_on_batch(self, X, y):
        p = self.predict(X)
        grad = (p - y) / len(X)
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        for layer in self.layers:       # update only after every gradient is known
            layer.apply_gradients()
        return self.loss(X, y)


if __name__ == "__main__":
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 5))
    labels = (X[:, 0] > 0).astype(int) + (X[:, 1] + X[:, 2] > 0).astype(int)   # classes 0, 1, 2
    y = np.eye(3)[labels]
    model = Model([5, 6, 3], lr=0.5)
    for epoch in range(301):
        loss = model.train_on_batch(X, y)
        if epoch % 100 == 0:
            print(f"epoch {epoch}: loss {loss:.4f}, accuracy {np.mean(model.predict(X).argmax(1) == labels):.2f}")
