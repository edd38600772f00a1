"""Fast paths of the grid evaluator for plain stacks of layers (losslab's MLP, nn.Sequential).

Both are special cases of the generic vmap evaluator in ``evaluate.py`` and give the same numbers
up to float rounding (tested against a per-point loop):

- :class:`AffineFirstLayer`: the first layer is affine in the grid coordinates, so its output at
  every point is ``Z0 + sum_j c_j Z_j`` from k + 1 matmuls per data batch;
- :class:`MLPFastPath`: a stack of only nn.Linear and elementwise modules, evaluated for a whole
  chunk of points with batched GEMMs and no vmap at all.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
from torch import nn

from ..params import ParamSpec


def sequential_body(template: nn.Module):
    """(layers, parameter-name prefix, input transform) of a plain stack of layers -- a
    losslab MLP or an nn.Sequential -- the shapes the fast paths understand; None otherwise."""
    from ..models.nets import MLP

    if type(template) is MLP:
        return template.net, "net.", (lambda x: x.reshape(x.shape[0], -1))
    if type(template) is nn.Sequential:
        return template, "", (lambda x: x)
    return None


class AffineFirstLayer:
    """The first-layer-affine fast path for nn.Sequential / losslab MLP starting with nn.Linear."""

    def __init__(self, pre: Callable, rest: nn.Module, first_w: str, first_b: str | None, prefix: str):
        self.pre, self.rest, self.first_w, self.first_b, self.prefix = pre, rest, first_w, first_b, prefix

    @staticmethod
    def plan(template: nn.Module, spec: ParamSpec) -> "AffineFirstLayer | None":
        body = sequential_body(template)
        if body is None:
            return None
        seq, prefix, pre = body
        keys = list(seq._modules)
        if len(keys) < 2 or type(seq._modules[keys[0]]) is not nn.Linear:
            return None
        k0 = keys[0]
        first_w = f"{prefix}{k0}.weight"
        first_b = f"{prefix}{k0}.bias" if seq._modules[k0].bias is not None else None
        trainable = set(spec.names)
        if first_w not in trainable or (first_b is not None and first_b not in trainable):
            return None
        rest = nn.Sequential(OrderedDict((k, seq._modules[k]) for k in keys[1:]))
        return AffineFirstLayer(pre, rest, first_w, first_b, prefix)

    def rest_name(self, name: str) -> str | None:
        """The name of a model parameter/buffer inside ``rest``, or None if it is the first layer's."""
        if name in (self.first_w, self.first_b) or not name.startswith(self.prefix):
            return None
        return name[len(self.prefix):]


# elementwise modules the MLP fast path applies as they are (Dropout: the template is in eval mode)
_ELEMENTWISE = (nn.Tanh, nn.ReLU, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.LeakyReLU, nn.Softplus, nn.Identity,
                nn.Dropout)
_INPLACE = {nn.Tanh: torch.Tensor.tanh_, nn.ReLU: torch.Tensor.relu_, nn.Sigmoid: torch.Tensor.sigmoid_}
# a Linear layer whose per-point product has at least this many multiply-adds (N in out) runs one GEMM per point
# instead of a batched GEMM (2^23: ~0.1 ms per call on a CPU core, so the Python call overhead stays under ~1 %)
LOOP_GEMM_MACS = 2 ** 23
FAST_CPU_CHUNK_BYTES = 8 * 2 ** 20  # widest hidden activation of one chunk on a CPU (tuned: benchmarks/RESULTS.md)
# with one GEMM per point, the examples go through all layers in tiles of about this many bytes of the widest
# activation (512 rows of 512 floats), so a GEMM's output is still in cache when the activation and the next GEMM
# read it: on benchmarks/surface.py case (b) (1257 x 512 @ 512 x 512), one grid row, 2 threads, 512 KiB-L2 CPU,
# median ms per point: 64 rows 10.3, 128 rows 8.1, 256 rows 6.9, 512 rows 6.4, whole (no tiles) 7.6
# (benchmarks/RESULTS.md, 2026-12-07)
TILE_BYTES = 2 ** 20
# ... for layers at least this wide (narrower ones: a tile's GEMMs are too small for the Python calls per tile to
# stay a few per cent of the work; not measured below 512)
TILE_MIN_WIDTH = 256


class MLPFastPath:
    """Fast path for nn.Sequential / losslab MLP made only of nn.Linear and elementwise modules.

    With theta(c) = base + sum_j c_j d_j and, per Linear layer, W(c) = W0 + sum_j c_j D_j,
    b(c) = b0 + sum_j c_j e_j (c_0 := 1, Caug = [1, c]):

    - first Linear (input X shared by all points): pre-activations of a chunk of M points are
      ``Caug (M, 1+k) @ Z (1+k, N h)`` with ``Z = [X W0^T + b0; X D_j^T + e_j]`` computed once per
      data batch: one GEMM with K = 1+k, then the activation in place;
    - later Linear layers: per-point weights ``Caug @ [W0; D_j]`` (M, out, in) and one ``baddbmm``;
    - cross-entropy (registry loss, no options) fused: ``logsumexp(logits) - logits[y]``, summed
      per point; other losses use ``Loss.per_example`` on the (M N, C) outputs.
    The same numbers as a per-point forward up to float rounding (tested against a per-point
    loop at rtol 1e-5 in float32)."""

    def __init__(self, pre: Callable, layers: list, names: list):
        self.pre, self.layers, self.names = pre, layers, names

    @staticmethod
    def plan(template: nn.Module, spec: ParamSpec) -> "MLPFastPath | None":
        body = sequential_body(template)
        if body is None:
            return None
        seq, prefix, pre = body
        trainable = set(spec.names)
        layers, n_lin = [], 0
        for key, mod in seq._modules.items():
            if type(mod) is nn.Linear:
                w, b = f"{prefix}{key}.weight", (f"{prefix}{key}.bias" if mod.bias is not None else None)
                if w not in trainable or (b is not None and b not in trainable):
                    return None
                layers.append(("linear", w, b))
                n_lin += 1
            elif type(mod) in _ELEMENTWISE:
                if type(mod) is nn.Dropout or type(mod) is nn.Identity:
                    continue  # eval mode: identity
                layers.append(("act", mod, _INPLACE.get(type(mod))))
            else:
                return None
        if n_lin == 0 or layers[0][0] != "linear":
            return None
        # Linear -> Tanh -> Linear: tanh(x) = 2 sigmoid(2 x) - 1 (exact identity); the factors fold into
        # the two Linear layers (see prepare), leaving one in-place sigmoid (about 3x cheaper than tanh on CPUs)
        for i in range(1, len(layers) - 1):
            if layers[i][0] == "act" and type(layers[i][1]) is nn.Tanh and layers[i - 1][0] == "linear" \
                    and layers[i + 1][0] == "linear":
                layers[i] = ("tanh_fold", layers[i][1], torch.Tensor.sigmoid_)
        return MLPFastPath(pre, layers, [n for n in spec.names])

    def prepare(self, spec: ParamSpec, base: torch.Tensor, dirs: torch.Tensor) -> list:
        """Per Linear layer: stacked weights (1+k, out, in) and biases (1+k, out) or None."""
        P, D = spec.unflatten(base), spec.unflatten(dirs)
        out = []
        for kind, w, b in self.layers:
            if kind != "linear":
                out.append(None)
                continue
            W = torch.cat([P[w].unsqueeze(0), D[w]], 0).contiguous()
            B = torch.cat([P[b].unsqueeze(0), D[b]], 0).contiguous() if b is not None else None
            out.append((W, B))
        for i, (kind, _, _) in enumerate(self.layers):
            if kind == "tanh_fold":
                # previous layer outputs 2x (exact: a power of two); next layer sees s = sigmoid(2x) = (tanh(x)+1)/2,
                # so W tanh + B = (2 W) s + (B - W 1); all stacks stay linear in the coordinates
                W, B = out[i - 1]
                out[i - 1] = (W * 2, None if B is None else B * 2)
                W, B = out[i + 1]
                out[i + 1] = (W * 2, (0 if B is None else B) - W.sum(2))
        return out

    def first(self, X, stacks) -> torch.Tensor:
        """Z (1+k, N * h) for one data batch."""
        W, B = stacks[0]
        Xf = self.pre(X)
        Z = torch.matmul(Xf.unsqueeze(0), W.transpose(1, 2))  # (1+k, N, h)
        if B is not None:
            Z += B.unsqueeze(1)
        return Z.reshape(W.shape[0], -1)

    def forward(self, caug: torch.Tensor, Z: torch.Tensor, stacks, n: int, *, class_major: bool = False) -> torch.Tensor:
        """Outputs (M, N, C) of the M points with augmented coordinates caug (M, 1+k); with
        ``class_major`` the last Linear layer writes them as (M, C, N) instead."""
        m = caug.shape[0]
        tile = self._tile_rows(Z, stacks, n) if Z.device.type == "cpu" else None
        if tile is not None:
            return self._forward_tiled(caug, Z, stacks, n, tile, class_major)
        # first Linear: H = Z_0 + sum_j c_j Z_j for all points at once (fused multiply-adds; a GEMM with
        # inner dimension 1+k = 2-3 measured 2-3x slower on a CPU)
        H = torch.addcmul(Z[0], caug[:, 1:2], Z[1]) if Z.shape[0] > 1 else Z[0].expand(m, -1).clone()
        for j in range(2, Z.shape[0]):
            H.addcmul_(caug[:, j:j + 1], Z[j])
        H = H.reshape(m, n, -1)
        last = max(i for i, layer in enumerate(self.layers) if layer[0] == "linear")
        for i in range(1, len(self.layers)):
            kind, a, b = self.layers[i]
            if kind != "linear":
                H = b(H) if b is not None else a(H)
                continue
            _, d_out, d_in = stacks[i][0].shape  # (1+k, out, in)
            Wm, Bm = _point_weights(caug, stacks[i])
            cm = i == last and class_major
            if m > 1 and H.device.type == "cpu" and n * d_in * d_out >= LOOP_GEMM_MACS:
                # one GEMM per point, each threaded inside BLAS: a batched GEMM of a few big products splits the
                # points over the threads on a CPU (3 points on 2 threads: 2 rounds, measured 4.6 vs 3.4 ms per point on
                # the 1257x512 @ 512x512 layer); the per-call overhead is under 1 % at this size
                out = H.new_empty((m, d_out, n) if cm else (m, n, d_out))
                for p in range(m):
                    lhs, rhs = (Wm[p], H[p].T) if cm else (H[p], Wm[p].T)
                    if Bm is None:
                        torch.mm(lhs, rhs, out=out[p])
                    else:
                        torch.addmm(Bm[p].unsqueeze(1) if cm else Bm[p], lhs, rhs, out=out[p])
                H = out
            elif cm:
                # (m, C, N) = W(c) H^T: the loss then reduces over C with N contiguous, which vectorizes on a
                # CPU (measured 2x faster than (m, N, C) for the last GEMM and the fused cross-entropy together)
                HT = H.transpose(1, 2)
                H = torch.baddbmm(Bm.unsqueeze(2), Wm, HT) if Bm is not None else torch.bmm(Wm, HT)
            elif Bm is not None:
                H = torch.baddbmm(Bm.unsqueeze(1), H, Wm.transpose(1, 2))
            else:
                H = torch.bmm(H, Wm.transpose(1, 2))
        if class_major and last == 0:  # a single Linear layer (plus activations): computed (m, N, C) above
            H = H.transpose(1, 2)
        return H

    def _tile_rows(self, Z, stacks, n: int) -> int | None:
        """Rows per tile when a layer after the first is big enough for one GEMM per point and the examples
        fill more than two tiles; else None (the layer-by-layer forward above)."""
        linear = [st for (kind, _, _), st in zip(self.layers, stacks) if kind == "linear"]
        if len(linear) < 2 or not any(n * W.shape[1] * W.shape[2] >= LOOP_GEMM_MACS for W, _ in linear[1:]):
            return None
        widest = max(W.shape[1] for W, _ in linear)  # the widest layer output a tile holds
        if widest < TILE_MIN_WIDTH:
            return None
        rows = max(32, int(TILE_BYTES // (widest * Z.element_size())))
        return rows if n > 2 * rows else None

    def _forward_tiled(self, caug, Z, stacks, n: int, rows: int, class_major: bool) -> torch.Tensor:
        """The same outputs as :meth:`forward`, point by point and tile by tile of examples through all layers
        (each row of a layer's output depends only on the same row of its input, so this is the same algebra)."""
        m, j1 = caug.shape
        Zr = Z.reshape(j1, n, -1)
        last = max(i for i, layer in enumerate(self.layers) if layer[0] == "linear")
        per_point = {i: _point_weights(caug, stacks[i]) for i, (kind, _, _) in enumerate(self.layers)
                     if kind == "linear" and i > 0}
        d_out = stacks[last][0].shape[1]
        out = Z.new_empty((m, d_out, n) if class_major else (m, n, d_out))
        c = caug.tolist()
        for p in range(m):
            for r0 in range(0, n, rows):
                r1 = min(n, r0 + rows)
                h = torch.add(Zr[0, r0:r1], Zr[1, r0:r1], alpha=c[p][1]) if j1 > 1 else Zr[0, r0:r1].clone()
                for j in range(2, j1):
                    h.add_(Zr[j, r0:r1], alpha=c[p][j])
                for i in range(1, len(self.layers)):
                    kind, a, b = self.layers[i]
                    if kind != "linear":
                        h = b(h) if b is not None else a(h)
                        continue
                    Wm, Bm = per_point[i]
                    if i == last and class_major:
                        o = torch.mm(Wm[p], h.T) if Bm is None else torch.addmm(Bm[p].unsqueeze(1), Wm[p], h.T)
                        out[p, :, r0:r1] = o
                    elif i == last:
                        if Bm is None:
                            torch.mm(h, Wm[p].T, out=out[p, r0:r1])
                        else:
                            torch.addmm(Bm[p], h, Wm[p].T, out=out[p, r0:r1])
                    else:
                        h = torch.mm(h, Wm[p].T) if Bm is None else torch.addmm(Bm[p], h, Wm[p].T)
        return out


def _point_weights(caug: torch.Tensor, stack) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-point weights W(c_m) = caug_m @ [W0; D_j] (m, out, in) and biases (m, out) or None: one GEMM each
    (measured 10 % faster on the digits MLP's last layer than one GEMM against all 1+k stacks plus a
    coordinate-weighted sum)."""
    W, B = stack
    j1, d_out, d_in = W.shape
    return (torch.mm(caug, W.reshape(j1, -1)).reshape(caug.shape[0], d_out, d_in),
            torch.mm(caug, B) if B is not None else None)
