"""Registry of models: ``build(name, **options)`` returns an ``nn.Module``.

Any user ``nn.Module`` works everywhere else too; these are the built-in ones the seeds use.
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import Registry, call_with_options
from ..rng import seeded
from .init import INITS, initialize
from .nets import MLP, DeepLinear, PolynomialRegression, SequenceModel, SigmoidNeuron

MODELS: Registry = Registry("model")


@MODELS.register("linear")
def linear(in_dim: int = 1, out_dim: int = 1, bias: bool = True) -> nn.Module:
    """Linear regression y = W x + b."""
    return nn.Linear(in_dim, out_dim, bias=bias)


@MODELS.register("sigmoid_neuron")
def sigmoid_neuron(in_dim: int = 1) -> nn.Module:
    """A single sigmoid neuron sigma(w.x + b) (outputs probabilities; pair with mse)."""
    return SigmoidNeuron(in_dim)


@MODELS.register("polynomial")
def polynomial(degree: int = 3, in_dim: int = 1, out_dim: int = 1) -> nn.Module:
    """Polynomial regression of a 1-D input: sum_k a_k x^k, k = 0..degree."""
    if in_dim != 1:
        raise ValueError(f"polynomial regression takes a single input feature (in_dim=1), got in_dim={in_dim}")
    return PolynomialRegression(degree, out_dim=out_dim)


@MODELS.register("mlp")
def mlp(in_dim: int = 2, hidden: list[int] | tuple[int, ...] = (32,), out_dim: int = 1,
        activation: str = "tanh", dropout: float = 0.0, batch_norm: bool = False, bias: bool = True) -> nn.Module:
    """Multi-layer perceptron (tanh/relu/sigmoid/gelu), optional dropout and batch norm."""
    return MLP(in_dim, list(hidden), out_dim, activation=activation, dropout=dropout, batch_norm=batch_norm, bias=bias)


@MODELS.register("deep_linear")
def deep_linear(widths: list[int] | tuple[int, ...] = (2, 2, 2)) -> nn.Module:
    """Deep linear network X = W_N ... W_1 (widths d_0..d_N, no biases)."""
    return DeepLinear(list(widths))


@MODELS.register("rnn")
def rnn(in_dim: int = 2, hidden: int = 32, out_dim: int = 1) -> nn.Module:
    """Vanilla tanh RNN over a sequence (N, T, in_dim); output read from the last hidden state."""
    return SequenceModel("rnn", in_dim, hidden, out_dim)


@MODELS.register("lstm")
def lstm(in_dim: int = 2, hidden: int = 32, out_dim: int = 1, forget_bias: float = 0.0) -> nn.Module:
    """LSTM over a sequence (N, T, in_dim); ``forget_bias`` initializes the forget-gate bias."""
    return SequenceModel("lstm", in_dim, hidden, out_dim, forget_bias=forget_bias)


def build(name: str, *, init: str = "default", init_scale: float | None = None, seed: int | None = 0, dtype: torch.dtype | None = None,
          **options) -> nn.Module:
    """Build a registered model with a seeded initialization.

    ``init``: one of ``INITS`` (default, xavier, kaiming, orthogonal, small); ``init_scale`` multiplies
    the weights after init (``small`` uses 1e-3 unless given). The global RNG state is not
    touched: the model is built inside ``losslab.rng.seeded(seed)``.
    """
    factory = MODELS.get(name)
    INITS.get(init)  # validate before building
    with seeded(seed):
        model = call_with_options("model", name, factory, options)
        initialize(model, init, scale=init_scale)
    if dtype is not None:
        model = model.to(dtype)
    return model


def build_for(name: str, data, **kwargs) -> nn.Module:
    """``build`` with ``in_dim``/``out_dim`` taken from ``data`` (a ``Splits``) when the model takes
    them and they are not given: a built-in model sized to a built-in dataset."""
    import inspect

    params = inspect.signature(MODELS.get(name)).parameters
    for key in ("in_dim", "out_dim"):
        if key in params and key not in kwargs:
            kwargs[key] = getattr(data, key)
    return build(name, **kwargs)


__all__ = ["MODELS", "INITS", "build", "build_for", "MLP", "DeepLinear", "SequenceModel", "PolynomialRegression", "SigmoidNeuron"]
