"""Batched evaluation of the loss at many points theta(c) = base + c @ directions.

The core is :func:`evaluate_points`, a pure function of (model, data, loss, base,
directions, coords) -> per-point full-data loss (and accuracy): a distributed layer can
shard a grid's coordinates over workers and concatenate the answers.

How it is fast:

- many grid points per kernel: ``torch.func.functional_call`` + ``vmap`` over a chunk of
  points (a leading batch dimension on every parameter), the chunk size chosen from a
  memory budget (activation bytes per point measured with forward hooks on one example
  slice; on a CPU also capped so a chunk's activations stay near 32 MiB, since CPU
  evaluation is bound by memory traffic); an out-of-memory error halves the chunk and
  retries, so a big grid never crashes; the loss is computed outside vmap on the stacked
  outputs (one fused kernel);
- the first layer is affine in the grid coordinates (``fast_paths.py``): for ``nn.Sequential`` and losslab's
  ``MLP`` starting with ``nn.Linear``, ``X (W0 + sum_j c_j D_j)^T + (b0 + sum_j c_j d_j)
  = Z0 + sum_j c_j Z_j`` with ``Z0 = X W0^T + b0`` and ``Z_j = X D_j^T + d_j`` computed once
  per data batch (k + 1 matmuls instead of one per grid point);
- modules without a vmap batching rule (``nn.LSTMCell``) fall back to a per-point loop,
  detected on the first chunk (``strategy="auto"``); so do modules that vmap runs example by
  example through functorch's fallback (``nn.TransformerEncoderLayer``'s fused eval kernel: a
  loop in disguise, slower than ours), detected from functorch's warning on the first chunk.

The data are streamed in batches; the loss of a point is ``sum over batches of
sum_n loss_n / N`` (N = total examples), which equals the full-data mean loss exactly
whatever the batch sizes.

Batch norm (``bn=``):
- ``"eval"`` (default): the whole model in eval mode, using the model's running statistics.
- ``"recompute"``: at every point, the running statistics are recomputed as
  ``torch.optim.swa_utils.update_bn`` would on a copy of the model at that point: reset,
  then one pass over the data batches with the batch-norm modules in train mode (every
  other module in eval mode: dropout off), each BN's running mean and (unbiased) variance
  being the equal-weight average over batches of the batch statistics; the loss is then
  evaluated in eval mode with those statistics. With one full-data batch these are the
  full-data mean and unbiased variance of each BN input.

The caller's model is never touched: a private deep copy is the template of every
functional call, and all its parameters and buffers are passed explicitly.
"""
from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..adapters import check_batch_keys, check_output_spec, select_output
from ..data.types import Data, Splits, iterate_batches
from ..losses import Loss, accuracy, get_loss
from ..params import param_spec
from .checks import check_count, check_device, check_dtype, check_plane, default_memory_budget, is_oom
from .fast_paths import FAST_CPU_CHUNK_BYTES, AffineFirstLayer, MLPFastPath
from .point_loop import PointLoop, loop_is_faster
from .precision import PRECISIONS, precision_context

BN_MODES = ("eval", "recompute")
# functorch's warning when vmap runs an op example by example (BatchedFallback.cpp)
_VMAP_FALLBACK = "have not yet implemented the batching rule"
CPU_CHUNK_BYTES = 32 * 2 ** 20  # target activation bytes of one chunk on a CPU (module outputs, one data batch)
# the per-point loop stacks only each point's final outputs, so once it runs, chunks grow to about this many
# bytes of them (at most LOOP_MAX_CHUNK points): each chunk costs a few fixed ops (its parameters, the fused
# loss); the zoo's residual CNN, 11x11 grid, chunks of 2 -> 16 points: 0.420 -> 0.372 s, median of 8 (RESULTS.md)
LOOP_CHUNK_BYTES = 2 ** 20
LOOP_MAX_CHUNK = 64
STRATEGIES = ("auto", "vmap", "loop")



@dataclass(frozen=True)
class PointsResult:
    """Per-point full-data loss (M,) and accuracy (M,) or None (regression), plus how it was computed."""

    loss: torch.Tensor
    accuracy: torch.Tensor | None
    n_examples: int
    strategy: str
    chunk_size: int
    affine_first_layer: bool


def _mix64(h: torch.Tensor) -> torch.Tensor:
    """A 64-bit integer mixer (splitmix64 finalizer, wrapping int64 arithmetic, logical shifts)."""
    h = h ^ ((h >> 30) & ((1 << 34) - 1))
    h = h * -4658895280553007687  # 0xbf58476d1ce4e5b9 as a signed int64
    h = h ^ ((h >> 27) & ((1 << 37) - 1))
    h = h * -7723592293110705685  # 0x94d049bb133111eb
    return h ^ ((h >> 31) & ((1 << 33) - 1))


def _coerce_batch(X, y):
    """A streamed batch as tensors (numpy arrays converted), else a clear TypeError."""
    from ..validate import as_tensor_pair

    X, y = as_tensor_pair(X, y)
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"each batch must be an (X, y) pair of tensors or numpy arrays, got "
                        f"({type(X).__name__}, {type(y).__name__})")
    return X, y


def _materialize(data, batch_keys=None) -> tuple[list | object, bool]:
    """Batches must be iterable several times (once per chunk). Tensors/Data are; a DataLoader
    is; a one-shot iterator (generator) is read into a list. Returns (source, is_tensor_pair).
    A pair of numpy arrays becomes a pair of tensors; one dict batch becomes its (X, y) pair."""
    from collections.abc import Mapping

    from ..adapters import split_batch
    from ..validate import as_tensors

    if isinstance(data, Mapping):
        data = tuple(split_batch(data, batch_keys))
    data = as_tensors(data)
    if isinstance(data, (Data, Splits)) or (isinstance(data, (tuple, list)) and len(data) == 2
                                            and all(isinstance(t, torch.Tensor) for t in data)
                                            and data[0].dim() > 0 and data[0].shape[0] == data[1].shape[0]):
        return data, True
    if isinstance(data, Iterator):  # a generator: single pass
        return list(iterate_batches(data, batch_keys=batch_keys)), False
    if not isinstance(data, Iterable):
        raise TypeError(f"data must be (X, y) tensors, a Data/Splits, or an iterable of (X, y) batches "
                        f"(e.g. a DataLoader); got {type(data).__name__}")
    return data, False


class Evaluator:
    """Prepared state for evaluating many chunks of points of one (model, data, loss, plane).

    Build once, call :meth:`run` for each chunk of coordinates. ``evaluate_points`` is the
    one-shot functional wrapper.
    """

    def __init__(self, model: nn.Module, data, loss, base: torch.Tensor, directions: torch.Tensor, *,
                 batch_size: int | None = None, bn: str = "eval", chunk_size: int | None = None,
                 memory_budget: int | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None, strategy: str = "auto", affine: bool | None = None,
                 precision: str = "fp32", output=None, batch_keys=None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if bn not in BN_MODES:
            raise ValueError(f"bn must be one of {BN_MODES}, got {bn!r}")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.precision = PRECISIONS.get(precision)
        self.loss: Loss = get_loss(loss)
        self.output = check_output_spec(output)
        self.batch_keys = check_batch_keys(batch_keys)
        batch_size = check_count(batch_size, "batch_size")
        chunk_size = check_count(chunk_size, "chunk_size")
        if memory_budget is not None and (isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, float))
                                          or not memory_budget > 0 or memory_budget == float("inf")):
            raise ValueError(f"memory_budget must be a positive number of bytes or None (automatic), got "
                             f"{memory_budget!r}")
        from ..validate import check_has_params

        check_has_params(model)
        self.spec = param_spec(model)
        if device is None:
            device = self.spec.device
        self.device = check_device(device)
        self.dtype = check_dtype(dtype) or self.spec.dtype
        if not self.dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating type, got {self.dtype}")
        if self.precision in ("bf16", "tf32") and self.dtype != torch.float32:
            raise ValueError(f"precision {self.precision!r} needs dtype float32, got "
                             f"{str(self.dtype).replace('torch.', '')}; use precision='fp32' with this dtype")
        directions = torch.as_tensor(directions)
        if directions.dim() == 1:
            directions = directions.unsqueeze(0)
        base = torch.as_tensor(base).reshape(-1)
        if base.shape[0] != self.spec.size or directions.shape[1] != self.spec.size:
            raise ValueError(f"base {tuple(base.shape)} and directions {tuple(directions.shape)} must have "
                             f"{self.spec.size} entries (the model's trainable parameters)")
        check_plane(base, directions)
        self.base = base.detach().to(self.device, self.dtype)
        self.dirs = directions.detach().to(self.device, self.dtype)  # (k, P)
        self.k = int(self.dirs.shape[0])
        self.bn = bn
        self.strategy = strategy
        # a private template: modes and BN momentum are set on the copy, never on the caller's model
        with torch.no_grad():
            self.template = copy.deepcopy(model).to(device=self.device)
        self.template.eval()
        self.bn_modules = {n: m for n, m in self.template.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
        trainable = set(self.spec.names)
        static = {}
        for n, p in self.template.named_parameters():
            if n not in trainable:
                static[n] = p.detach().to(self.dtype)
        for n, b in self.template.named_buffers():
            static[n] = b.detach().to(self.dtype) if b.is_floating_point() else b.detach()
        self.static = static
        self.bn_buffers = [n for n in static if any(n.startswith(f"{m}.") for m in self.bn_modules)
                           and n.rsplit(".", 1)[1] in ("running_mean", "running_var", "num_batches_tracked")]
        if bn == "recompute":
            for m in self.bn_modules.values():
                m.momentum = 1.0  # running stat <- this batch's statistic; averaged over batches by us
        self.data, self.tensor_data = _materialize(data, self.batch_keys)
        if self.tensor_data:
            d0 = self.data if not isinstance(self.data, Splits) else self.data.train
            if int(d0[0].shape[0]) == 0:
                raise ValueError(f"the data have no examples (X has shape {tuple(d0[0].shape)}); pass at least one "
                                 f"(x, y) row")
        self._stream_checked = False  # streamed batches are finite-checked on the first full pass
        self.n_examples: int | None = None
        self.memory_budget = int(memory_budget) if memory_budget else default_memory_budget(self.device)
        self.batch_size = batch_size
        self.affine = None
        if affine is not False and bn == "eval" and self.output is None:
            self.affine = AffineFirstLayer.plan(self.template, self.spec)
        if affine is True and self.affine is None:
            raise ValueError("affine=True needs an nn.Sequential (or losslab MLP) whose first module is a trainable "
                             "nn.Linear, bn='eval' and output=None")
        # the MLP fast path (Linear + elementwise modules): used unless affine=False or strategy="loop"
        self.fast = None
        if affine is not False and bn == "eval" and strategy != "loop" and self.output is None:
            self.fast = MLPFastPath.plan(self.template, self.spec)
        self._fast_stacks: list | None = None
        # fused cross-entropy only for the registry's own loss (no options): same formula as F.cross_entropy
        self._fused_ce = (self.loss.name == "cross_entropy" and not self.loss.options
                          and getattr(self.loss.per_example, "__module__", None) == get_loss.__module__)
        self._z_cache: dict = {}
        self._prepared: tuple | None = None
        self._probe_bytes: float | None = None
        self.chunk_size = chunk_size
        self._chunk_fixed = chunk_size is not None  # the caller's chunk size is kept as given
        self.max_chunk = 4096
        self._vmap_ok: bool | None = {"vmap": True, "loop": False}.get(strategy)
        if strategy == "auto" and self.fast is None and loop_is_faster(self.template, self.device):
            self._vmap_ok = False  # convolutions on a CPU: the loop, without a vmap trial (point_loop.py)
        self._loop: PointLoop | None = None

    # -- data ------------------------------------------------------------------------------
    def _prep(self, X, y):
        X = X.to(self.device)
        if X.is_floating_point():
            X = X.to(self.dtype)
        y = y.to(self.device)
        if y.is_floating_point():
            y = y.to(self.dtype)
        return X, y

    def batches(self):
        if self.tensor_data:  # prepared (device, dtype) once and kept: no copy per chunk
            if self._prepared is None or self._prepared[0] != self.batch_size:
                if not self._stream_checked:
                    from ..validate import check_finite

                    check_finite(*next(iterate_batches(self.data)), what="data")
                    self._stream_checked = True
                self._prepared = (self.batch_size, [self._prep(X, y) for X, y in iterate_batches(self.data, self.batch_size)])
            yield from ((i, X, y) for i, (X, y) in enumerate(self._prepared[1]))
        else:
            from ..validate import check_finite

            check = not self._stream_checked
            for i, (X, y) in enumerate(iterate_batches(self.data, batch_keys=self.batch_keys)):
                X, y = _coerce_batch(X, y)
                if check:
                    check_finite(X, y, what=f"data batch {i}")
                yield (i, *self._prep(X, y))
            if check:
                self._stream_checked = True

    def _first_batch(self):
        """(i, X, y) of the first batch, or a clear error when the data yield none."""
        for b in self.batches():
            return b
        raise ValueError("the data yielded no batches (an empty list, a generator that was already consumed -- "
                         "generators can be read once -- or a DataLoader over an empty dataset); pass (X, y) "
                         "tensors or a fresh DataLoader")

    def data_fingerprint(self) -> str:
        """An order-independent summary of streamed data, computed in one pass (which also runs the
        finite check): the number of examples, the per-example shapes and dtypes, and an exact
        multiset hash of the (x, y) rows (a sum mod 2^64 of a per-row integer hash of the values'
        bits), so a shuffling DataLoader gives the same fingerprint on every pass and any change
        to a value, a label, or which x goes with which y gives another."""
        n, acc, shapes = 0, 0, None
        gen = torch.Generator().manual_seed(0x5EED)
        weights: dict[int, torch.Tensor] = {}

        def row_hash(t: torch.Tensor, salt: int) -> torch.Tensor:
            t = t.detach().reshape(t.shape[0], -1).cpu()
            bits = t.double().view(torch.int64) if t.is_floating_point() else t.to(torch.int64)
            c = bits.shape[1]
            if (salt, c) not in weights:
                weights[(salt, c)] = torch.randint(-2 ** 62, 2 ** 62, (c,), generator=gen, dtype=torch.int64) | 1
            return _mix64((bits * weights[(salt, c)]).sum(1))

        for _, X, y in self.batches():
            if X.shape[0] != y.shape[0]:
                raise ValueError(f"a batch has X with {X.shape[0]} rows and y with {y.shape[0]}: they must match")
            shapes = shapes or (tuple(X.shape[1:]), tuple(y.shape[1:]), str(X.dtype), str(y.dtype))
            h = _mix64(row_hash(X, 1) + _mix64(row_hash(y, 2) ^ 0x2545F4914F6CDD1D))
            acc = (acc + int(h.sum())) % 2 ** 64
            n += int(X.shape[0])
        return f"n={n};shapes={shapes};rows={acc:016x}"

    def _activation_bytes_per_example(self) -> float:
        """Bytes of module outputs for one point and one example, measured by forward hooks."""
        if self._probe_bytes is not None:
            return self._probe_bytes
        _, X, y = self._first_batch()
        if X.shape[0] == 0:
            raise ValueError(f"the first data batch has no examples (X has shape {tuple(X.shape)})")
        Xs = X[: min(16, X.shape[0])]
        total = [0]

        def hook(_m, _i, out):
            for t in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(t, torch.Tensor):
                    total[0] += t.numel() * t.element_size()

        hs = [m.register_forward_hook(hook) for m in self.template.modules()]
        try:
            with torch.no_grad():
                functional_call(self.template, {**self.spec.unflatten(self.base), **self.static}, (Xs,))
        finally:
            for h in hs:
                h.remove()
        self._probe_bytes = max(total[0], Xs.numel() * Xs.element_size()) / Xs.shape[0]
        return self._probe_bytes

    def plan_chunks(self, n_points: int) -> int:
        """Chunk size (points per vmap call): budget / (bytes per point), with a safety factor 3
        for intermediates inside modules and the loss, at most 4096 and at least 1."""
        if self.chunk_size is not None:
            return max(1, int(self.chunk_size))
        per_example = self._activation_bytes_per_example() * 3
        if self.tensor_data and self.batch_size is None:
            d = self.data if not isinstance(self.data, Splits) else self.data.train
            n = int(d[0].shape[0])
            # ensure at least 8 points fit with the whole data as one batch, else stream the data
            if per_example * n * 8 > self.memory_budget:
                self.batch_size = max(1, int(self.memory_budget / (per_example * 8)))
                self._z_cache.clear()
            batch_n = min(n, self.batch_size or n)
        else:
            _, X, _ = self._first_batch()
            batch_n = int(X.shape[0])
        per_point = per_example * batch_n + self.spec.size * self.dirs.element_size() * 2
        size = int(self.memory_budget // per_point)
        if self.fast is not None and self.device.type == "cpu":
            # the fast path's widest intermediate: a layer's output (N, out) per point;
            # chunks of about FAST_CPU_CHUNK_BYTES of it (cache-sized; see benchmarks/RESULTS.md)
            lin = [st[0] for st in self._fast_prepare() if st is not None]  # (1+k, out, in) per Linear
            widest = max(W.shape[1] for W in lin)
            size = min(size, int(FAST_CPU_CHUNK_BYTES // (batch_n * widest * self.dirs.element_size())))
        elif self.device.type == "cpu":
            # on a CPU the evaluation is bound by memory traffic: chunks whose activations stay
            # near cache size (CPU_CHUNK_BYTES) beat huge chunks (measured: digits MLP 64-32-10,
            # 64 points/chunk 1.9x faster than the whole grid; 64-512-512-10, 4 points 1.5x faster than 16)
            size = min(size, int(CPU_CHUNK_BYTES // (per_point / 3)))
        self.chunk_size = max(1, min(self.max_chunk, size))
        return self.chunk_size

    # -- one chunk ---------------------------------------------------------------------------
    def _forward_sum(self, params_b: dict, static: dict, X, y, batched: bool, module=None, extra_in=None,
                     check: bool = True):
        """Sum over the batch of per-example losses (and correct predictions) for a chunk of points.

        Only the forward pass is vmapped; the loss is then computed on the stacked outputs
        (m, N, ...) flattened to (m N, ...) examples, one fused kernel instead of a vmapped
        decomposition (per-example losses treat examples independently, so this is exact)."""
        module = module if module is not None else self.template

        output = self.output

        def f(p, s, xin):
            return select_output(functional_call(module, {**p, **s}, (xin,), strict=False, tie_weights=True), output)

        xin = X if extra_in is None else extra_in
        if not batched and module is self.template and extra_in is None and static is self.static:
            if self._loop is None:  # the naive loop's way: parameters written into a private copy
                self._loop = PointLoop(self.template, self.spec.names, self.dtype, output,
                                       act_bytes=self._activation_bytes_per_example())
            return self._loss_sums(self._loop.outputs(params_b, X), y, check=check)
        if batched:
            out = vmap(f, in_dims=(0, None, None if extra_in is None else 0))(params_b, static, xin)
        else:
            m = next(iter(params_b.values())).shape[0]
            out = torch.stack([f({n: v[i] for n, v in params_b.items()}, static, xin if extra_in is None else xin[i])
                               for i in range(m)])
        return self._loss_sums(out, y, check=check)

    def _fused_ce_sums(self, out: torch.Tensor, y: torch.Tensor, cdim: int, check: bool = True
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy and correct-prediction sums per point for logits (m, N, C) (``cdim`` 2) or
        (m, C, N) (``cdim`` 1): loss_n = logsumexp(f_n) - f_n[y_n], what F.cross_entropy computes.
        ``check=False`` skips the label validation (for a batch already validated)."""
        m, n = out.shape[0], out.shape[3 - cdim]
        # validates shapes/labels with the loss's own checks (one point), then the fused form
        if check:
            self.loss.per_example(out[0] if cdim == 2 else out[0].T, y)
        yl = y.reshape(-1).long()
        idx = yl.view(1, n, 1).expand(m, n, 1) if cdim == 2 else yl.view(1, 1, n).expand(m, 1, n)
        picked = out.gather(cdim, idx).squeeze(cdim)
        mx = out.amax(cdim)
        se = torch.sub(out, mx.unsqueeze(cdim)).exp_().sum(cdim)  # sum_j exp(f_j - max) >= 1
        ls = (se.log() + mx - picked).sum(1)  # logsumexp - f_y
        # correct iff argmax == y: with a unique maximum that is picked == max; a tied maximum adds two
        # exact exp(0) = 1 terms, so only rows with se >= 2 can be tied (exact in floating point: adding
        # non-negative terms never rounds below 2); those are settled by argmax itself (first index wins)
        corr = picked == mx
        maybe = corr & (se >= 2)
        if bool(maybe.any()):
            rows = out if cdim == 2 else out.transpose(1, 2)
            corr[maybe] = rows[maybe].argmax(1) == yl.expand(m, n)[maybe]
        return ls, corr.to(out.dtype).sum(1)

    def _loss_sums(self, out: torch.Tensor, y: torch.Tensor, check: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-point sums over examples of the loss and of correct predictions, for outputs (m, N, ...).
        ``check=False``: the fused cross-entropy skips its label validation (a kept batch already passed it)."""
        m, n = out.shape[0], out.shape[1]
        if self._fused_ce and out.dim() == 3:
            return self._fused_ce_sums(out, y, 2, check=check)
        if self.loss.custom:  # a user's callable may return a batch mean: evaluated per point
            per = torch.stack([self.loss.per_example(out[i], y) for i in range(m)])  # (m, N)
            a = [accuracy(out[i], y, self.loss) for i in range(m)]
            cs = torch.stack([t.sum() for t in a]) if a and a[0] is not None else torch.zeros_like(per[:, 0])
            return per.sum(1), cs
        flat = out.reshape(m * n, *out.shape[2:])
        yy = y.unsqueeze(0).expand(m, *y.shape).reshape(m * n, *y.shape[1:])
        per = self.loss.per_example(flat, yy)
        if per.shape != (m * n,):
            raise ValueError(f"loss {self.loss.name!r} returned shape {tuple(per.shape)}, expected ({m * n},) "
                             f"per-example losses")
        ls = per.reshape(m, n).sum(1)
        a = accuracy(flat, yy, self.loss)
        cs = a.reshape(m, n).sum(1) if a is not None else torch.zeros_like(ls)
        return ls, cs

    def _recompute_stats(self, params_b: dict, m: int, batched: bool) -> dict:
        """Per-point BN statistics: average over data batches of each batch's mean/unbiased var."""
        sums = {n: torch.zeros((m, *self.static[n].shape), dtype=self.dtype, device=self.device)
                for n in self.bn_buffers if not n.endswith("num_batches_tracked")}
        nb = 0
        for mod in self.bn_modules.values():
            mod.train()
        try:
            for _, X, y in self.batches():
                bufs = {n: self.static[n].expand(m, *self.static[n].shape).clone() for n in self.bn_buffers}
                s = {n: v for n, v in self.static.items() if n not in bufs}
                if batched:
                    def g(p, b):
                        functional_call(self.template, {**p, **b, **s}, (X,), strict=False, tie_weights=True)
                        return b
                    out = vmap(g)(params_b, bufs)
                else:
                    out = {n: torch.empty_like(v) for n, v in bufs.items()}
                    for i in range(m):
                        b = {n: v[i].clone() for n, v in bufs.items()}
                        functional_call(self.template, {**{n: v[i] for n, v in params_b.items()}, **b, **s}, (X,),
                                        strict=False, tie_weights=True)
                        for n in b:
                            out[n][i] = b[n]
                for n in sums:
                    sums[n] += out[n]
                nb += 1
        finally:
            for mod in self.bn_modules.values():
                mod.eval()
        return {n: v / nb for n, v in sums.items()}

    def _run(self, coords: torch.Tensor, batched: bool) -> tuple[torch.Tensor, torch.Tensor]:
        m = coords.shape[0]
        if self.fast is None:
            theta = self.base + coords @ self.dirs  # (m, P)
            params_b = self.spec.unflatten(theta)  # each (m, *shape)
        loss_sum = torch.zeros(m, dtype=self.dtype, device=self.device)
        corr_sum = torch.zeros(m, dtype=self.dtype, device=self.device)
        n_total = 0
        if self.fast is not None:
            stacks = self._fast_prepare()
            caug = torch.cat([torch.ones_like(coords[:, :1]), coords], 1)  # (m, 1+k): c_0 = 1 for the base
            for i, X, y in self.batches():
                Z = self._z_cache.get(("fast", i))
                if Z is None:
                    Z = self.fast.first(X, stacks)
                    if self.tensor_data:
                        self._z_cache[("fast", i)] = Z
                if self._fused_ce and y.dim() == 1:  # class-major logits for the fused cross-entropy
                    out = self.fast.forward(caug, Z, stacks, int(X.shape[0]), class_major=True)
                    # labels of a kept tensor batch are validated once (the check was ~2 % of case b's time)
                    ls, cs = self._fused_ce_sums(out, y, 1, check=self._labels_unchecked(i))
                    self._labels_passed(i)
                else:
                    ls, cs = self._loss_sums(self.fast.forward(caug, Z, stacks, int(X.shape[0])), y,
                                             check=self._labels_unchecked(i))
                    self._labels_passed(i)
                loss_sum += ls
                corr_sum += cs
                n_total += int(X.shape[0])
        elif self.affine is not None:
            A = self.affine
            rest_p = {A.rest_name(n): v for n, v in params_b.items() if A.rest_name(n) is not None}
            rest_s = {A.rest_name(n): v for n, v in self.static.items() if A.rest_name(n) is not None}
            for i, X, y in self.batches():
                Zs = self._z_cache.get(i)
                if Zs is None:
                    Zs = self._first_layer(X)
                    if self.tensor_data:
                        self._z_cache[i] = Zs
                Z0, Zd = Zs  # (N, H), (k, N, H)
                n, h = Z0.shape
                # Z = Z0 + sum_j c_j Z_j for every point in one BLAS call (beta = 1): (m, N, H)
                Z = torch.addmm(Z0.reshape(1, -1), coords, Zd.reshape(self.k, -1)).reshape(-1, n, h)
                ls, cs = self._forward_sum(rest_p, rest_s, X, y, batched, module=A.rest, extra_in=Z,
                                           check=self._labels_unchecked(i))
                self._labels_passed(i)
                loss_sum += ls
                corr_sum += cs
                n_total += int(X.shape[0])
        else:
            static = self.static
            if self.bn == "recompute" and self.bn_buffers:
                stats = self._recompute_stats(params_b, m, batched)
                static = {n: v for n, v in self.static.items() if n not in stats}
                params_b = {**params_b, **stats}  # batched statistics ride along with the parameters
            for i, X, y in self.batches():
                ls, cs = self._forward_sum(params_b, static, X, y, batched, check=self._labels_unchecked(i))
                self._labels_passed(i)
                loss_sum += ls
                corr_sum += cs
                n_total += int(X.shape[0])
        if n_total == 0:
            raise ValueError("the data yielded no examples")
        self.n_examples = n_total
        return loss_sum / n_total, corr_sum / n_total

    def _labels_unchecked(self, i: int) -> bool:
        """True until kept tensor batch ``i`` has passed the fused cross-entropy's label validation once
        (always True for streamed batches): a kept batch is the same tensor on every chunk (the check was
        ~2 % of case b's time, and ~0.3 ms per chunk of 2 points on the zoo's residual CNN)."""
        return not self.tensor_data or ("ce_ok", i) not in self._z_cache

    def _labels_passed(self, i: int) -> None:
        if self.tensor_data:
            self._z_cache[("ce_ok", i)] = True

    def _fast_prepare(self) -> list:
        if self._fast_stacks is None:
            self._fast_stacks = self.fast.prepare(self.spec, self.base, self.dirs)
        return self._fast_stacks

    def _first_layer(self, X):
        A = self.affine
        Xf = A.pre(X)
        P = self.spec.unflatten(self.base)
        D = self.spec.unflatten(self.dirs)  # (k, ...)
        W0 = P[A.first_w]
        Z0 = Xf @ W0.T
        Zd = torch.einsum("nd,khd->knh", Xf, D[A.first_w])
        if A.first_b is not None:
            Z0 = Z0 + P[A.first_b]
            Zd = Zd + D[A.first_b].unsqueeze(1)
        return Z0, Zd

    def run(self, coords) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Loss (m,) and accuracy (m,) or None for the points at ``coords`` (m, k), on the CPU."""
        coords = torch.as_tensor(coords, dtype=self.dtype, device=self.device)
        if coords.dim() == 1 and self.k == 1:
            coords = coords.unsqueeze(1)
        if coords.dim() != 2 or coords.shape[1] != self.k:
            raise ValueError(f"coords must be (M, {self.k}), got {tuple(coords.shape)}")
        with torch.no_grad(), precision_context(self.precision, self.device):
            if self.fast is not None:  # batched over points without vmap
                l, a = self._run(coords, True)
                self._vmap_ok = True
            elif self._vmap_ok is None:  # auto: try vmap on this chunk, fall back to a loop if unsupported
                try:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        l, a = self._run(coords, True)
                    # vmap ran, but through functorch's per-example fallback (no batching rule for an op, e.g.
                    # nn.TransformerEncoderLayer's fused eval kernel): a slow loop in disguise, so the points
                    # after this chunk go through the per-point loop, and the fallback's warning is not passed on
                    fallback = [w for w in caught if _VMAP_FALLBACK in str(w.message)]
                    for w in caught:
                        if w not in fallback:
                            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                    self._vmap_ok = not fallback
                except RuntimeError as e:
                    if is_oom(e) or "batching rule" not in str(e).lower() and "vmap" not in str(e).lower():
                        raise
                    self._vmap_ok = False
                    l, a = self._run(coords, False)
            else:
                l, a = self._run(coords, self._vmap_ok)
        acc = a.detach().cpu() if self.loss.task in ("classification", "binary") else None
        return l.detach().cpu(), acc

    def _loop_chunk(self, size: int) -> int:
        """The chunk size to go on with: grown to LOOP_CHUNK_BYTES of stacked outputs once the per-point
        loop has run (its memory is one point's activations whatever the chunk), else ``size``."""
        if self._chunk_fixed or self._vmap_ok is not False or self._loop is None or not self._loop.out_bytes:
            return size
        grown = min(LOOP_MAX_CHUNK, int(LOOP_CHUNK_BYTES // self._loop.out_bytes),
                    int(self.memory_budget // (3 * self._loop.out_bytes)))
        if grown > size:
            self.chunk_size = size = grown
        return size

    def run_chunked(self, coords, *, on_chunk: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """All points in chunks sized by the memory budget; a chunk that runs out of memory is halved and retried.
        ``on_chunk(start, stop, loss, acc)`` is called after each chunk."""
        coords = torch.as_tensor(coords)
        if coords.dim() == 1 and self.k == 1:
            coords = coords.unsqueeze(1)
        M = coords.shape[0]
        losses, accs = [], []
        i = 0
        size = self.plan_chunks(M)
        n_chunk = 0
        # on a CPU with strategy "auto", chunk 2 is timed with vmap and chunk 3 with a per-point loop
        # (chunk 1 warms vmap up); the faster one per point is kept (same numbers either way)
        tune = self.strategy == "auto" and self.device.type == "cpu" and M >= 6 * size and self.fast is None
        timings: dict[bool, float] = {}
        while i < M:
            stop = min(M, i + size)
            if tune and n_chunk == 2 and self._vmap_ok:
                self._vmap_ok = False
            try:
                t0 = time.perf_counter()
                l, a = self.run(coords[i:stop])
                if tune and n_chunk in (1, 2) and self._vmap_ok is not None:
                    timings[bool(self._vmap_ok)] = (time.perf_counter() - t0) / (stop - i)
                    if n_chunk == 2 and True in timings and False in timings:
                        self._vmap_ok = timings[True] <= timings[False]
                    elif n_chunk == 2 and True not in timings:
                        self._vmap_ok = False  # vmap unsupported: stay with the loop
                n_chunk += 1
            except (RuntimeError, MemoryError) as e:
                if not is_oom(e) or size == 1:
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                size = max(1, size // 2)
                self.chunk_size = size
                self._chunk_fixed = True  # no growth after running out of memory
                continue
            losses.append(l)
            if a is not None:
                accs.append(a)
            if on_chunk is not None:
                on_chunk(i, stop, l, a)
            i = stop
            if not (tune and n_chunk <= 2):
                size = self._loop_chunk(size)
        loss = torch.cat(losses) if losses else torch.zeros(0)
        acc = torch.cat(accs) if accs else None
        return loss, acc


def evaluate_points(model: nn.Module, data, loss, base, directions, coords, *, batch_size: int | None = None,
                    bn: str = "eval", chunk_size: int | None = None, memory_budget: int | None = None,
                    dtype: torch.dtype | None = None, device=None, strategy: str = "auto",
                    affine: bool | None = None, precision: str = "fp32", output=None,
                    batch_keys=None) -> PointsResult:
    """Full-data loss (and accuracy) at theta_i = base + coords[i] @ directions for i < M.

    A pure function: (model, data, loss, base (P,), directions (k, P), coords (M, k)) ->
    PointsResult(loss (M,), accuracy (M,) | None). Sharding coords over workers and
    concatenating the results gives the same answer as one call. ``output``/``batch_keys``: how
    to read the forward's output and dict batches (:mod:`losslab.adapters`); ``dtype`` None
    follows the model's parameters.
    """
    ev = Evaluator(model, data, loss, base, directions, batch_size=batch_size, bn=bn, chunk_size=chunk_size,
                   memory_budget=memory_budget, dtype=dtype, device=device, strategy=strategy, affine=affine,
                   precision=precision, output=output, batch_keys=batch_keys)
    l, a = ev.run_chunked(coords)
    return PointsResult(l, a, int(ev.n_examples or 0), "vmap" if ev._vmap_ok else "loop", int(ev.chunk_size or 0),
                        ev.affine is not None)
