"""backcheck: find the bug in hand-written NumPy backpropagation."""

__version__ = "1.0.0"
