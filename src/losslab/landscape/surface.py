"""``surface(model, data, ...)``: the loss on a 1-D line or 2-D plane of parameter space.

The point at grid coordinates (x_i, y_j) is ``theta = base + x_i d_1 + y_j d_2`` (Li et al.
2018, Eq. 1: f(a, b) = L(theta* + a delta + b eta)); ``loss[i, j]`` is the full-data mean
loss there, ``accuracy[i, j]`` the fraction correct (classification only).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..losses import get_loss
from .directions import Directions, resolve_directions
from .evaluate import Evaluator

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Surface:
    """A loss surface: ``axes`` (one coordinate array per direction), ``loss`` of shape
    (R1,) or (R1, R2) with ``loss[i, j]`` at (axes[0][i], axes[1][j]), ``accuracy`` (same
    shape or None), the ``base`` point (P,) and ``directions`` (k, P) used, the direction
    ``kind``, the parameter layout (``param_names``/``param_shapes``), the ``settings``
    that made it, and ``info`` (explained variance, anchors, precision error, timing)."""

    axes: tuple[np.ndarray, ...]
    loss: np.ndarray
    accuracy: np.ndarray | None
    base: np.ndarray
    directions: np.ndarray
    kind: str
    param_names: tuple[str, ...]
    param_shapes: tuple[tuple[int, ...], ...]
    settings: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return len(self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.loss.shape)

    def plane(self) -> Directions:
        """The Directions (base + axes) of this surface, e.g. for trajectory projection."""
        from ..params import ParamSpec

        spec = ParamSpec(self.param_names, tuple(torch.Size(s) for s in self.param_shapes), torch.float64, torch.device("cpu"))
        return Directions(torch.as_tensor(self.base), torch.as_tensor(self.directions), self.kind, spec, dict(self.info))

    def min(self) -> dict:
        """The grid point of lowest loss: its coordinates and loss."""
        idx = np.unravel_index(int(np.nanargmin(self.loss)), self.loss.shape)
        return {"coords": [float(a[i]) for a, i in zip(self.axes, idx)], "loss": float(self.loss[idx])}

    def to_dict(self, *, include_vectors: bool = False) -> dict:
        """JSON-safe summary: axes, loss, accuracy, settings, info, direction norms (and the
        vectors themselves with ``include_vectors=True``)."""
        d = {
            "format": "losslab.Surface", "version": FORMAT_VERSION, "kind": self.kind, "dim": self.dim,
            "axes": [a.tolist() for a in self.axes], "loss": self.loss.tolist(),
            "accuracy": None if self.accuracy is None else self.accuracy.tolist(),
            "direction_norms": [float(np.linalg.norm(v)) for v in self.directions],
            "base_norm": float(np.linalg.norm(self.base)), "n_params": int(self.base.shape[0]),
            "min": self.min(), "settings": self.settings, "info": self.info,
        }
        if include_vectors:
            d["base"] = self.base.tolist()
            d["directions"] = self.directions.tolist()
        return d

    def save(self, path: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``<path>.npz`` (arrays) and ``<path>.json`` (settings, info, layout); returns both paths."""
        p = Path(path)
        if p.suffix in (".npz", ".json"):
            p = p.with_suffix("")
        p.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"axis{i}": a for i, a in enumerate(self.axes)}
        arrays.update(loss=self.loss, base=self.base, directions=self.directions)
        if self.accuracy is not None:
            arrays["accuracy"] = self.accuracy
        npz = p.with_name(p.name + ".npz")
        with open(npz, "wb") as f:
            np.savez(f, **arrays)
        meta = {"format": "losslab.Surface", "version": FORMAT_VERSION, "kind": self.kind, "dim": self.dim,
                "param_names": list(self.param_names), "param_shapes": [list(s) for s in self.param_shapes],
                "settings": self.settings, "info": self.info}
        js = p.with_name(p.name + ".json")
        js.write_text(json.dumps(_jsonable(meta), indent=2))
        return npz, js

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Surface":
        """Read a Surface written by :meth:`save` (``path`` with or without the suffix)."""
        p = Path(path)
        if p.suffix in (".npz", ".json"):
            p = p.with_suffix("")
        npz, js = p.with_name(p.name + ".npz"), p.with_name(p.name + ".json")
        for f in (npz, js):
            if not f.exists():
                raise FileNotFoundError(f"{f} not found: a saved Surface is a pair <name>.npz + <name>.json")
        meta = json.loads(js.read_text())
        if meta.get("format") != "losslab.Surface":
            raise ValueError(f"{js} is not a losslab Surface file (format={meta.get('format')!r})")
        with np.load(npz) as z:
            axes = tuple(z[f"axis{i}"] for i in range(meta["dim"]))
            acc = z["accuracy"] if "accuracy" in z.files else None
            return cls(axes, z["loss"], acc, z["base"], z["directions"], meta["kind"], tuple(meta["param_names"]),
                       tuple(tuple(s) for s in meta["param_shapes"]), meta["settings"], meta["info"])


def load(path: str | os.PathLike) -> Surface:
    return Surface.load(path)


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, torch.Tensor):
        return _jsonable(o.tolist())
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return str(o)
    if isinstance(o, (torch.dtype, torch.device, Path)):
        return str(o)
    return o


def grid_axes(resolution, span, dim: int) -> tuple[np.ndarray, ...]:
    """Coordinate arrays. ``resolution``: int or one int per axis. ``span``: s (-> [-s, s]),
    (lo, hi), or one (lo, hi) per axis."""
    res = [resolution] * dim if isinstance(resolution, int) else list(resolution)
    if len(res) != dim or any((not isinstance(r, (int, np.integer))) or r < 1 for r in res):
        raise ValueError(f"resolution must be a positive int or {dim} positive ints, got {resolution!r}")
    if isinstance(span, (int, float)):
        if span <= 0:
            raise ValueError(f"span must be > 0 (the grid covers [-span, span]), got {span}")
        spans = [(-float(span), float(span))] * dim
    else:
        span = list(span)
        if len(span) == 2 and all(isinstance(s, (int, float)) for s in span):
            spans = [(float(span[0]), float(span[1]))] * dim
        elif len(span) == dim and all(len(s) == 2 for s in span):
            spans = [(float(a), float(b)) for a, b in span]
        else:
            raise ValueError(f"span must be s, (lo, hi) or one (lo, hi) per axis; got {span!r}")
    for lo, hi in spans:
        if not hi >= lo:
            raise ValueError(f"span (lo, hi) needs lo <= hi, got ({lo}, {hi})")
    return tuple(np.linspace(lo, hi, r) for (lo, hi), r in zip(spans, res))


def _fingerprint(ev: Evaluator, coords: torch.Tensor, extra: dict) -> str:
    h = hashlib.sha256()
    for t in (ev.base, ev.dirs, coords):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    if ev.tensor_data:
        from ..data.types import as_data

        d = as_data(ev.data)
        for t in (d.X, d.y):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps(_jsonable(extra), sort_keys=True).encode())
    return h.hexdigest()


class _Checkpoint:
    """Partial results in an npz file: key (fingerprint), loss, acc, done mask. Written atomically
    (temporary file + rename) at most every ``every`` seconds and at the end."""

    def __init__(self, path, key: str, M: int, every: float = 1.0):
        self.path = Path(path)
        if self.path.suffix != ".npz":
            self.path = self.path.with_name(self.path.name + ".npz")
        self.key, self.M, self.every = key, M, every
        self.loss = np.full(M, np.nan)
        self.acc = np.full(M, np.nan)
        self.done = np.zeros(M, dtype=bool)
        self._last = 0.0
        if self.path.exists():
            with np.load(self.path) as z:
                if str(z["key"]) != key or z["loss"].shape[0] != M:
                    raise ValueError(
                        f"checkpoint {self.path} belongs to a different grid (other model, data, directions, "
                        f"coordinates or settings); delete it or pass another checkpoint path")
                self.loss, self.acc, self.done = z["loss"].copy(), z["acc"].copy(), z["done"].copy()

    def update(self, idx: np.ndarray, loss, acc, *, force: bool = False):
        self.loss[idx] = loss
        if acc is not None:
            self.acc[idx] = acc
        self.done[idx] = True
        if force or time.monotonic() - self._last >= self.every:
            self.write()

    def write(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, key=np.array(self.key), loss=self.loss, acc=self.acc, done=self.done)
        os.replace(tmp, self.path)
        self._last = time.monotonic()


def surface(model: nn.Module, data, *, loss, directions="filter", dim: int = 2, resolution=21, span=1.0,
            seed: int | torch.Generator = 0, include_biases: bool = False, orthogonalize: bool = False,
            bn: str = "eval", batch_size: int | None = None, chunk_size: int | None = None,
            memory_budget: int | None = None, dtype: torch.dtype = torch.float32, device=None,
            precision: str = "fp32", strategy: str = "auto", affine: bool | None = None,
            progress: Callable[[int, int], None] | None = None, checkpoint: str | os.PathLike | None = None,
            checkpoint_every: float = 1.0) -> Surface:
    """The loss of ``model`` on ``data`` over a 1-D (``dim=1``) or 2-D grid in parameter space.

    ``directions``: a kind from :data:`DIRECTIONS` ("filter", "layer", "model", "gaussian",
    "unnormalized"; drawn with ``seed``, ``include_biases``, ``orthogonalize``), a
    :class:`Directions` (``line_through``, ``plane_through``, ``explicit_directions``,
    ``eigenvector_directions``) or ``PCADirections``, or 1-2 flat vectors / parameter dicts.
    ``resolution``: points per axis; ``span``: s for [-s, s], (lo, hi), or one pair per axis.
    ``loss``: a name from LOSSES or a Loss. ``data``: (X, y), Data/Splits, or an iterable of
    batches (a DataLoader); the loss is the exact full-data mean whatever the batching.
    ``bn``: "eval" (running statistics) or "recompute" (see losslab.landscape.evaluate).
    ``dtype``: float32 (default) or float64. ``precision``: "fp32" (default), "tf32" or "bf16";
    with the last two ``info['precision_max_rel_error']`` is measured against fp32 on up to 9 points.
    ``progress(done, total)`` is called as chunks complete; ``checkpoint`` (an .npz path) keeps
    partial results and a rerun with the same arguments resumes from it.
    The caller's model is never modified.
    """
    t0 = time.perf_counter()
    if dim not in (1, 2):
        raise ValueError(f"dim must be 1 (a curve) or 2 (a plane), got {dim}")
    lossobj = get_loss(loss)
    from ..validate import check_model_data

    check_model_data(model, data, lossobj)
    d = resolve_directions(model, directions, dim=dim, seed=seed, include_biases=include_biases,
                           orthogonalize=orthogonalize)
    dim = d.k
    axes = grid_axes(resolution, span, dim)
    mesh = np.meshgrid(*axes, indexing="ij")
    coords = torch.as_tensor(np.stack([m.reshape(-1) for m in mesh], axis=1))  # (M, k), row-major (i, j)
    M = coords.shape[0]
    ev = Evaluator(model, data, lossobj, d.base, d.vectors, batch_size=batch_size, bn=bn, chunk_size=chunk_size,
                   memory_budget=memory_budget, dtype=dtype, device=device, strategy=strategy, affine=affine,
                   precision=precision)
    settings = {"loss": lossobj.name, "loss_options": lossobj.options, "directions": d.kind, "dim": dim,
                "resolution": [len(a) for a in axes], "span": [[float(a[0]), float(a[-1])] for a in axes],
                "seed": seed if isinstance(seed, int) else None, "include_biases": include_biases,
                "orthogonalize": orthogonalize, "bn": bn, "dtype": str(ev.dtype).replace("torch.", ""),
                "precision": precision, "device": str(ev.device)}
    ck = None
    todo = np.arange(M)
    if checkpoint is not None:
        ck = _Checkpoint(checkpoint, _fingerprint(ev, coords, settings), M, every=checkpoint_every)
        todo = np.flatnonzero(~ck.done)
    loss_arr = ck.loss if ck is not None else np.full(M, np.nan)
    acc_arr = ck.acc if ck is not None else np.full(M, np.nan)
    done0 = M - len(todo)
    if progress is not None:
        progress(done0, M)
    counter = [done0]

    def on_chunk(start, stop, l, a):
        idx = todo[start:stop]
        loss_arr[idx] = l.double().numpy()
        if a is not None:
            acc_arr[idx] = a.double().numpy()
        if ck is not None:
            ck.update(idx, l.double().numpy(), None if a is None else a.double().numpy())
        counter[0] += stop - start
        if progress is not None:
            progress(counter[0], M)

    if len(todo):
        ev.run_chunked(coords[torch.as_tensor(todo)], on_chunk=on_chunk)
    if ck is not None:
        ck.write()
    is_cls = lossobj.task in ("classification", "binary")
    info = dict(d.info)
    info.update(strategy=("vmap" if ev._vmap_ok else "loop") if ev._vmap_ok is not None else "resumed",
                chunk_size=ev.chunk_size, affine_first_layer=ev.affine is not None,
                mlp_fast_path=ev.fast is not None, n_examples=ev.n_examples,
                seconds=time.perf_counter() - t0, points=M, resumed_points=done0)
    if precision != "fp32" and M:
        pick = np.unique(np.linspace(0, M - 1, min(9, M)).round().astype(int))
        ref = Evaluator(model, data, lossobj, d.base, d.vectors, batch_size=batch_size, bn=bn, dtype=dtype,
                        device=device, strategy=strategy, affine=affine, precision="fp32",
                        memory_budget=memory_budget)
        rl, _ = ref.run_chunked(coords[torch.as_tensor(pick)])
        rel = np.abs(loss_arr[pick] - rl.double().numpy()) / np.maximum(np.abs(rl.double().numpy()), 1e-30)
        info["precision_max_rel_error"] = float(rel.max())
        info["precision_error_points"] = len(pick)
    shape = tuple(len(a) for a in axes)
    return Surface(axes=axes, loss=loss_arr.reshape(shape), accuracy=acc_arr.reshape(shape) if is_cls else None,
                   base=d.base.detach().double().cpu().numpy(), directions=d.vectors.detach().double().cpu().numpy(),
                   kind=d.kind, param_names=tuple(d.spec.names), param_shapes=tuple(tuple(s) for s in d.spec.shapes),
                   settings=settings, info=_jsonable(info))
