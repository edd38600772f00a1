"""``surface(model, data, ...)``: the loss on a 1-D line or 2-D plane of parameter space.

The point at grid coordinates (x_i, y_j) is ``theta = base + x_i d_1 + y_j d_2`` (Li et al.
2018, Eq. 1: f(a, b) = L(theta* + a delta + b eta)); ``loss[i, j]`` is the full-data mean
loss there, ``accuracy[i, j]`` the fraction correct (classification only).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..losses import get_loss
from .directions import Directions, check_dim, resolve_directions
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
        """The grid point of lowest loss: its coordinates and loss (NaN points ignored). When no
        point has a loss (all NaN), ``{"coords": None, "loss": None}``."""
        if self.loss.size == 0 or bool(np.isnan(self.loss).all()):
            return {"coords": None, "loss": None}
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
        try:
            meta = json.loads(js.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{js} is corrupt (not valid JSON: {e}); re-create it with Surface.save") from None
        if not isinstance(meta, dict) or meta.get("format") != "losslab.Surface":
            got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise ValueError(f"{js} is not a losslab Surface file (format={got!r})")
        try:
            with open(npz, "rb") as f, np.load(f) as z:
                axes = tuple(z[f"axis{i}"] for i in range(meta["dim"]))
                acc = z["accuracy"] if "accuracy" in z.files else None
                return cls(axes, z["loss"], acc, z["base"], z["directions"], meta["kind"],
                           tuple(meta["param_names"]), tuple(tuple(s) for s in meta["param_shapes"]),
                           meta["settings"], meta["info"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{npz} is corrupt or incomplete ({type(e).__name__}: {str(e)[:120]}); re-create it "
                             f"with Surface.save") from None


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


def _describe_spec(output):
    """``output=`` for the settings (JSON): the key or index, or the callable's name."""
    if output is None or isinstance(output, (str, int)):
        return output
    return f"callable:{getattr(output, '__name__', type(output).__name__)}"


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_num(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def grid_axes(resolution, span, dim: int) -> tuple[np.ndarray, ...]:
    """Coordinate arrays. ``resolution``: int or one int per axis (>= 1). ``span``: s (-> [-s, s]),
    (lo, hi), or one (lo, hi) per axis, all finite. An axis of resolution 1 is the single midpoint
    (lo + hi) / 2 of its span (0, the model itself, for a symmetric span); otherwise the points
    run from lo to hi inclusive."""
    if _is_int(resolution):
        res = [resolution] * dim
    elif isinstance(resolution, (list, tuple, np.ndarray)):
        res = list(resolution)
    else:
        res = None
    if res is None or len(res) != dim or any(not _is_int(r) or r < 1 for r in res):
        raise ValueError(f"resolution must be a positive int or {dim} positive ints (points per axis), "
                         f"got {resolution!r}")
    if _is_num(span):
        if not math.isfinite(span) or span <= 0:
            raise ValueError(f"span must be a finite number > 0 (the grid covers [-span, span]), got {span}")
        spans = [(-float(span), float(span))] * dim
    else:
        sp = list(span) if isinstance(span, (list, tuple, np.ndarray)) else None
        if sp is not None and len(sp) == 2 and all(_is_num(s) for s in sp):
            spans = [(float(sp[0]), float(sp[1]))] * dim
        elif sp is not None and len(sp) == dim and all(isinstance(s, (list, tuple, np.ndarray)) and len(s) == 2
                                                      and all(_is_num(v) for v in s) for s in sp):
            spans = [(float(a), float(b)) for a, b in sp]
        else:
            raise ValueError(f"span must be a number s (the grid covers [-s, s]), (lo, hi), or one (lo, hi) per "
                             f"axis; got {span!r}")
    for lo, hi in spans:
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"span must be finite, got ({lo}, {hi})")
        if not hi >= lo:
            raise ValueError(f"span (lo, hi) needs lo <= hi, got ({lo}, {hi})")
    return tuple(np.array([(lo + hi) / 2]) if r == 1 else np.linspace(lo, hi, r) for (lo, hi), r in zip(spans, res))


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as f:
            info = {l.split(":")[0]: int(l.split()[1]) * 1024 for l in f}
        return int(info.get("MemAvailable", 8 * 2 ** 30))
    except (OSError, ValueError):  # pragma: no cover - non-Linux
        return 8 * 2 ** 30


def check_grid_size(axes: tuple[np.ndarray, ...]) -> int:
    """The number of grid points; a ValueError if the coordinates and results (float64 arrays,
    about 8 (4k + 6) bytes per point) would need more than half the available memory."""
    shape = [len(a) for a in axes]
    M = math.prod(shape)
    need = M * 8 * (4 * len(axes) + 6)
    avail = _available_ram()
    if need > avail / 2:
        per_axis = max(1, int((avail / 2 / (8 * (4 * len(axes) + 6))) ** (1 / len(axes))))
        raise ValueError(f"the grid has {M:,} points ({' x '.join(map(str, shape))}), needing about "
                         f"{need / 2 ** 30:.1f} GiB for its coordinates and results, more than half the available "
                         f"memory ({avail / 2 ** 30:.1f} GiB); use a smaller resolution (at most about {per_axis} "
                         f"per axis here)")
    return M


def _fingerprint(ev: Evaluator, coords: torch.Tensor, extra: dict) -> str:
    """The identity of a grid: plane, coordinates, settings and data. Tensor data are hashed
    byte for byte; streamed data (a DataLoader, batches) by :meth:`Evaluator.data_fingerprint`,
    one pass that does not depend on the order of the examples (a shuffling loader resumes)."""
    h = hashlib.sha256()
    for t in (ev.base, ev.dirs, coords):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    if ev.tensor_data:
        from ..data.types import as_data

        d = as_data(ev.data)
        for t in (d.X, d.y):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    else:
        h.update(ev.data_fingerprint().encode())
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
        if self.path.is_dir():
            raise ValueError(f"checkpoint {self.path} is a directory; pass a file path (an .npz name)")
        if self.path.exists():
            try:
                with open(self.path, "rb") as f, np.load(f) as z:
                    zkey, loss, acc, done = str(z["key"]), z["loss"].copy(), z["acc"].copy(), z["done"].copy()
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
                raise ValueError(f"corrupt checkpoint {self.path} ({type(e).__name__}): delete it or choose another "
                                 f"path") from None
            if not (loss.shape == acc.shape == done.shape and loss.ndim == 1 and done.dtype == bool):
                raise ValueError(f"corrupt checkpoint {self.path} (inconsistent arrays): delete it or choose another "
                                 f"path")
            if zkey != key or loss.shape[0] != M:
                raise ValueError(
                    f"checkpoint {self.path} belongs to a different grid (other model, data, directions, "
                    f"coordinates or settings); delete it or pass another checkpoint path")
            self.loss, self.acc, self.done = loss, acc, done

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


def surface(model: nn.Module, data, *, loss, directions="filter", dim: int | None = None, resolution=21, span=1.0,
            seed: int | torch.Generator = 0, include_biases: bool = False, orthogonalize: bool = False,
            bn: str = "eval", batch_size: int | None = None, chunk_size: int | None = None,
            memory_budget: int | None = None, dtype: torch.dtype | None = None, device=None,
            precision: str = "fp32", strategy: str = "auto", affine: bool | None = None,
            progress: Callable[[int, int], None] | None = None, checkpoint: str | os.PathLike | None = None,
            checkpoint_every: float = 1.0, output=None, batch_keys=None) -> Surface:
    """The loss of ``model`` on ``data`` over a 1-D (``dim=1``) or 2-D grid in parameter space.

    ``directions``: a kind from :data:`DIRECTIONS` ("filter", "layer", "model", "gaussian",
    "unnormalized"; drawn with ``seed``, ``include_biases``, ``orthogonalize``), a
    :class:`Directions` (``line_through``, ``plane_through``, ``explicit_directions``,
    ``eigenvector_directions``) or ``PCADirections``, or 1-2 flat vectors / parameter dicts
    (finite, nonzero). ``dim``: 1 or 2 axes; None (default) means 2 for a kind and the number
    of given directions otherwise (a ``dim`` contradicting given directions is an error).
    ``resolution``: points per axis (an int >= 1; a single point is the midpoint of the span,
    i.e. the model itself for a symmetric span); ``span``: s for [-s, s], (lo, hi), or one pair
    per axis (finite). ``loss``: a name from LOSSES, a Loss, or a callable ``(output, target) ->``
    per-example (N,) or mean loss (:func:`losslab.losses.callable_loss`). ``data``: (X, y) tensors
    or numpy arrays, Data/Splits, or an iterable of batches (a DataLoader; checked for NaN/inf on
    the first pass); the loss is the exact full-data mean whatever the batching. ``output``: what
    the loss takes from the forward's return value (a key ``"logits"``, an index ``0``, or a
    callable; None: the forward returns a tensor). ``batch_keys=(inputs_key, targets_key)``: how
    to read dict batches (:mod:`losslab.adapters`).
    Points where the loss overflows (NaN/inf, e.g. far out with a large span) stay in ``loss``;
    their number is ``info['nonfinite_points']`` and a RuntimeWarning says so.
    ``bn``: "eval" (running statistics) or "recompute" (see losslab.landscape.evaluate).
    ``dtype``: None (default: the model parameters' dtype, so a float64 model is measured in
    float64), float32 or float64 (a torch.dtype or its name). The model is measured in eval mode
    (``bn="recompute"``: batch norm statistics recomputed); a model passed in train mode with
    dropout or batch norm gets one warning, and ``settings["caller_mode"]`` records its mode. ``precision``: "fp32"
    (default), "tf32" or "bf16" (the last two need float32); with them
    ``info['precision_max_rel_error']`` is measured against fp32 on up to 9 points.
    ``device``: "cpu", "cuda[:i]" (where available) or None (the model's device).
    ``progress(done, total)`` is called as chunks complete; ``checkpoint`` (an .npz path) keeps
    partial results and a rerun with the same arguments and data resumes from it (it is also
    written when the run stops on an exception or KeyboardInterrupt).
    The caller's model is never modified.
    """
    t0 = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    dim = check_dim(dim)
    if isinstance(seed, bool) or not isinstance(seed, (int, torch.Generator)):
        raise TypeError(f"seed must be an int or a torch.Generator (e.g. seed=0), got {seed!r}")
    lossobj = get_loss(loss)
    from ..validate import as_tensors, check_model_data

    from ..validate import warn_train_mode

    caller_mode = warn_train_mode(model, measured="eval", where="surface")
    data = as_tensors(data)
    check_model_data(model, data, lossobj, output=output, batch_keys=batch_keys)
    d = resolve_directions(model, directions, dim=dim, seed=seed, include_biases=include_biases,
                           orthogonalize=orthogonalize)
    dim = d.k
    axes = grid_axes(resolution, span, dim)
    check_grid_size(axes)
    mesh = np.meshgrid(*axes, indexing="ij")
    coords = torch.as_tensor(np.stack([m.reshape(-1) for m in mesh], axis=1))  # (M, k), row-major (i, j)
    M = coords.shape[0]
    ev = Evaluator(model, data, lossobj, d.base, d.vectors, batch_size=batch_size, bn=bn, chunk_size=chunk_size,
                   memory_budget=memory_budget, dtype=dtype, device=device, strategy=strategy, affine=affine,
                   precision=precision, output=output, batch_keys=batch_keys)
    settings = {"loss": lossobj.name, "loss_options": lossobj.options, "directions": d.kind, "dim": dim,
                "resolution": [len(a) for a in axes], "span": [[float(a[0]), float(a[-1])] for a in axes],
                "seed": seed if isinstance(seed, int) else None, "include_biases": include_biases,
                "orthogonalize": orthogonalize, "bn": bn, "dtype": str(ev.dtype).replace("torch.", ""),
                "precision": precision, "device": str(ev.device), "mode": "eval", "caller_mode": caller_mode,
                "output": _describe_spec(output), "batch_keys": None if batch_keys is None else list(batch_keys)}
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

    try:
        if len(todo):
            ev.run_chunked(coords[torch.as_tensor(todo)], on_chunk=on_chunk)
    except BaseException:  # an error or an interrupt: keep the finished points, then re-raise
        if ck is not None:
            try:
                ck.write()
            except Exception as e:  # pragma: no cover - e.g. the disk is full; the original error matters more
                warnings.warn(f"could not write checkpoint {ck.path}: {e}", RuntimeWarning, stacklevel=2)
        raise
    if ck is not None:
        ck.write()
    is_cls = lossobj.task in ("classification", "binary")
    info = dict(d.info)
    info.update(strategy=("vmap" if ev._vmap_ok else "loop") if ev._vmap_ok is not None else "resumed",
                chunk_size=ev.chunk_size, affine_first_layer=ev.affine is not None,
                mlp_fast_path=ev.fast is not None, n_examples=ev.n_examples,
                seconds=time.perf_counter() - t0, points=M, resumed_points=done0,
                nonfinite_points=int((~np.isfinite(loss_arr)).sum()))
    if info["nonfinite_points"]:
        warnings.warn(f"{info['nonfinite_points']} of {M} grid points have a NaN/inf loss (overflow far from the "
                      f"model? try a smaller span); they stay NaN/inf in Surface.loss and Surface.min skips NaN",
                      RuntimeWarning, stacklevel=2)
    if precision != "fp32" and M:
        pick = np.unique(np.linspace(0, M - 1, min(9, M)).round().astype(int))
        # ev.data: a one-shot generator was read into a list by the first Evaluator
        ref = Evaluator(model, ev.data, lossobj, d.base, d.vectors, batch_size=batch_size, bn=bn, dtype=dtype,
                        device=device, strategy=strategy, affine=affine, precision="fp32",
                        memory_budget=memory_budget, output=output, batch_keys=batch_keys)
        rl, _ = ref.run_chunked(coords[torch.as_tensor(pick)])
        rel = np.abs(loss_arr[pick] - rl.double().numpy()) / np.maximum(np.abs(rl.double().numpy()), 1e-30)
        info["precision_max_rel_error"] = float(np.nanmax(rel)) if np.isfinite(rel).any() else float("nan")
        info["precision_error_points"] = len(pick)
    shape = tuple(len(a) for a in axes)
    return Surface(axes=axes, loss=loss_arr.reshape(shape), accuracy=acc_arr.reshape(shape) if is_cls else None,
                   base=d.base.detach().double().cpu().numpy(), directions=d.vectors.detach().double().cpu().numpy(),
                   kind=d.kind, param_names=tuple(d.spec.names), param_shapes=tuple(tuple(s) for s in d.spec.shapes),
                   settings=settings, info=_jsonable(info))
