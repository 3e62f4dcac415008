"""A loss w**2 whose backward takes the log of 5 - |w| (NaN once |w| passes 5): the loss stays finite
while the gradient does not, for the test of diagnose's train/nonfinite on a gradient."""
import numpy as np


def init_params():
    return {"W1": np.array([[1.0]]), "b1": np.array([0.0])}


def loss(params, X, Y):
    return float(params["W1"][0, 0] ** 2)


def gradients(params, X, Y):
    w = params["W1"][0, 0]
    with np.errstate(invalid="ignore"):
        return {"W1": np.array([[2.0 * w + 0.0 * np.log(5.0 - abs(w))]]), "b1": np.zeros(1)}
