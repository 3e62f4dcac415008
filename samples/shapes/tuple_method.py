"""One-hidden-layer regression MLP whose hidden activation is passed to the constructor.

Shape "tuple_method" of issue #4. Rows layout: x is (N, n_in), y is (N, n_out).
MLP(hidden_act, hidden_act_grad): hidden_act_grad(z) is the derivative at the pre-activation z.
init_params(n_in, n_hidden, n_out, seed) -> {"W1": (n_in, n_hidden), "b1": (n_hidden,),
"W2": (n_hidden, n_out), "b2": (n_out,)}; the output layer is linear.
backprop(x, y, params) -> (dW1, dW2, db1, db2, loss) with loss = 0.5 * sum((out - y)**2) / N.
"""
import numpy as np


def tanh(z):
    return np.tanh(z)


def tanh_grad(z):
    return 1.0 - np.tanh(z) ** 2


class MLP:
    def __init__(self, hidden_act, hidden_act_grad):
        self.act = hidden_act
        self.act_grad = hidden_act_grad

    def init_params(self, n_in, n_hidden, n_out, seed):
        rng = np.random.default_rng(seed)
        return {
            "W1": rng.normal(0.0, 1.0 / np.sqrt(n_in), size=(n_in, n_hidden)),
            "b1": rng.normal(0.0, 0.1, size=n_hidden),
            "W2": rng.normal(0.0, 1.0 / np.sqrt(n_hidden), size=(n_hidden, n_out)),
            "b2": np.zeros(n_out),
        }

    def predict(self, x, params):
        z1 = x @ params["W1"] + params["b1"]
        h = self.act(z1)
        return z1, h, h @ params["W2"] + params["b2"]

    def backprop(self, x, y, params):
        n = x.shape[0]
        z1, h, out = self.predict(x, params)
        err = out - y
        loss = 0.5 * np.sum(err ** 2) / n

        delta2 = err / n
        dW2 = h.T @ delta2
        db2 = delta2.sum(axis=0)

        dh = delta2 @ params["W2"].T
        delta1 = dh * self.act_grad(z1)
        dW1 = x.T @ delta1
        db1 = delta1.sum(axis=0)
        return dW1, dW2, db1, db2, loss


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(100, 3))
    y = np.stack([np.sin(x[:, 0]) + x[:, 1] * x[:, 2], np.cos(x[:, 1])], axis=1)
    net = MLP(tanh, tanh_grad)
    params = net.init_params(3, 6, 2, seed=1)
    for epoch in range(2001):
        dW1, dW2, db1, db2, loss = net.backprop(x, y, params)
        for name, g in zip(["W1", "W2", "b1", "b2"], [dW1, dW2, db1, db2]):
            params[name] -= 0.1 * g
        if epoch % 400 == 0:
            print(epoch, loss)
