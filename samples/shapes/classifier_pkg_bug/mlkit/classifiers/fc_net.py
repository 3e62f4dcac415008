"""Fully-connected classifier: {affine - relu} x (L - 1) - affine - softmax.

Shape "classifier_pkg" of issue #4: a class inside a package that imports its layer
helpers relatively. Rows layout, integer labels.
self.params holds W1 (input_dim, H1), b1 (H1,), ..., WL (H_{L-1}, num_classes), bL (num_classes,).
loss(X) returns the scores (N, C); loss(X, y) returns (loss, grads) with grads keyed like params.
The loss is the mean softmax cross-entropy + 0.5 * reg * sum(W**2) over every weight matrix.

Planted mistake: the weight gradients leave out the regularization term reg * W,
although the loss includes 0.5 * reg * sum(W**2).
"""
import numpy as np

from ..layers import affine_backward, affine_forward, relu_backward, relu_forward, softmax_loss


class FullyConnectedNet:
    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, reg=0.0,
                 weight_scale=1e-2, dtype=np.float32, seed=None):
        self.reg = reg
        self.dtype = dtype
        self.num_layers = len(hidden_dims) + 1
        rng = np.random.default_rng(seed)
        dims = [input_dim, *hidden_dims, num_classes]
        self.params = {}
        for i in range(self.num_layers):
            W = weight_scale * rng.standard_normal((dims[i], dims[i + 1]))
            self.params[f"W{i + 1}"] = W.astype(dtype)
            self.params[f"b{i + 1}"] = np.zeros(dims[i + 1], dtype=dtype)

    def loss(self, X, y=None):
        X = X.astype(self.dtype)
        affine_caches, relu_caches = [], []
        h = X
        for i in range(1, self.num_layers + 1):
            h, cache = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            affine_caches.append(cache)
            if i < self.num_layers:
                h, cache = relu_forward(h)
                relu_caches.append(cache)
        scores = h
        if y is None:
            return scores

        loss, dout = softmax_loss(scores, y)
        for i in range(1, self.num_layers + 1):
            loss += 0.5 * self.reg * np.sum(self.params[f"W{i}"] ** 2)

        grads = {}
        for i in range(self.num_layers, 0, -1):
            if i < self.num_layers:
                dout = relu_backward(dout, relu_caches[i - 1])
            dout, dW, db = affine_backward(dout, affine_caches[i - 1])
            grads[f"W{i}"] = dW  # BUG: the loss has 0.5 * reg * sum(W**2), so dW needs + self.reg * W
            grads[f"b{i}"] = db
        return loss, grads


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)
    net = FullyConnectedNet([6, 4], input_dim=5, num_classes=3, reg=0.05,
                            weight_scale=0.5, dtype=np.float64, seed=0)
    for it in range(301):
        loss, grads = net.loss(X, y)
        for name in net.params:
            net.params[name] -= 0.2 * grads[name]
        if it % 50 == 0:
            print(it, loss, (net.loss(X).argmax(axis=1) == y).mean())
