"""A Sequential container of layer objects and a separate CrossEntropy object (for tests of objects: and call lists)."""
import numpy as np

class Dense:
    def __init__(self, n_in, n_out, rng):
        self.W = rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out)); self.b = np.zeros(n_out)
    def forward(self, x):
        self.x = x; return x @ self.W + self.b
    def backward(self, g):
        self.grad_W = self.x.T @ g; self.grad_b = g.sum(0); return g @ self.W.T

class Tanh:
    def forward(self, x):
        self.y = np.tanh(x); return self.y
    def backward(self, g):
        return g * (1 - self.y ** 2)

class Softmax:
    def forward(self, x):
        e = np.exp(x - x.max(1, keepdims=True)); self.p = e / e.sum(1, keepdims=True); return self.p
    def backward(self, g):
        p = self.p
        return p * (g - (g * p).sum(1, keepdims=True))

class Sequential:
    def __init__(self):
        self.layers = []
    def add(self, layer):
        self.layers.append(layer)
    def forward(self, X):
        for l in self.layers: X = l.forward(X)
        return X
    def backward(self, g):
        for l in reversed(self.layers): g = l.backward(g)

class CrossEntropy:
    def forward(self, p, y):
        return -np.mean(np.sum(y * np.log(p), axis=1))
    def backward(self, p, y):
        return -y / p / len(p)

def build(n_in, n_hidden, n_out):
    rng = np.random.default_rng(0)
    m = Sequential()
    m.add(Dense(n_in, n_hidden, rng)); m.add(Tanh()); m.add(Dense(n_hidden, n_out, rng)); m.add(Softmax())
    return m
