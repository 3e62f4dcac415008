"""The dense-object program with ten times larger initial weights: a degenerate start.

Most sigmoid units sit in their flat tails and most outputs are past the loss's clip (1e-10),
where the loss is flat: at these parameters the gradient says little. backcheck also checks
at a rescaled point and names the three mistakes there.

A small dense network built from layer objects, trained with binary cross-entropy.

Network: 6 inputs -> 5 sigmoid -> 4 sigmoid -> 1 sigmoid.
Rows layout: X is (N, 6), Y is (N, 1) with 0/1 targets.

Each Dense layer does its own backward pass AND its own SGD update:
DenseNeuralNetwork.train_step computes dloss at the output and hands it to
the layers from the top down; every layer returns the gradient for the layer
below it.
"""
import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def dsigmoid(x):
    s = sigmoid(x)
    return s * (1 - s)


def clip(p):
    # keep probabilities away from 0 and 1 so log() never sees 0
    return np.clip(p, 1e-10, 1 - 1e-10)


class Dense:
    def __init__(self, n_inputs, neurons):
        self.neurons = neurons
        scale = 60 / np.sqrt(n_inputs * neurons)  # far too large: sigmoid units in their tails, outputs past the clip
        self.weights = np.random.randn(n_inputs, neurons) * scale
        self.biases = np.random.randn(1, neurons) * scale
        self.activate = sigmoid
        self.dactivate = dsigmoid

    def forward(self, x):
        self.layer_input = x
        self.z = np.dot(x, self.weights) + self.biases
        return self.activate(self.z)

    def backward(self, upstream, lr):
        """upstream = dLoss/d(output of this layer) for every example, shape (N, neurons)."""
        n = self.layer_input.shape[0]
        w = self.weights                         # remember the weights for the gradient we pass down
        dfunction = self.dactivate(upstream)     # BUG (a): sigmoid' evaluated AT the upstream gradient; should be upstream * self.dactivate(self.z)
        d_w = np.dot(self.layer_input.T, dfunction) / n
        d_b = np.sum(upstream, axis=0, keepdims=True) / n   # BUG (b): bias gradient from the upstream gradient, before the activation derivative; should sum dfunction
        self.weights -= lr * d_w                 # BUG (c): in-place update, and `w` is the same array, so the gradient below goes through the UPDATED weights
        self.biases -= lr * d_b
        return np.dot(dfunction, w.T)


class DenseNeuralNetwork:
    def __init__(self, layers, lr=0.5):
        self.layers = layers
        self.lr = lr

    def forward(self, X):
        out = X
        for layer in self.layers:
            out = layer.forward(out)
        return out

    def loss(self, X, Y):
        p = clip(self.forward(X))
        return -np.mean(np.sum(Y * np.log(p) + (1 - Y) * np.log(1 - p), axis=1))

    def dloss(self, p, Y):
        # derivative of the per-example loss w.r.t. the output p (the 1/N is taken in the layers)
        p = clip(p)
        return -(Y / p - (1 - Y) / (1 - p))

    def train_step(self, X, Y, lr=None):
        if lr is None:
            lr = self.lr
        output = self.forward(X)
        last_derivative = self.dloss(output, Y)
        for layer in reversed(self.layers):
            last_derivative = layer.backward(last_derivative, lr)


def make_model():
    np.random.seed(1)
    return DenseNeuralNetwork([Dense(6, 5), Dense(5, 4), Dense(4, 1)])


if __name__ == "__main__":
    rng = np.random.RandomState(0)
    X = rng.randn(200, 6)
    Y = (X[:, :1] + 0.5 * X[:, 1:2] * X[:, 2:3] > 0).astype(float)   # a made-up rule to learn
    model = make_model()
    for epoch in range(1001):
        if epoch % 100 == 0:
            acc = np.mean((model.forward(X) > 0.5) == Y)
            print("epoch %4d  loss %.4f  accuracy %.2f" % (epoch, model.loss(X, Y), acc))
        model.train_step(X, Y)
