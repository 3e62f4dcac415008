"""backcheck's own implementation of the network a config describes, in the canonical layout.

Canonical layout: X is (N, in), W is (in, out), b is (out,) or (N, out) for a bias stored per
example, targets are (N, C) one-hot / (N, out) values. Activations and losses are registry
entries; the backward pass takes an optional ``variant`` that replaces one of its stages at one
layer, which is how ``diagnose`` rebuilds a known mistake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from backcheck.spec import NetworkSpec


# ---------------------------------------------------------------- activations


@dataclass(frozen=True)
class Activation:
    name: str
    f: Callable  # f(z, alpha) -> a
    df: Callable  # df(z, alpha) -> f'(z), elementwise (softmax: the diagonal of its Jacobian)
    formula: str  # the right derivative in terms of the activated output a, for fix messages


ACTIVATIONS: dict[str, Activation] = {}


def activation(name: str, formula: str):
    def register(fns):
        f, df = fns()
        ACTIVATIONS[name] = Activation(name, f, df, formula)
        return fns

    return register


def _sigmoid(z):
    # Split by sign so that neither branch overflows.
    out = np.empty_like(z, dtype=np.result_type(z, np.float64))
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def _softmax(z):
    # axis=-1: the units; a leading axis stacks perturbed copies of the network (numeric_gradient)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@activation("identity", "1")
def _identity():
    return (lambda z, alpha: z), (lambda z, alpha: np.ones_like(z))


@activation("sigmoid", "a * (1 - a)")
def _sigmoid_entry():
    return (lambda z, alpha: _sigmoid(z)), (lambda z, alpha: _sigmoid(z) * (1.0 - _sigmoid(z)))


@activation("tanh", "1 - a**2")
def _tanh():
    return (lambda z, alpha: np.tanh(z)), (lambda z, alpha: 1.0 - np.tanh(z) ** 2)


@activation("relu", "(z > 0)")
def _relu():
    return (lambda z, alpha: np.maximum(z, 0.0)), (lambda z, alpha: (z > 0).astype(float))


@activation("leaky_relu", "where(z > 0, 1, alpha)")
def _leaky_relu():
    return (lambda z, alpha: np.where(z > 0, z, alpha * z)), (lambda z, alpha: np.where(z > 0, 1.0, alpha))


@activation("softmax", "p - y together with cross-entropy")
def _softmax_entry():
    return (lambda z, alpha: _softmax(z)), (lambda z, alpha: _softmax(z) * (1.0 - _softmax(z)))


# ---------------------------------------------------------------- losses


@dataclass(frozen=True)
class LossFn:
    name: str
    value: Callable  # value(Z_last, A_last, Y, reduction) -> float (without L2)
    grad: Callable  # grad(A_last, Y, reduction) -> dL/dA_last, (N, out)


LOSSES: dict[str, LossFn] = {}


def loss_fn(name: str):
    def register(fns):
        value, grad = fns()
        LOSSES[name] = LossFn(name, value, grad)
        return fns

    return register


def _logsumexp(z):
    m = z.max(axis=-1, keepdims=True)
    return m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def _softplus(z):
    """log(1 + exp(z)) without overflow; complex arrays (complex-step probes) take the analytic form."""
    if not np.iscomplexobj(z):
        return np.logaddexp(0, z)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(z.real > 0, z + np.log1p(np.exp(-z)), np.log1p(np.exp(z)))


_BATCH = (-2, -1)  # loss values sum over (examples, units), so a stack of networks gives one loss each


@loss_fn("cross_entropy")
def _cross_entropy():
    def value(z, a, y, reduction):
        return -np.sum(y * (z - _logsumexp(z)), axis=_BATCH) / z.shape[-2]

    def grad(a, y, reduction):
        return -y / np.maximum(a, 1e-300) / len(a)

    return value, grad


@loss_fn("binary_cross_entropy")
def _binary_cross_entropy():
    def value(z, a, y, reduction):
        # log(sigmoid(z)) = -logaddexp(0, -z), log(1 - sigmoid(z)) = -logaddexp(0, z)
        return np.sum(y * _softplus(-z) + (1 - y) * _softplus(z), axis=_BATCH) / z.shape[-2]

    def grad(a, y, reduction):
        a = np.clip(a, 1e-300, 1 - 1e-16)
        return (a - y) / (a * (1 - a)) / len(a)

    return value, grad


@loss_fn("mse")
def _mse():
    def value(z, a, y, reduction):
        total = np.sum((a - y) ** 2, axis=_BATCH)
        return total / _count(a, reduction)

    def grad(a, y, reduction):
        return 2.0 * (a - y) / _count(a, reduction)

    def _count(a, reduction):
        """What the sum of squares is divided by: the batch, every element, or nothing."""
        return {"mean": a.shape[-2], "mean_all": a.shape[-2] * a.shape[-1], "sum": 1}[reduction]

    return value, grad


# ---------------------------------------------------------------- the network


Params = list  # [(W (in, out), b (out,) or (N, out)), ...] one pair per layer


def init_params(net: NetworkSpec, rng: np.random.Generator) -> Params:
    """Glorot-scaled weights and small random biases, canonical shapes. A layer without a bias
    (``bias: false``) gets a constant zero vector that is not a parameter."""
    params = []
    for n_in, n_out, layer in zip(net.widths[:-1], net.widths[1:], net.layers):
        W = rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / (n_in + n_out))
        b = 0.1 * rng.standard_normal(n_out)
        params.append((W, b if layer.bias else np.zeros(n_out)))
    return params


@dataclass
class Cache:
    """Forward quantities: Z[k], A[k] for layer k (1-based; A[0] is X)."""

    Z: list
    A: list


def forward(net: NetworkSpec, params: Params, X: np.ndarray) -> Cache:
    Z, A = [None], [X]
    for (W, b), layer in zip(params, net.layers):
        z = A[-1] @ W + b
        Z.append(z)
        A.append(ACTIVATIONS[layer.activation].f(z, layer.alpha))
    return Cache(Z, A)


def loss(net: NetworkSpec, params: Params, X: np.ndarray, Y: np.ndarray, cache: Cache | None = None) -> float:
    cache = cache or forward(net, params, X)
    value = net.scale * LOSSES[net.loss].value(cache.Z[-1], cache.A[-1], Y, net.reduction)
    if net.l2:
        value += sum(np.sum(l2_penalty(net, W)) for W, _ in params)
    return value


def l2_penalty(net: NetworkSpec, W: np.ndarray) -> np.ndarray:
    """The L2 term of the loss, entry by entry (summed over W it is the penalty of W)."""
    return 0.5 * net.l2 * W**2


@dataclass
class Backprop:
    """What a backward stage may look at. ``k`` is the current layer (1-based)."""

    net: NetworkSpec
    params: Params
    X: np.ndarray
    Y: np.ndarray
    cache: Cache
    k: int = 0

    def act(self, k: int) -> Activation:
        return ACTIVATIONS[self.net.layers[k - 1].activation]

    def alpha(self, k: int) -> float:
        return self.net.layers[k - 1].alpha

    def dact(self, k: int, at: np.ndarray) -> np.ndarray:
        """Layer k's activation derivative evaluated at ``at``."""
        return self.act(k).df(at, self.alpha(k))

    def output_grad(self) -> np.ndarray:
        """dL/dA at the output layer."""
        return self.net.scale * LOSSES[self.net.loss].grad(self.cache.A[-1], self.Y, self.net.reduction)

    def output_delta(self) -> np.ndarray:
        """dL/dZ at the output layer, using the combined form where the loss pairs with its activation."""
        A, Y, L = self.cache.A[-1], self.Y, len(self.net.layers)
        n = len(A)
        if (self.net.loss, self.net.layers[-1].activation) in (
            ("cross_entropy", "softmax"),
            ("binary_cross_entropy", "sigmoid"),
        ):
            return self.net.scale * (A - Y) / n
        return self.delta_from(self.output_grad(), L)

    def delta_from(self, G: np.ndarray, k: int) -> np.ndarray:
        """dL/dZ_k from dL/dA_k = G."""
        if self.net.layers[k - 1].activation == "softmax":
            P = self.cache.A[k]
            return P * (G - np.sum(G * P, axis=1, keepdims=True))
        return G * self.dact(k, self.cache.Z[k])


class Variant:
    """A backward pass with one stage replaced at layer ``layer``; every method returning None
    means "do it right". Subclasses live in ``diagnose``."""

    layer: int | None = None  # None: applies to every layer

    def applies(self, k: int) -> bool:
        return self.layer is None or self.layer == k

    def delta(self, bp: Backprop, G: np.ndarray | None):  # G is None at the output layer
        return None

    def bias_grad(self, bp: Backprop, G, delta):
        return None

    def weight_grad(self, bp: Backprop, delta):
        return None

    def upstream(self, bp: Backprop, delta, dW):
        return None

    def finish(self, bp: Backprop, grads: Params) -> Params:
        return grads


def backward(
    net: NetworkSpec,
    params: Params,
    X: np.ndarray,
    Y: np.ndarray,
    variants: tuple[Variant, ...] = (),
    cache: Cache | None = None,
    trace: dict | None = None,
) -> Params:
    """Gradients [(dW, db), ...] of ``loss``, with ``variants`` planted where they apply. ``trace``,
    when given, receives every intermediate: (k, "dA") the gradient reaching layer k's output,
    (k, "dZ") its pre-activation's, (k, "dW") and (k, "db")."""
    bp = Backprop(net, params, X, Y, cache or forward(net, params, X))
    L = len(net.layers)
    grads: list = [None] * L
    G = None  # dL/dA_k coming from above; None at the output layer

    def first(method, *args):
        for v in variants:
            if v.applies(bp.k):
                out = getattr(v, method)(bp, *args)
                if out is not None:
                    return out
        return None

    for k in range(L, 0, -1):
        bp.k = k
        W, b = params[k - 1]
        delta = first("delta", G)
        if delta is None:
            delta = bp.output_delta() if G is None else bp.delta_from(G, k)
        dW = first("weight_grad", delta)
        if dW is None:
            dW = bp.cache.A[k - 1].T @ delta + net.l2 * W
        db = first("bias_grad", G, delta)
        if db is None:
            db = delta if b.ndim == 2 else delta.sum(axis=0)  # a 2-D canonical bias is per example
        grads[k - 1] = (dW, db)
        if trace is not None:
            trace[(k, "dA")] = bp.output_grad() if G is None else G
            trace[(k, "dZ")], trace[(k, "dW")], trace[(k, "db")] = delta, dW, db
        if k > 1:
            G_next = first("upstream", delta, dW)
            G = delta @ W.T if G_next is None else G_next
    for v in variants:
        grads = v.finish(bp, grads)
    return grads


# ---------------------------------------------------------------- stacked numeric gradients
#
# The diagnosis and the check of the reference itself need the reference network's numeric
# gradient. Instead of one forward pass per perturbed entry, K perturbed parameter sets are
# evaluated at once, broadcast over a leading axis of length K. A perturbation of layer k's
# parameters changes nothing below layer k, and moving one entry of W_k (or b_k) moves one column
# of the pre-activation Z_k: so the stack starts at Z_k, (K, N, out_k), computed from the cached
# forward pass, and only the layers from k up run K times, as batched matrix products.

STACK_ELEMENTS = 1 << 21  # numbers per stacked pre-activation chunk (16 MB of float64)


def perturbed_losses(
    net: NetworkSpec,
    params: Params,
    X: np.ndarray,
    Y: np.ndarray,
    layer: int,
    role: str,
    indices: np.ndarray,
    steps: np.ndarray,
    cache: Cache | None = None,
) -> np.ndarray:
    """Loss of the network with entry ``indices[j]`` (flat, canonical shape) of layer ``layer``'s
    ``role`` ("W" or "b") moved by ``steps[j]``, for every j at once. Shapes: indices, steps (K,);
    returns (K,). Complex steps (i h) give complex losses: complex-step derivatives."""
    cache = cache or forward(net, params, X)
    W, b = params[layer - 1]
    Z, A_in = cache.Z[layer], cache.A[layer - 1]
    n, out = Z.shape
    indices = np.asarray(indices, dtype=np.intp)
    steps = np.asarray(steps)
    dtype = np.result_type(Z, steps)
    chunk = max(1, STACK_ELEMENTS // max(1, n * max(net.widths[layer:])))
    base_penalty = sum(np.sum(l2_penalty(net, Wk)) for Wk, _ in params) if net.l2 else 0.0
    values = np.empty(len(indices), dtype=np.result_type(dtype, np.float64))
    for lo in range(0, len(indices), chunk):
        ix, h = indices[lo:lo + chunk], steps[lo:lo + chunk]
        k = np.arange(len(ix))
        Zs = np.empty((len(ix), n, out), dtype=dtype)
        Zs[...] = Z
        if role == "W":
            i, j = np.divmod(ix, W.shape[1])
            Zs[k, :, j] += h[:, None] * A_in[:, i].T
        elif b.ndim == 2:  # one bias per example
            r, j = np.divmod(ix, out)
            Zs[k, r, j] += h
        else:
            Zs[k, :, ix] += h[:, None]
        value = _loss_from(net, params, Zs, Y, layer)
        if net.l2:
            value = value + base_penalty
            if role == "W":
                w = W.reshape(-1)[ix]
                value = value + l2_penalty(net, w + h) - l2_penalty(net, w)
        values[lo:lo + len(ix)] = value
    return values


def _loss_from(net: NetworkSpec, params: Params, Z: np.ndarray, Y: np.ndarray, layer: int) -> np.ndarray:
    """The loss (without L2) of a stack of pre-activations Z of layer ``layer``, (K, N, out) -> (K,)."""
    A = ACTIVATIONS[net.layers[layer - 1].activation].f(Z, net.layers[layer - 1].alpha)
    for (W, b), spec in zip(params[layer:], net.layers[layer:]):
        Z = A @ W + b
        A = ACTIVATIONS[spec.activation].f(Z, spec.alpha)
    return net.scale * LOSSES[net.loss].value(Z, A, Y, net.reduction)


def numeric_gradient(
    net: NetworkSpec,
    params: Params,
    X: np.ndarray,
    Y: np.ndarray,
    layer: int,
    role: str,
    eps: float = 1e-6,
    method: str = "central",
) -> np.ndarray:
    """The numeric gradient of the loss with respect to layer ``layer``'s ``role``, in that
    parameter's shape, from one stacked pass: central differences with relative steps, or
    complex-step derivatives (``method="complex"``, exact to rounding)."""
    x = params[layer - 1][0 if role == "W" else 1]
    idx = np.arange(x.size)
    cache = forward(net, params, X)
    if method == "complex":
        h = 1e-20 * np.maximum(1.0, np.abs(x.reshape(-1)))
        return (perturbed_losses(net, params, X, Y, layer, role, idx, 1j * h, cache).imag / h).reshape(x.shape)
    h = eps * np.maximum(1.0, np.abs(x.reshape(-1)))
    both = perturbed_losses(net, params, X, Y, layer, role, np.concatenate([idx, idx]),
                            np.concatenate([h, -h]), cache)
    return ((both[:x.size] - both[x.size:]) / (2 * h)).reshape(x.shape)
