"""MLP trained with a hand-written SGD step (rows layout, integer class labels, L2 penalty).

Network: 4 inputs -> 6 sigmoid -> 5 sigmoid -> 3 softmax.
Loss: mean cross-entropy over the batch + LAM/2 * sum of squared weights (biases not penalised).
y is a vector of class indices (N,), not one-hot.
"""
import numpy as np

LAM = 0.01   # L2 strength


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def init_params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "W1": rng.normal(size=(4, 6)) / np.sqrt(4), "b1": np.zeros(6),
        "W2": rng.normal(size=(6, 5)) / np.sqrt(6), "b2": np.zeros(5),
        "W3": rng.normal(size=(5, 3)) / np.sqrt(5), "b3": np.zeros(3),
    }


def forward(params, X):
    a1 = sigmoid(X @ params["W1"] + params["b1"])
    a2 = sigmoid(a1 @ params["W2"] + params["b2"])
    z3 = a2 @ params["W3"] + params["b3"]
    z3 = z3 - z3.max(axis=1, keepdims=True)
    e = np.exp(z3)
    probs = e / e.sum(axis=1, keepdims=True)
    return a1, a2, probs


def loss(params, X, y):
    _, _, probs = forward(params, X)
    N = X.shape[0]
    data_loss = -np.log(probs[np.arange(N), y]).mean()
    reg = 0.5 * LAM * sum(np.sum(params[w] ** 2) for w in ("W1", "W2", "W3"))
    return data_loss + reg


def step(params, X, y, lr):
    """One step of plain gradient descent; changes params in place."""
    a1, a2, probs = forward(params, X)
    N = X.shape[0]

    delta3 = probs.copy()
    delta3[np.arange(N), y] -= 1
    delta3 /= N
    dW3 = a2.T @ delta3 + LAM * params["W3"]
    db3 = delta3.sum(axis=0)

    delta2 = (delta3 @ params["W3"].T) * a2 * (1 - a2)
    dW2 = a1.T @ delta2 + LAM * params["W2"]
    db2 = delta2.sum(axis=0)

    delta1 = (delta2 @ params["W2"].T) * a1 * (1 - a1)
    dW1 = X.T @ delta1 + LAM * params["W1"]
    db1 = delta1.sum(axis=0)

    # update only after every gradient has been computed
    grads = {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}
    for name, g in grads.items():
        params[name] -= lr * g


if __name__ == "__main__":
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 4))
    y = rng.integers(0, 3, size=40)
    params = init_params(0)
    for it in range(301):
        if it % 100 == 0:
            print(it, loss(params, X, y))
        step(params, X, y, lr=1.0)
