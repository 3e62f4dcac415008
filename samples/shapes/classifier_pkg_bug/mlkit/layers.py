"""Forward/backward helpers for the layers of mlkit's classifiers.

Rows layout: x is (N, D) with one example per row; w is (D, M); b is (M,).
Every *_forward returns (out, cache); every *_backward takes (dout, cache).
"""
import numpy as np


def affine_forward(x, w, b):
    out = x @ w + b
    return out, (x, w)


def affine_backward(dout, cache):
    """dout is (N, M); returns dx (N, D), dw (D, M), db (M,)."""
    x, w = cache
    dx = dout @ w.T
    dw = x.T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    x = cache
    return dout * (x > 0)


def softmax_loss(scores, y):
    """scores (N, C), y integer labels (N,); returns the mean cross-entropy and dscores (N, C)."""
    N = scores.shape[0]
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(N), y].mean()
    dscores = np.exp(log_probs)
    dscores[np.arange(N), y] -= 1
    return loss, dscores / N
