"""A loss that is flat far from its minimum and steep near it: one step of a large rate is
fine at the start and overshoots once training reaches the well."""
import numpy as np


def init_params():
    return {"W1": np.array([[3.0]]), "b1": np.array([0.0])}


def loss(params, X, Y):
    w = params["W1"][0, 0]
    return float(1.0 - np.exp(-0.5 * w * w))


def gradients(params, X, Y):
    w = params["W1"][0, 0]
    return {"W1": np.array([[w * np.exp(-0.5 * w * w)]]), "b1": np.zeros(1)}
