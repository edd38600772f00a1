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

On a CPU the loop may also run each point's forward in a few equal tiles of examples: oneDNN's
convolutions were 1.3-1.7x faster on tiles of ~420 digits than on all 1257 at once (the zoo's residual
CNN, 1 and 2 threads, bit-identical outputs), while an LSTM was slower in tiles. So the first point of a
batch big enough for tiles is run both ways (each twice, the second timed); tiles are kept only when their
outputs equal the whole batch's (a model that mixes examples, or puts them off dim 0, gives different
ones) and they were at least 10 % faster.
"""
from __future__ import annotations

import copy
import math
import time

import torch
from torch import nn

from ..adapters import select_output

_CONV = (nn.modules.conv._ConvNd,)
# tiles hold about this many bytes of module outputs: 3 tiles of 419 of the zoo CNN's 1257 digits (11.3 KB of
# outputs each). Its 11x11 surface, median of 4 interleaved runs, 1 thread: whole 2.60 s, 2 tiles 1.67, 3 tiles 1.56,
# 4 tiles 1.59, 6 tiles 1.76; 2 threads: 1.44, 1.20, 1.08, 1.33, 1.45 (benchmarks/RESULTS.md, 2026-12-07)
LOOP_TILE_BYTES = 5 * 2 ** 20


def loop_is_faster(template: nn.Module, device: torch.device) -> bool:
    """True when the per-point loop is known to beat vmap: a model with a convolution, on a CPU."""
    return device.type == "cpu" and any(isinstance(m, _CONV) for m in template.modules())


class PointLoop:
    """Point-by-point forwards on a private copy of the template in the evaluation dtype.

    The copy holds every static tensor (frozen parameters, buffers: cast like the evaluator's
    ``static``); only the trainable parameters named in ``names`` are overwritten per point. Tied
    parameters are one tensor in the copy too, so writing either name writes both (same value)."""

    def __init__(self, template: nn.Module, names, dtype: torch.dtype, output, act_bytes: float | None = None):
        with torch.no_grad():
            self.module = copy.deepcopy(template).to(dtype)
        self.module.eval()
        named = dict(self.module.named_parameters(remove_duplicate=False))
        self.targets = [(n, named[n]) for n in names]
        self.output = output
        self.act_bytes = act_bytes  # module-output bytes per example (the evaluator's probe); None: no tiles
        self.tiles: dict[int, int] = {}  # batch size -> tiles chosen by the trial (1: whole batch)
        self.out_bytes = 0  # bytes of one point's outputs on the largest batch seen (sizes the evaluator's chunks)

    def _forward(self, X: torch.Tensor, n_tiles: int) -> torch.Tensor:
        if n_tiles <= 1:
            return select_output(self.module(X), self.output)
        return torch.cat([select_output(self.module(x), self.output) for x in torch.tensor_split(X, n_tiles)])

    def _trial(self, X: torch.Tensor) -> tuple[int, torch.Tensor]:
        """(tiles to use for batches of this size, the outputs of the current point)."""
        n = int(X.shape[0])
        k = math.ceil(n * self.act_bytes / LOOP_TILE_BYTES) if self.act_bytes else 1
        if X.device.type != "cpu" or k < 2 or n < 2 * k:
            return 1, self._forward(X, 1)
        whole = self._forward(X, 1)
        t0 = time.perf_counter()
        self._forward(X, 1)
        t_whole = time.perf_counter() - t0
        tiled = self._forward(X, k)
        t0 = time.perf_counter()
        self._forward(X, k)
        t_tiled = time.perf_counter() - t0
        rtol = 1e-10 if whole.dtype == torch.float64 else 1e-5
        same = (tiled.shape == whole.shape and tiled.dtype == whole.dtype
                and torch.allclose(tiled, whole, rtol=rtol, atol=rtol * float(whole.abs().max())))
        return (k if same and t_tiled < 0.9 * t_whole else 1), whole

    def outputs(self, params_b: dict, X: torch.Tensor) -> torch.Tensor:
        """Stacked outputs (m, N, ...) of the m points whose parameters are ``params_b`` (each (m, ...))."""
        m = next(iter(params_b.values())).shape[0]
        outs, n_ex = [], int(X.shape[0])
        with torch.no_grad():
            for i in range(m):
                for n, p in self.targets:
                    p.copy_(params_b[n][i])
                if n_ex not in self.tiles:
                    self.tiles[n_ex], out = self._trial(X)
                    outs.append(out)
                else:
                    outs.append(self._forward(X, self.tiles[n_ex]))
        self.out_bytes = max(self.out_bytes, outs[0].numel() * outs[0].element_size()) if outs else self.out_bytes
        return torch.stack(outs)
