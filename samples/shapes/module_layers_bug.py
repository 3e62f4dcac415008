"""Layer objects created at module level and trained AS SOON AS THE FILE IS IMPORTED (no __main__ guard).

Network: 4 inputs -> dense1 (6) -> ReLU -> dense2 (3) -> softmax + cross-entropy (one head object).
Rows layout: X is (N, 4); y holds integer class labels (N,).
forward(inputs) stores .output; backward(dvalues) stores .dinputs and, for dense layers,
.dweights (in, out) and .dbiases (1, out). Weights are (in, out), biases (1, out).

Planted mistake: the ReLU's backward takes its mask from the incoming gradient, not from its input.
"""
import numpy as np

rng = np.random.default_rng(0)


class LayerDense:
    def __init__(self, n_inputs, n_neurons):
        self.weights = 0.1 * rng.standard_normal((n_inputs, n_neurons))
        self.biases = np.zeros((1, n_neurons))

    def forward(self, inputs):
        self.inputs = inputs
        self.output = inputs @ self.weights + self.biases

    def backward(self, dvalues):
        self.dweights = self.inputs.T @ dvalues
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = dvalues @ self.weights.T


class ActivationReLU:
    def forward(self, inputs):
        self.inputs = inputs
        self.output = np.maximum(0, inputs)

    def backward(self, dvalues):
        self.dinputs = dvalues.copy()
        self.dinputs[dvalues <= 0] = 0  # BUG: the mask must come from the ReLU's input: self.inputs <= 0


class SoftmaxCrossEntropy:
    """Softmax and the mean cross-entropy in one object: their joint gradient is (softmax - onehot) / N."""

    def forward(self, inputs, y_true):
        exp = np.exp(inputs - np.max(inputs, axis=1, keepdims=True))
        self.output = exp / np.sum(exp, axis=1, keepdims=True)
        picked = self.output[np.arange(len(inputs)), y_true]
        return np.mean(-np.log(np.clip(picked, 1e-7, 1 - 1e-7)))

    def backward(self, dvalues, y_true):
        # uses the softmax stored by forward; dvalues only tells how many samples there are
        samples = len(dvalues)
        self.dinputs = self.output.copy()
        self.dinputs[np.arange(samples), y_true] -= 1
        self.dinputs = self.dinputs / samples


def make_blobs(per_class, classes, features):
    centers = 2.0 * rng.standard_normal((classes, features))
    X = np.concatenate([c + rng.standard_normal((per_class, features)) for c in centers])
    y = np.repeat(np.arange(classes), per_class)
    return X, y


X, y = make_blobs(50, 3, 4)

dense1 = LayerDense(4, 6)
act1 = ActivationReLU()
dense2 = LayerDense(6, 3)
head = SoftmaxCrossEntropy()
learning_rate = 0.5

for epoch in range(301):
    dense1.forward(X)
    act1.forward(dense1.output)
    dense2.forward(act1.output)
    loss = head.forward(dense2.output, y)
    if epoch % 100 == 0:
        accuracy = np.mean(np.argmax(head.output, axis=1) == y)
        print(f"epoch {epoch}, loss {loss:.3f}, acc {accuracy:.3f}")

    head.backward(head.output, y)
    dense2.backward(head.dinputs)
    act1.backward(dense2.dinputs)
    dense1.backward(act1.dinputs)
    for layer in (dense1, dense2):
        layer.weights -= learning_rate * layer.dweights
        layer.biases -= learning_rate * layer.dbiases
