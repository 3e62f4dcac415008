"""Two-layer network without biases, trained one sample at a time with plain SGD.

A sample is a 1-D vector x (n_in,) with target y (n_out,). The weights are passed around as
arrays: W1 (n_hidden, n_in) and W2 (n_out, n_hidden), each stored (out, in), so the forward
pass is W @ x. Hidden units are tanh, outputs sigmoid. train_sample(x, y, W1, W2) changes W1
and W2 in place by LEARNING_RATE times the gradient of 0.5 * ||y - out||**2; there is no loss
function.
"""
import numpy as np

LEARNING_RATE = 0.5


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def predict(x, W1, W2):
    hidden = np.tanh(W1 @ x)
    return sigmoid(W2 @ hidden)


def train_sample(x, y, W1, W2):
    hidden = np.tanh(W1 @ x)
    out = sigmoid(W2 @ hidden)

    error = y - out
    out_delta = error * out * (1.0 - out)
    hidden_delta = (W2.T @ out_delta) * (1.0 - hidden ** 2)

    # both deltas are known, now move the weights
    W2 += LEARNING_RATE * np.outer(out_delta, hidden)
    W1 += LEARNING_RATE * np.outer(hidden_delta, x)


if __name__ == "__main__":
    rng = np.random.default_rng(5)
    n_in, n_hidden, n_out = 4, 5, 2
    W1 = rng.normal(scale=0.5, size=(n_hidden, n_in))
    W2 = rng.normal(scale=0.5, size=(n_out, n_hidden))
    samples = rng.normal(size=(80, n_in))
    targets = np.stack([samples[:, 0] > samples[:, 1], samples[:, 2] + samples[:, 3] > 0], axis=1).astype(float)
    for epoch in range(101):
        for i in rng.permutation(len(samples)):
            train_sample(samples[i], targets[i], W1, W2)
        if epoch % 20 == 0:
            outs = np.array([predict(x, W1, W2) for x in samples])
            print(f"epoch {epoch}: error {0.5 * np.sum((targets - outs) ** 2) / len(samples):.4f}, "
                  f"accuracy {np.mean((outs > 0.5) == targets):.2f}")
