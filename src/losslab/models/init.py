"""Weight initializations applied in place to a freshly built model."""
from __future__ import annotations

from torch import nn
import torch

from ..registry import Registry

INITS: Registry = Registry("initialization")


def _weights(model: nn.Module):
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            yield name, p


INITS.register("default", lambda model: None, doc="PyTorch's own layer defaults")
INITS.register("xavier", lambda model: [nn.init.xavier_normal_(p) for _, p in _weights(model)],
               doc="Glorot normal for weights")
INITS.register("kaiming", lambda model: [nn.init.kaiming_normal_(p, nonlinearity="relu") for _, p in _weights(model)],
               doc="He normal (fan_in, relu gain) for weights")
INITS.register("orthogonal", lambda model: [nn.init.orthogonal_(p) for _, p in _weights(model)],
               doc="(semi-)orthogonal weight matrices")
INITS.register("small", lambda model: [nn.init.normal_(p, std=1.0) for _, p in _weights(model)],
               doc="N(0, 1) weights times init_scale (1e-3 unless given): the small-init regime")


def initialize(model: nn.Module, init: str = "default", *, scale: float | None = None) -> nn.Module:
    """Apply ``init`` to every weight matrix (ndim >= 2), then multiply weights by ``scale``.
    Biases and sequence-model forget-gate biases keep their defaults."""
    INITS.get(init)(model)
    if scale is None:
        scale = 1e-3 if init == "small" else 1.0
    if scale != 1.0:
        with torch.no_grad():
            for _, p in _weights(model):
                p.mul_(scale)
    if hasattr(model, "reset_forget_bias"):
        model.reset_forget_bias()
    return model
