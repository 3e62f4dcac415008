import numpy as np

# 3 vs 7 (8x8 pictures, pixels already divided by 16)
data = np.load('digits_3v7.npz')
X = data['X']
y = data['y']   # 0 = "3", 1 = "7"

num_examples = len(X) # training set size
nn_input_dim = 64 # input layer dimensionality
nn_output_dim = 2 # output layer dimensionality

# Gradient descent parameters
epsilon = 0.5 # learning rate (0.005 was for the summed gradient: now it is a mean, 1/362 of it)

def sigmoid(x):
    return 1 / (1 + np.exp(-x))

def calculate_loss(model):
    W1, b1, W2, b2, W3, b3 = model['W1'], model['b1'], model['W2'], model['b2'], model['W3'], model['b3']
    # forward pass to get the probabilities
    z1 = X.dot(W1) + b1
    a1 = sigmoid(z1)
    z2 = a1.dot(W2) + b2
    a2 = sigmoid(z2)
    z3 = a2.dot(W3) + b3
    exp_scores = np.exp(z3)
    probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
    # cross-entropy
    corect_logprobs = -np.log(probs[range(num_examples), y])
    data_loss = np.sum(corect_logprobs)
    return 1./num_examples * data_loss

def predict(model, x):
    W1, b1, W2, b2, W3, b3 = model['W1'], model['b1'], model['W2'], model['b2'], model['W3'], model['b3']
    a1 = sigmoid(x.dot(W1) + b1)
    a2 = sigmoid(a1.dot(W2) + b2)
    z3 = a2.dot(W3) + b3
    return np.argmax(z3, axis=1)

def build_model(nn_hdim1, nn_hdim2, num_passes=20000, print_loss=False):
    # random start, same every time
    np.random.seed(0)
    W1 = np.random.randn(nn_input_dim, nn_hdim1) / np.sqrt(nn_input_dim)
    b1 = np.zeros((1, nn_hdim1))
    W2 = np.random.randn(nn_hdim1, nn_hdim2) / np.sqrt(nn_hdim1)
    b2 = np.zeros((1, nn_hdim2))
    W3 = np.random.randn(nn_hdim2, nn_output_dim) / np.sqrt(nn_hdim2)
    b3 = np.zeros((1, nn_output_dim))

    model = {}
    loss = []

    for i in range(0, num_passes):
        # forward
        z1 = X.dot(W1) + b1
        a1 = sigmoid(z1)
        z2 = a1.dot(W2) + b2
        a2 = sigmoid(z2)
        z3 = a2.dot(W3) + b3
        exp_scores = np.exp(z3)
        probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)

        # backpropagation
        delta4 = probs
        delta4[range(num_examples), y] -= 1
        delta4 /= num_examples   # the loss is a mean, so its gradient has the 1/N too
        dW3 = (a2.T).dot(delta4)
        db3 = np.sum(delta4, axis=0, keepdims=True)
        delta3 = delta4.dot(W3.T) * a2 * (1 - a2)   # a2 is sigmoid(z2) already
        dW2 = (a1.T).dot(delta3)
        db2 = np.sum(delta3, axis=0, keepdims=True)
        delta2 = delta3.dot(W2.T) * a1 * (1 - a1)
        dW1 = np.dot(X.T, delta2)
        db1 = np.sum(delta2, axis=0)

        # gradient descent
        W1 += -epsilon * dW1
        b1 += -epsilon * db1
        W2 += -epsilon * dW2
        b2 += -epsilon * db2
        W3 += -epsilon * dW3
        b3 += -epsilon * db3

        model = {'W1': W1, 'b1': b1,
                 'W2': W2, 'b2': b2,
                 'W3': W3, 'b3': b3}

        if print_loss and i % 200 == 0:
            loss.append(calculate_loss(model))
            print("Loss after iteration %i: %f" % (i, calculate_loss(model)))

    return model, loss

model, loss = build_model(3, 3, num_passes=2000, print_loss=True)
print("accuracy:", np.mean(predict(model, X) == y))
