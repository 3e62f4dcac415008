import numpy as np
import pandas as pd

data = pd.read_csv('iris.csv')

def softmax(x):
    """softmax of every column (one column = one flower)"""
    e_x = np.exp(x - np.max(x))
    return e_x / e_x.sum(axis=0)

### One hot encoding
classes = {
    'setosa': [1, 0, 0],
    'versicolour': [0, 1, 0],
    'virginica': [0, 0, 1]
}
onehot = pd.DataFrame(classes).T
onehot['species'] = onehot.index
onehot = onehot.reset_index(drop=True)
data = data.merge(onehot, on='species')
data = data.drop('Unnamed: 0', axis=1)
print(data.shape)

X = data[['sepal_length', 'sepal_width', 'petal_length', 'petal_width']].values
y = data[[0, 1, 2]].values
X = X.T
y = y.T

np.random.seed(42)
w1 = np.random.randn(5, 4) * 0.1   # with np.random.rand all the tanh were 1
b0 = np.ones((5, 100))
w2 = np.random.randn(4, 5) * 0.5
b1 = np.ones((4, 100))
w3 = np.random.randn(3, 4) * 0.5
b2 = np.ones((3, 100))
alpha = 0.1
loss = []

for epoch in range(1000):
    x1 = np.tanh(w1 @ X + b0)
    x2 = np.tanh(w2 @ x1 + b1)
    x3 = softmax(w3 @ x2 + b2)
    l = -np.sum(y * np.log(x3)) / 100
    loss.append(l)

    delta_3 = (x3 - y) / 100   ### нужно ли тут умножать на производную softmax?
    delta_2 = np.multiply(w3.T @ delta_3, 1 - np.power(x2, 2))
    # layer 3 is done, update it
    w3 = w3 - (alpha * delta_3 @ x2.T)
    b2 = b2 - (alpha * delta_3)
    delta_1 = np.multiply(w2.T @ delta_2, 1 - np.power(x1, 2))
    w2 = w2 - (alpha * delta_2 @ x1.T)
    b1 = b1 - (alpha * delta_2)
    w1 = w1 - (alpha * delta_1 @ X.T)
    b0 = b0 - (alpha * delta_1)

    if epoch % 100 == 0:
        acc = np.mean(np.argmax(x3, axis=0) == np.argmax(y, axis=0))
        print('epoch', epoch, 'loss', l, 'accuracy', acc)
