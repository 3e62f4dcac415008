"""MLP 4 -> 5 (tanh) -> 4 (tanh) -> 3 (softmax), columns layout (X is features x batch),
like the Andrew Ng course notation: Z = W @ A + b.

Planted mistake: the tanh derivative of layer 2 is evaluated at the activated output.
"""
import numpy as np


def softmax(Z):
    Z = Z - Z.max(axis=0, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=0, keepdims=True)


def forward(params, X):
    Z1 = params["W1"] @ X + params["b1"]
    A1 = np.tanh(Z1)
    Z2 = params["W2"] @ A1 + params["b2"]
    A2 = np.tanh(Z2)
    Z3 = params["W3"] @ A2 + params["b3"]
    A3 = softmax(Z3)
    return A1, A2, A3


def loss(params, X, Y):
    m = X.shape[1]
    _, _, A3 = forward(params, X)
    return -np.sum(Y * np.log(A3)) / m


def gradients(params, X, Y):
    m = X.shape[1]
    A1, A2, A3 = forward(params, X)

    dZ3 = (A3 - Y) / m
    dW3 = dZ3 @ A2.T
    db3 = dZ3.sum(axis=1, keepdims=True)

    dA2 = params["W3"].T @ dZ3
    dZ2 = dA2 * (1 - np.tanh(A2) ** 2)  # BUG: A2 is already tanh(Z2); should be (1 - A2 ** 2)
    dW2 = dZ2 @ A1.T
    db2 = dZ2.sum(axis=1, keepdims=True)

    dA1 = params["W2"].T @ dZ2
    dZ1 = dA1 * (1 - A1 ** 2)
    dW1 = dZ1 @ X.T
    db1 = dZ1.sum(axis=1, keepdims=True)

    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}


if __name__ == "__main__":
    # tiny training demo on random data
    rng = np.random.default_rng(1)
    X = rng.normal(size=(4, 30))
    Y = np.eye(3)[:, rng.integers(0, 3, 30)]
    params = {"W1": rng.normal(0, 0.5, (5, 4)), "b1": np.zeros((5, 1)),
              "W2": rng.normal(0, 0.5, (4, 5)), "b2": np.zeros((4, 1)),
              "W3": rng.normal(0, 0.5, (3, 4)), "b3": np.zeros((3, 1))}
    for epoch in range(200):
        grads = gradients(params, X, Y)
        for k in params:
            params[k] -= 0.5 * grads[k]
        if epoch % 50 == 0:
            print(epoch, loss(params, X, Y))
