"""Column-layout tanh/softmax net whose biases have one column PER EXAMPLE.

X is (4, N), Y is one-hot (3, N); N = 10 is fixed when the parameters are made.
Network: 4 inputs -> 6 tanh -> 3 softmax, mean cross-entropy.
W1 is (6, 4), b1 is (6, N), W2 is (3, 6), b2 is (3, N): the biases are "batch-shaped"
(like many tutorials that write b1 = np.zeros((hidden, m))). The gradients are still correct
for THIS parametrisation: bias column n only touches example n.
"""
import numpy as np

N_EXAMPLES = 10


def init_params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "W1": rng.normal(size=(6, 4)) * 0.5, "b1": np.zeros((6, N_EXAMPLES)),
        "W2": rng.normal(size=(3, 6)) * 0.5, "b2": np.zeros((3, N_EXAMPLES)),
    }


def softmax(z):
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def forward(params, X):
    A1 = np.tanh(params["W1"] @ X + params["b1"])
    A2 = softmax(params["W2"] @ A1 + params["b2"])
    return A1, A2


def loss(params, X, Y):
    _, A2 = forward(params, X)
    m = X.shape[1]
    return -np.sum(Y * np.log(A2)) / m


def gradients(params, X, Y):
    A1, A2 = forward(params, X)
    m = X.shape[1]
    dZ2 = (A2 - Y) / m
    dW2 = dZ2 @ A1.T
    db2 = dZ2                      # one bias column per example -> no sum over the batch
    dZ1 = (params["W2"].T @ dZ2) * (1 - A1 ** 2)
    dW1 = dZ1 @ X.T
    db1 = dZ1
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


if __name__ == "__main__":
    rng = np.random.default_rng(4)
    X = rng.normal(size=(4, N_EXAMPLES))
    Y = np.eye(3)[:, rng.integers(0, 3, size=N_EXAMPLES)]
    params = init_params(0)
    for it in range(101):
        g = gradients(params, X, Y)
        for k in params:
            params[k] -= 0.5 * g[k]
        if it % 25 == 0:
            print(it, loss(params, X, Y))
