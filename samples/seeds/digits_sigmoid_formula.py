"""Telling 3s from 7s (8x8 digits) with a two-hidden-layer perceptron.

Network: 64 pixels -> 3 sigmoid -> 3 sigmoid -> 2 softmax, cross-entropy loss
averaged over the examples. Rows layout: X is (N, 64) with pixels in [0, 1],
y holds the class index of every row (0 = "3", 1 = "7").

The one-hidden-layer version of this worked, but with the second hidden layer
the loss jumps around and does not go below ~1...

Only one mistake left in here: the sigmoid derivative written as 1 - sigmoid(a)
(in both hidden layers).
"""
import os

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def init_params(seed=0):
    rng = np.random.RandomState(seed)
    return {
        "W1": rng.randn(64, 3) / np.sqrt(64), "b1": np.zeros((1, 3)),
        "W2": rng.randn(3, 3) / np.sqrt(3),   "b2": np.zeros((1, 3)),
        "W3": rng.randn(3, 2) / np.sqrt(3),   "b3": np.zeros((1, 2)),
    }


def forward(params, X):
    a1 = sigmoid(X.dot(params["W1"]) + params["b1"])
    a2 = sigmoid(a1.dot(params["W2"]) + params["b2"])
    z3 = a2.dot(params["W3"]) + params["b3"]
    exp_scores = np.exp(z3 - z3.max(axis=1, keepdims=True))
    probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
    return a1, a2, probs


def loss(params, X, y):
    _, _, probs = forward(params, X)
    n = X.shape[0]
    correct_logprobs = -np.log(probs[np.arange(n), y])
    return np.sum(correct_logprobs) / n


def gradients(params, X, y):
    a1, a2, probs = forward(params, X)
    n = X.shape[0]

    delta4 = probs.copy()
    delta4[np.arange(n), y] -= 1
    delta4 /= n                        # the loss is a mean over the batch, so the gradients are means too
    dW3 = a2.T.dot(delta4)
    db3 = np.sum(delta4, axis=0, keepdims=True)

    delta3 = delta4.dot(params["W3"].T) * (1 - sigmoid(a2))   # BUG: a2 is already sigmoid(z2); the derivative is a2 * (1 - a2), not 1 - sigmoid(a2)
    dW2 = a1.T.dot(delta3)
    db2 = np.sum(delta3, axis=0, keepdims=True)

    delta2 = delta3.dot(params["W2"].T) * (1 - sigmoid(a1))   # BUG: same wrong sigmoid derivative, a1 * (1 - a1) is right
    dW1 = X.T.dot(delta2)
    db1 = np.sum(delta2, axis=0, keepdims=True)

    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}


if __name__ == "__main__":
    data = np.load(os.path.join(os.path.dirname(__file__), "data", "digits_3v7.npz"))
    X, y = data["X"], data["y"]
    params = init_params()
    epsilon = 2.0                      # learning rate (the gradients are means now, so a bigger step)
    for i in range(5001):
        grads = gradients(params, X, y)
        for name in params:
            params[name] = params[name] - epsilon * grads[name]
        if i % 500 == 0:
            acc = np.mean(np.argmax(forward(params, X)[2], axis=1) == y)
            print("iter %5d  loss %.4f  accuracy %.3f" % (i, loss(params, X, y), acc))
