"""Numbers in a page as binary typed arrays, stored once, and curves bounded to what a screen shows.

A report page embeds every figure twice over: what plotly draws (the spec) and what the
download buttons deliver (the figure's data, as CSV and JSON). Written as JSON text, a
float64 costs ~18 characters and each number was written three times (spec, CSV, JSON).

:class:`ArrayTable` keeps each numeric array once per page as little-endian base64 in
plotly.js's own typed-array form ``{"dtype": "f8", "bdata": ..., "shape": "ny, nx"}`` (what
plotly.py's ``to_json`` writes for numpy arrays, plotly >= 6): 10.7 characters per float64,
5.3 per float32. Figures refer to arrays as ``{"$b": index}``; identical arrays (a grid
drawn as contour and as surface, a curve in the spec and in the download) are stored once.
The page's script swaps the references for the typed-array specs before plotly draws, and
decodes them to plain numbers only when a download button is pressed; it writes the CSV
with Python's ``repr`` spelling of floats, so the download equals :func:`figure_csv`.

What is drawn but not downloaded (a decimated curve, the slider's marker positions, a
path's interpolated height) is stored as float32: 7 significant digits is far below a
pixel. What is downloaded keeps full precision: float32 when float32 holds every value
exactly (arrays from float32 training, small integers), else float64.

:func:`decimate_minmax` bounds a long curve to what a screen shows: per pixel-wide bucket the
first, minimum, maximum and last point, in order, so spikes and the envelope survive (the
"M4" aggregation of Jugel et al. 2014). The downloaded data keeps every point.
"""
from __future__ import annotations

import base64
import hashlib
from typing import Any

import numpy as np

from .serialize import jsonable

#: lines with more points than this are decimated for drawing (a plot is < 1200 px wide;
#: 4 points per bucket of 2 px keeps every extreme a pixel can show)
MAX_DRAWN_POINTS = 2400
_INT32 = np.iinfo(np.int32)


def _float32_exact(a: np.ndarray) -> bool:
    """Whether float32 holds every value of ``a`` exactly (NaN and infinities included): then the
    float64 a reader decodes is bit for bit the original."""
    if a.dtype == np.float32:
        return True
    if a.dtype.kind == "c":
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        b = np.asarray(a, dtype=np.float64)
        return bool(np.array_equal(b.astype(np.float32).astype(np.float64), b, equal_nan=True))


def _encodable(a: np.ndarray) -> bool:
    return a.dtype.kind in "fiu" and a.ndim >= 1 and a.size > 0


class ArrayTable:
    """The page's numeric arrays, each stored once (by content), referenced as ``{"$b": i}``."""

    def __init__(self) -> None:
        self.blobs: list[dict] = []
        self._index: dict[bytes, int] = {}
        self.bytes_in = 0  # float64 bytes the referenced arrays would take (for the report's figures)

    def ref(self, a: Any, *, exact: bool = True) -> Any:
        """A reference to ``a`` (``exact``: float64, for data that is downloaded; else float32, for
        what is only drawn). Non-numeric, 0-d and empty arrays stay plain JSON."""
        if a is None:
            return None
        arr = np.asarray(a)
        if arr.dtype == object:
            return jsonable(arr)
        if not _encodable(arr):
            return jsonable(arr)
        if arr.dtype.kind in "iu" and arr.size and _INT32.min <= int(arr.min()) and int(arr.max()) <= _INT32.max:
            dt = "i4"
        elif not exact or _float32_exact(arr):
            dt = "f4"  # drawn only, or float32 holds every value exactly (float32 training): lossless
        else:
            dt = "f8"
        raw = np.ascontiguousarray(arr, dtype="<" + dt).tobytes()
        shape = ", ".join(str(n) for n in arr.shape)
        key = hashlib.blake2b(raw, digest_size=16).digest() + f"{dt}|{shape}".encode()
        i = self._index.get(key)
        if i is None:
            i = len(self.blobs)
            self._index[key] = i
            self.blobs.append({"dtype": dt, "bdata": base64.b64encode(raw).decode("ascii"), "shape": shape})
        return {"$b": i}

    def drawn(self, a: Any) -> Any:
        """A reference for an array that is drawn and not downloaded (float32)."""
        return self.ref(a, exact=False)


def decimate_minmax(x: np.ndarray, ys: list[np.ndarray], max_points: int = MAX_DRAWN_POINTS) -> np.ndarray | None:
    """Indices into a curve of ``len(x)`` points that keep, per bucket of consecutive points, the
    first, the last and the argmin/argmax of every y in ``ys`` (sorted, unique); None when the
    curve is short enough to draw whole. NaN points are kept (they draw the gaps)."""
    n = len(x)
    if n <= max_points:
        return None
    n_buckets = max(1, max_points // 4)
    edges = np.linspace(0, n, n_buckets + 1).round().astype(int)
    keep = [np.array([0, n - 1])]
    for y in ys:
        if y is None:
            continue
        y = np.asarray(y, dtype=float).ravel()
        if len(y) != n:
            continue
        nan = ~np.isfinite(y)
        keep.append(np.flatnonzero(nan & ~np.roll(nan, 1)))  # where a gap starts ...
        keep.append(np.flatnonzero(~nan & np.roll(nan, 1)))  # ... and ends
        lo_v = np.where(nan, np.inf, y)
        hi_v = np.where(nan, -np.inf, y)
        for a, b in zip(edges[:-1], edges[1:]):
            if b <= a:
                continue
            keep.append(np.array([a, b - 1, a + int(np.argmin(lo_v[a:b])), a + int(np.argmax(hi_v[a:b]))]))
    return np.unique(np.concatenate(keep))


def stride_indices(n: int, max_points: int) -> np.ndarray | None:
    """Evenly spaced indices (first and last kept) when ``n > max_points``, else None."""
    if n <= max_points:
        return None
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def resolve(obj: Any, blobs: list[dict]) -> Any:
    """``obj`` with every ``{"$b": i}`` replaced by the numpy array it refers to (what the page's
    script does before drawing and downloading; for tests and for reading a page back)."""
    if isinstance(obj, dict):
        if set(obj) == {"$b"}:
            b = blobs[obj["$b"]]
            shape = tuple(int(n) for n in str(b["shape"]).split(","))
            return np.frombuffer(base64.b64decode(b["bdata"]), dtype="<" + b["dtype"]).reshape(shape)
        return {k: resolve(v, blobs) for k, v in obj.items()}
    if isinstance(obj, list):
        return [resolve(v, blobs) for v in obj]
    return obj
