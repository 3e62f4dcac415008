"""Deep L-layer network written as plain functions, in the style of a course assignment.

Shape "deep_functions" of issue #4. Columns layout: X is (features, m), Y is (1, m) with 0/1 labels.
init_params(layer_dims) -> {"W1": (n1, n0), "b1": (n1, 1), ...}; relu hidden layers, sigmoid output.
model_forward(X, params) -> (AL, caches); compute_cost(AL, Y) is the mean binary cross-entropy;
model_backward(AL, Y, caches) -> {"dA0", "dW1", "db1", "dA1", ...}.
"""
import numpy as np


def sigmoid(Z):
    return 1 / (1 + np.exp(-Z))


def init_params(layer_dims, seed=3):
    rng = np.random.default_rng(seed)
    params = {}
    for l in range(1, len(layer_dims)):
        params["W" + str(l)] = rng.standard_normal((layer_dims[l], layer_dims[l - 1])) * np.sqrt(2 / layer_dims[l - 1])
        params["b" + str(l)] = np.zeros((layer_dims[l], 1))
    return params


def linear_activation_forward(A_prev, W, b, activation):
    Z = W @ A_prev + b
    A = sigmoid(Z) if activation == "sigmoid" else np.maximum(0, Z)
    return A, ((A_prev, W, b), Z)


def model_forward(X, params):
    caches = []
    A = X
    L = len(params) // 2
    for l in range(1, L):
        A, cache = linear_activation_forward(A, params["W" + str(l)], params["b" + str(l)], "relu")
        caches.append(cache)
    AL, cache = linear_activation_forward(A, params["W" + str(L)], params["b" + str(L)], "sigmoid")
    caches.append(cache)
    return AL, caches


def compute_cost(AL, Y):
    m = Y.shape[1]
    cost = -np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL)) / m
    return np.squeeze(cost)


def linear_backward(dZ, linear_cache):
    A_prev, W, b = linear_cache
    m = A_prev.shape[1]
    dW = dZ @ A_prev.T / m
    db = np.sum(dZ, axis=1, keepdims=True) / m
    dA_prev = W.T @ dZ
    return dA_prev, dW, db


def model_backward(AL, Y, caches):
    grads = {}
    L = len(caches)
    Y = Y.reshape(AL.shape)
    dAL = -(Y / AL - (1 - Y) / (1 - AL))

    linear_cache, Z = caches[L - 1]
    s = sigmoid(Z)
    dZ = dAL * s * (1 - s)
    grads["dA" + str(L - 1)], grads["dW" + str(L)], grads["db" + str(L)] = linear_backward(dZ, linear_cache)

    for l in reversed(range(L - 1)):
        linear_cache, Z = caches[l]
        dZ = grads["dA" + str(l + 1)] * (Z > 0)
        grads["dA" + str(l)], grads["dW" + str(l + 1)], grads["db" + str(l + 1)] = linear_backward(dZ, linear_cache)
    return grads


def update_parameters(params, grads, learning_rate):
    for l in range(1, len(params) // 2 + 1):
        params["W" + str(l)] -= learning_rate * grads["dW" + str(l)]
        params["b" + str(l)] -= learning_rate * grads["db" + str(l)]
    return params


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 200))
    Y = (X[0:1] * X[1:2] + 0.3 * rng.normal(size=(1, 200)) > 0).astype(float)
    params = init_params([4, 7, 5, 1])
    for i in range(1001):
        AL, caches = model_forward(X, params)
        grads = model_backward(AL, Y, caches)
        params = update_parameters(params, grads, 0.1)
        if i % 200 == 0:
            print(i, compute_cost(AL, Y))
