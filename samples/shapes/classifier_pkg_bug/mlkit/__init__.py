"""mlkit: a small from-scratch NumPy toolkit of layers and classifiers."""
