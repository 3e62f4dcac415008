"""Textbook-style sigmoid network: weights and biases are Python lists, one array per layer.

Network(sizes) builds len(sizes) - 1 sigmoid layers; weights[l] is (out, in) and biases[l] is a
column (out, 1). backprop(x, y) takes ONE example as column vectors x (in, 1), y (out, 1) and
returns (bias_grads, weight_grads), two lists shaped like biases and weights, of the quadratic
cost 0.5 * ||a - y||**2. There is no cost function: training averages the per-example
gradients over each mini-batch.
"""
import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    s = sigmoid(z)
    return s * (1.0 - s)


class Network:
    def __init__(self, sizes, seed=1):
        rng = np.random.default_rng(seed)
        self.sizes = list(sizes)
        self.n_layers = len(self.sizes) - 1
        self.biases = [rng.standard_normal((n_out, 1)) for n_out in self.sizes[1:]]
        self.weights = [rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)
                        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:])]

    def feedforward(self, a):
        for W, b in zip(self.weights, self.biases):
            a = sigmoid(W @ a + b)
        return a

    def backprop(self, x, y):
        # forward, remembering every weighted input z and every activation
        zs, activations = [], [x]
        for W, b in zip(self.weights, self.biases):
            zs.append(W @ activations[-1] + b)
            activations.append(sigmoid(zs[-1]))

        bias_grads = [None] * self.n_layers
        weight_grads = [None] * self.n_layers
        # output layer: dC/da = a - y for the quadratic cost
        delta = (activations[-1] - y) * sigmoid_prime(zs[-1])
        for l in reversed(range(self.n_layers)):
            bias_grads[l] = delta
            weight_grads[l] = delta @ activations[l].T
            if l > 0:
                delta = (self.weights[l].T @ delta) * sigmoid_prime(zs[l - 1])
        return bias_grads, weight_grads

    def update_mini_batch(self, batch, eta):
        """One gradient step on a list of (x, y) column pairs, averaging their gradients."""
        sum_b = [np.zeros_like(b) for b in self.biases]
        sum_w = [np.zeros_like(W) for W in self.weights]
        for x, y in batch:
            db, dw = self.backprop(x, y)
            sum_b = [s + d for s, d in zip(sum_b, db)]
            sum_w = [s + d for s, d in zip(sum_w, dw)]
        step = eta / len(batch)
        self.weights = [W - step * g for W, g in zip(self.weights, sum_w)]
        self.biases = [b - step * g for b, g in zip(self.biases, sum_b)]

    def train(self, data, epochs, batch_size, eta, seed=0):
        rng = np.random.default_rng(seed)
        for epoch in range(epochs):
            order = rng.permutation(len(data))
            shuffled = [data[i] for i in order]
            for start in range(0, len(data), batch_size):
                self.update_mini_batch(shuffled[start:start + batch_size], eta)
            if epoch % 500 == 0:
                cost = sum(0.5 * np.sum((self.feedforward(x) - y) ** 2) for x, y in data) / len(data)
                print(f"epoch {epoch}: cost {cost:.4f}")


if __name__ == "__main__":
    xor = [(np.array([[a], [b]], dtype=float), np.array([[float(a ^ b)]]))
           for a in (0, 1) for b in (0, 1)]
    net = Network([2, 4, 1])
    net.train(xor, epochs=3001, batch_size=2, eta=3.0)
    for x, y in xor:
        print(x.ravel(), "->", net.feedforward(x).ravel(), "target", y.ravel())
