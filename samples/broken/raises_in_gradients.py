"""Tiny 4 -> 5 tanh -> 3 softmax MLP (rows, one-hot) whose backward loop indexes past its list."""
import numpy as np


def forward(params, X):
    Ws = [params["W1"], params["W2"]]
    bs = [params["b1"], params["b2"]]
    acts = [X]
    for i in range(2):
        z = acts[-1] @ Ws[i] + bs[i]
        if i == 0:
            acts.append(np.tanh(z))
        else:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            acts.append(e / e.sum(axis=1, keepdims=True))
    return acts


def loss(params, X, Y):
    p = forward(params, X)[-1]
    return -np.sum(Y * np.log(p)) / X.shape[0]


def gradients(params, X, Y):
    Ws = [params["W1"], params["W2"]]
    acts = forward(params, X)
    delta = (acts[2] - Y) / X.shape[0]
    grads = {}
    for layer in (2, 1):                      # layer numbers 2, 1 ...
        grads["W%d" % layer] = acts[layer - 1].T @ delta
        grads["b%d" % layer] = delta.sum(axis=0)
        delta = (delta @ Ws[layer].T) * (1 - acts[layer - 1] ** 2)  # BUG: Ws is 0-based, Ws[2] -> IndexError; should be Ws[layer - 1]
    return grads
