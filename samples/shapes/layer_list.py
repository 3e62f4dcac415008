"""A network as a plain list of layer objects, trained one example at a time (columns: x is (in, 1)).

Network: 5 inputs -> Dense -> Tanh -> Dense -> Sigmoid -> 3 outputs, squared error.
Every layer has forward(input) and backward(output_gradient, learning_rate): a Dense layer
updates its own weights in place and returns the gradient for its input; the activation
layers have the same interface and simply ignore the learning rate.
Loss: mse(y_true, y_pred) = np.mean((y_true - y_pred) ** 2), over the outputs of one example.
"""
import numpy as np


class Dense:
    def __init__(self, input_size, output_size):
        self.weights = np.random.randn(output_size, input_size) / np.sqrt(input_size)  # (out, in)
        self.bias = np.random.randn(output_size, 1) * 0.1                              # (out, 1)

    def forward(self, input):
        self.input = input
        return self.weights @ input + self.bias

    def backward(self, output_gradient, learning_rate):
        weights_gradient = output_gradient @ self.input.T
        input_gradient = self.weights.T @ output_gradient   # before the update below changes the weights
        self.weights -= learning_rate * weights_gradient
        self.bias -= learning_rate * output_gradient
        return input_gradient


class Tanh:
    def forward(self, input):
        self.input = input
        self.output = np.tanh(input)
        return self.output

    def backward(self, output_gradient, learning_rate):
        return output_gradient * (1 - self.output ** 2)


class Sigmoid:
    def forward(self, input):
        self.input = input
        self.output = 1 / (1 + np.exp(-input))
        return self.output

    def backward(self, output_gradient, learning_rate):
        s = self.output
        return output_gradient * s * (1 - s)


def mse(y_true, y_pred):
    return np.mean((y_true - y_pred) ** 2)


def mse_prime(y_true, y_pred):
    return 2 * (y_pred - y_true) / np.size(y_true)


def predict(network, x):
    out = x
    for layer in network:
        out = layer.forward(out)
    return out


def train(network, X, Y, epochs=200, learning_rate=0.1):
    for epoch in range(epochs):
        error = 0
        for x, y in zip(X, Y):
            output = predict(network, x)
            error += mse(y, output)
            grad = mse_prime(y, output)
            for layer in reversed(network):
                grad = layer.backward(grad, learning_rate)
        if epoch % 50 == 0:
            print(f"epoch {epoch}: error {error / len(X):.5f}")


if __name__ == "__main__":
    np.random.seed(3)
    X = np.random.randn(100, 5, 1)                      # 100 examples, each a (5, 1) column
    x = X[:, :, 0]
    Y = np.stack([x[:, 0] > 0, x[:, 1] * x[:, 2] > 0, x[:, 3] + x[:, 4] > 0], axis=1)
    Y = Y.astype(float)[:, :, None]                     # 3 made-up 0/1 targets, each (3, 1)
    network = [Dense(5, 6), Tanh(), Dense(6, 3), Sigmoid()]
    train(network, X, Y)
