import numpy as np
import pandas as pd


class Dense:
    def __init__(self, neurons, activation='sigmoid'):
        self.neurons = neurons
        if activation == 'sigmoid':
            self.activate = lambda x: np.divide(1, 1 + np.exp(-x))
            self.dactivate = lambda x: np.multiply(self.activate(x), (1 - self.activate(x)))
        elif activation == 'relu':
            self.activate = lambda x: np.where(x > 0, x, 0)
            self.dactivate = lambda x: np.where(x > 0, 1, 0)
        elif activation == 'tanh':
            self.activate = lambda x: np.tanh(x)
            self.dactivate = lambda x: 1 - np.tanh(x) ** 2
        else:
            raise ValueError('没有这个激活函数: ' + activation)

    def forward(self, X):
        self.layer_input = X
        return self.activate(np.dot(X, self.weights) + self.biases)

    def backward(self, last_derivative, lr):
        w = self.weights
        dfunction = self.dactivate(last_derivative)
        d_w = np.dot(self.layer_input.T, dfunction) * (1. / self.layer_input.shape[0])
        d_b = (1. / self.layer_input.shape[0]) * np.dot(np.ones((self.biases.shape[0], last_derivative.shape[0])), last_derivative)
        self.weights -= np.multiply(lr, d_w)
        self.biases -= np.multiply(lr, d_b)
        return np.dot(dfunction, w.T)

    def build(self, neurons):
        # neurons = 上一层的神经元数量
        self.weights = np.random.randn(neurons, self.neurons) * np.divide(6, np.sqrt(self.neurons * neurons))
        self.biases = np.random.randn(1, self.neurons) * np.divide(6, np.sqrt(self.neurons * neurons))


class DenseNeuralNetwork:
    def __init__(self, sizes, activations, lr=0.1, loss='cross_entropy'):
        self.lr = lr
        self.layers = []
        for i in range(1, len(sizes)):
            layer = Dense(sizes[i], activations[i - 1])
            layer.build(sizes[i - 1])
            self.layers.append(layer)
        if loss == 'cross_entropy':
            clip = lambda x: np.clip(x, 1e-10, 1 - 1e-10)   # 把 x 压到 0 和 1 之间
            self.loss = lambda x, y: -(np.sum(np.multiply(y, np.log(clip(x))) + np.multiply(1 - y, np.log(1 - clip(x)))) / y.shape[0])
            self.dloss = lambda x, y: -(np.divide(y, clip(x)) - np.divide(1 - y, 1 - clip(x)))
        elif loss == 'mse':
            self.loss = lambda x, y: np.mean(np.square(x - y))
            self.dloss = lambda x, y: 2 * (x - y)
        else:
            raise ValueError('没有这个损失函数: ' + loss)

    def predict(self, X):
        output = X
        for layer in self.layers:
            output = layer.forward(output)
        return output

    def train(self, X, y, epochs=100):
        history = []
        for epoch in range(epochs):
            output = self.predict(X)
            history.append(self.loss(output, y))
            last_derivative = self.dloss(output, y)
            for layer in reversed(self.layers):
                last_derivative = layer.backward(last_derivative, self.lr)
            if epoch % 100 == 0:
                print('epoch', epoch, 'loss', history[-1])
        return history


if __name__ == '__main__':
    df = pd.read_csv('iris.csv', index_col=0)
    X = df[['sepal_length', 'sepal_width', 'petal_length', 'petal_width']].values
    y = (df['species'] == 'virginica').values.reshape(-1, 1) * 1.0   # 是不是 virginica
    np.random.seed(1)
    nn = DenseNeuralNetwork([4, 6, 4, 1], ['sigmoid', 'sigmoid', 'sigmoid'], lr=0.5)
    nn.train(X, y, epochs=1000)
    print('accuracy', np.mean((nn.predict(X) > 0.5) == y))
