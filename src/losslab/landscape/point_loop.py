"""The per-point loop of the grid evaluator, at the cost of a naive loop, and when to choose it.

:class:`PointLoop` evaluates the points of a chunk one after another the way a naive loop does:
it writes each point's parameters into a private copy of the model (``copy_`` under no_grad) and
calls the module itself. ``torch.func.functional_call`` instead swaps every parameter and buffer
in and out of the module on each call (and looks up tied weights), which cost about 100 us per
call on the zoo's residual CNN and twice the forward time on a small MLP (measured, one thread:
299 vs 196 us and 39 vs 19 us per call); on a grid of thousands of small forwards that overhead
is what made losslab's loop slower than a naive one.

:func:`loop_is_faster` is the strategy dispatch for convolutional nets on a CPU. vmap runs a
convolution with per-point weights as one grouped convolution (``groups`` = points); oneDNN's
grouped kernels are far slower per point than one dense convolution per point when each group
has few channels (measured on the digits residual CNN, 11 channels, 1257 examples, one thread:
dense 2.3 ms per point; grouped, 2-16 points: 20-31 ms per point in NCHW, 3.1-24 ms channels-last;
see benchmarks/RESULTS.md), so ``strategy="auto"`` takes the loop there without a trial.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..adapters import select_output

_CONV = (nn.modules.conv._ConvNd,)


def loop_is_faster(template: nn.Module, device: torch.device) -> bool:
    """True when the per-point loop is known to beat vmap: a model with a convolution, on a CPU."""
    return device.type == "cpu" and any(isinstance(m, _CONV) for m in template.modules())


class PointLoop:
    """Point-by-point forwards on a private copy of the template in the evaluation dtype.

    The copy holds every static tensor (frozen parameters, buffers: cast like the evaluator's
    ``static``); only the trainable parameters named in ``names`` are overwritten per point. Tied
    parameters are one tensor in the copy too, so writing either name writes both (same value)."""

    def __init__(self, template: nn.Module, names, dtype: torch.dtype, output):
        with torch.no_grad():
            self.module = copy.deepcopy(template).to(dtype)
        self.module.eval()
        named = dict(self.module.named_parameters(remove_duplicate=False))
        self.targets = [(n, named[n]) for n in names]
        self.output = output

    def outputs(self, params_b: dict, X: torch.Tensor) -> torch.Tensor:
        """Stacked outputs (m, N, ...) of the m points whose parameters are ``params_b`` (each (m, ...))."""
        m = next(iter(params_b.values())).shape[0]
        outs = []
        with torch.no_grad():
            for i in range(m):
                for n, p in self.targets:
                    p.copy_(params_b[n][i])
                outs.append(select_output(self.module(X), self.output))
        return torch.stack(outs)
