"""User data from CSV and NPZ files: ``load_csv`` / ``load_npz`` -> :class:`Splits`.

Both loaders validate at the boundary and raise :class:`DataFileError` (a ``ValueError``)
whose message names the file, the place (line/column or array index), what was expected and
how to fix it. No pandas: the ``csv`` module and numpy do the reading.

They are also registered in the dataset registry as ``csv`` and ``npz``, so
``losslab.data.load("csv", path="my.csv", target="price")`` works like a built-in dataset.

Task inference (``task="auto"``): a target column is *classification* when any of its values
is not a number, or when all its values are integers and there are at most
``AUTO_MAX_CLASSES`` (20) distinct values; otherwise *regression*. Pass ``task=`` explicitly
to override. Classification labels are mapped to ``0..C-1`` in sorted order of the original
labels (numeric order for numbers, string order otherwise); ``meta["classes"]`` lists the
original label of each index.
"""
from __future__ import annotations

import csv
import io
import math
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .builtin import DATASETS
from .splits import preprocess as _preprocess
from .splits import split
from .types import Data, Splits

AUTO_MAX_CLASSES = 20
TASKS = ("auto", "regression", "classification")


class DataFileError(ValueError):
    """A user data file that cannot be read as a dataset (the message says where and why)."""


class DataFileNotFoundError(DataFileError, FileNotFoundError):
    """The data file does not exist (catchable as FileNotFoundError or DataFileError)."""


# --------------------------------------------------------------------------- helpers

def _check_path(path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataFileNotFoundError(f"{p}: no such file. Check the path (relative paths are taken from {Path.cwd()}).")
    if p.is_dir():
        raise DataFileError(f"{p}: is a directory, expected a data file.")
    return p


def _check_options(task: str, val_fraction: float, test_fraction: float, preprocess: str | None) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    if preprocess is not None:
        from .splits import PREPROCESSORS

        PREPROCESSORS.get(preprocess)  # unknown names list the valid ones
    for nm, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise ValueError(f"{nm} must be in [0, 1), got {f}")


def _parse_float(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


def _labels_to_ids(values: Sequence, where: str) -> tuple[torch.Tensor, list]:
    """Map arbitrary labels to 0..C-1 in sorted order; returns (ids (N,), classes)."""
    try:
        classes = sorted(set(values))
    except TypeError as e:  # mixed types that do not compare
        raise DataFileError(f"{where}: target labels of mixed types cannot be ordered ({e}).") from None
    index = {c: i for i, c in enumerate(classes)}
    return torch.tensor([index[v] for v in values], dtype=torch.long), classes


def _plain(v):
    """numpy scalars -> python scalars (JSON-safe meta)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _infer_task(values: Sequence, numeric: bool) -> str:
    if not numeric:
        return "classification"
    vals = np.asarray(values, dtype=np.float64)
    if np.all(vals == np.round(vals)) and len(np.unique(vals)) <= AUTO_MAX_CLASSES:
        return "classification"
    return "regression"


def _finish(X: torch.Tensor, y_raw, *, y_numeric: bool, task: str, where: str, name: str,
            val_fraction: float, test_fraction: float, seed: int, preprocess: str | None, meta: dict,
            in_dim: int) -> Splits:
    """Common tail: task inference, label mapping, splitting, preprocessing."""
    one_label = not y_numeric or np.asarray(y_raw).ndim == 1 or (np.asarray(y_raw).ndim == 2 and np.asarray(y_raw).shape[1] == 1)
    if task == "auto":
        task = _infer_task(np.asarray(y_raw).reshape(-1) if y_numeric else y_raw, y_numeric) if one_label else "regression"
    if task == "classification":
        flat = np.asarray(y_raw).reshape(-1) if y_numeric else y_raw
        if not one_label:
            raise DataFileError(f"{where}: classification needs one label per example, got targets of shape "
                                f"{np.asarray(y_raw).shape}. Use task='regression' for several target columns.")
        if y_numeric and not np.all(np.asarray(flat) == np.round(np.asarray(flat))):
            bad = np.flatnonzero(np.asarray(flat) != np.round(np.asarray(flat)))[0]
            raise DataFileError(f"{where}: task='classification' needs integer or text labels, but example {bad} "
                                f"has label {flat[bad]!r}. Use task='regression' for a continuous target.")
        labels = [_plain(v) for v in flat]
        y, classes = _labels_to_ids(labels, where)
        meta = {**meta, "classes": classes, "label_to_index": {str(c): i for i, c in enumerate(classes)}}
        n_classes, out_dim = len(classes), len(classes)
    else:
        if not y_numeric:
            raise DataFileError(f"{where}: task='regression' needs a numeric target, but it holds text "
                                f"(e.g. {y_raw[0]!r}). Use task='classification' or pick another target column.")
        y = torch.as_tensor(np.asarray(y_raw, dtype=np.float64), dtype=torch.float32)
        if y.dim() == 1:
            y = y.unsqueeze(1)  # (N, 1)
        n_classes, out_dim = None, int(np.prod(y.shape[1:]))
    tr, va, te = split(Data(X, y), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    sp = Splits(tr, va, te, task=task, name=name, in_dim=in_dim, out_dim=out_dim, n_classes=n_classes,
                meta={**meta, "seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction})
    if preprocess is not None:
        sp = _preprocess(sp, preprocess)
    return sp


# --------------------------------------------------------------------------- CSV

def _sniff_header(first: list[str], second: list[str] | None) -> bool:
    """The first row is a header when one of its cells is text where the second row has a number
    (so a header-less file with text class labels is not mistaken for one); with a single row,
    when any cell is text."""
    if second is None:
        return any(_parse_float(c) is None for c in first)
    return any(_parse_float(a) is None and _parse_float(b) is not None for a, b in zip(first, second))


def load_csv(path, *, target: str | int = -1, task: str = "auto", header: bool | str = "auto", delimiter: str = ",",
             val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0,
             preprocess: str | None = None) -> Splits:
    """Read a numeric CSV file: one example per row, one column is the target, the rest features.

    ``target``: column name (needs a header) or index (negative counts from the end).
    ``header``: True, False or "auto" (a header when ``target`` is a column name, or when the
    first row has text where the second row has a number).
    Blank lines are skipped. Feature cells must be finite numbers; the target may be text for
    classification. ``preprocess`` ('standardize' or 'minmax') is fitted on the training split
    only and applied to every split. Returns float32 X (N, F); y (N, 1) float32 for regression
    or (N,) long labels 0..C-1 for classification (``meta['classes']`` maps them back).
    """
    _check_options(task, val_fraction, test_fraction, preprocess)
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError(f"delimiter must be a single character, got {delimiter!r}")
    p = _check_path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataFileError(f"{p}: not a UTF-8 text file ({e}). Is this really a CSV file?") from None
    rows: list[tuple[int, list[str]]] = []  # (line number, cells)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        for cells in reader:
            if not cells or all(c.strip() == "" for c in cells):
                continue
            rows.append((reader.line_num, [c.strip() for c in cells]))
    except csv.Error as e:
        raise DataFileError(f"{p}, line {reader.line_num}: malformed CSV ({e}).") from None
    if not rows:
        raise DataFileError(f"{p}: the file is empty (no rows). Expected a header line (optional) and one "
                            f"example per line, columns separated by {delimiter!r}.")

    if header == "auto":
        named_target = isinstance(target, str) and not target.lstrip("-").isdigit()
        has_header = named_target or _sniff_header(rows[0][1], rows[1][1] if len(rows) > 1 else None)
    elif isinstance(header, bool):
        has_header = header
    else:
        raise ValueError(f"header must be True, False or 'auto', got {header!r}")
    ncols = len(rows[0][1])
    if has_header:
        columns = rows[0][1]
        body = rows[1:]
    else:
        columns = [f"col{j}" for j in range(ncols)]
        body = rows
    if not body:
        raise DataFileError(f"{p}: has a header ({delimiter.join(columns)}) but no data rows.")
    if ncols < 2:
        raise DataFileError(f"{p}: has {ncols} column(s); expected at least one feature column and a target column. "
                            f"If the columns are separated by something other than {delimiter!r}, pass delimiter=.")

    # the target column
    if isinstance(target, str) and not (target.lstrip("-").isdigit() and target not in columns):
        if target not in columns:
            shown = columns if has_header else f"(no header: columns are indexed 0..{ncols - 1})"
            raise DataFileError(f"{p}: target column {target!r} does not exist. Columns: {shown}. "
                                f"Pass target= one of these names or an index.")
        t = columns.index(target)
    else:
        t = int(target)
        if not -ncols <= t < ncols:
            raise DataFileError(f"{p}: target column index {t} is out of range for {ncols} columns "
                                f"({', '.join(columns)}). Pass target= an index in [{-ncols}, {ncols - 1}] or a name.")
        t %= ncols
    feat_idx = [j for j in range(ncols) if j != t]

    X = np.empty((len(body), len(feat_idx)), dtype=np.float64)
    y_text: list[str] = []
    for i, (line, cells) in enumerate(body):
        if len(cells) != ncols:
            raise DataFileError(f"{p}, line {line}: has {len(cells)} values, expected {ncols} "
                                f"(like {'the header' if has_header else 'line ' + str(rows[0][0])}). "
                                f"Fix or remove that line.")
        for k, j in enumerate(feat_idx):
            v = _parse_float(cells[j])
            if v is None:
                what = "an empty cell" if cells[j] == "" else f"{cells[j]!r}"
                raise DataFileError(f"{p}, line {line}, column {j + 1} ({columns[j]!r}): expected a number, got "
                                    f"{what}. Fix the value (or remove the row); text is only allowed in the target column.")
            if not math.isfinite(v):
                raise DataFileError(f"{p}, line {line}, column {j + 1} ({columns[j]!r}): value {cells[j]!r} is not "
                                    f"finite. Remove or impute NaN/inf values before loading.")
            X[i, k] = v
        y_text.append(cells[t])

    # the target: numbers when every cell parses, else text labels
    y_num = [_parse_float(c) for c in y_text]
    y_numeric = all(v is not None for v in y_num)
    where_t = f"{p}, column {t + 1} ({columns[t]!r})"
    if y_numeric:
        for (line, _), v, s in zip(body, y_num, y_text):
            if not math.isfinite(v):
                raise DataFileError(f"{p}, line {line}, column {t + 1} ({columns[t]!r}): target value {s!r} is not "
                                    f"finite. Remove or impute NaN/inf values before loading.")
        y_raw = np.asarray(y_num, dtype=np.float64)
    else:
        if task == "regression":
            bad = next(i for i, v in enumerate(y_num) if v is None)
            raise DataFileError(f"{p}, line {body[bad][0]}, column {t + 1} ({columns[t]!r}): task='regression' needs "
                                f"a number, got {y_text[bad]!r}. Use task='classification' for text labels.")
        y_raw = y_text
    meta = {"path": str(p), "format": "csv", "columns": [columns[j] for j in feat_idx], "target": columns[t],
            "header": has_header}
    return _finish(torch.as_tensor(X, dtype=torch.float32), y_raw, y_numeric=y_numeric, task=task, where=where_t,
                   name=p.stem, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                   preprocess=preprocess, meta=meta, in_dim=len(feat_idx))


# --------------------------------------------------------------------------- NPZ

def _first_nonfinite(a: np.ndarray) -> str:
    idx = np.argwhere(~np.isfinite(a))[0]
    return f"index {tuple(int(i) for i in idx)} (value {a[tuple(idx)]!r})"


def load_npz(path, *, x_key: str = "X", y_key: str = "y", task: str = "auto", val_fraction: float = 0.2,
             test_fraction: float = 0.2, seed: int = 0, preprocess: str | None = None) -> Splits:
    """Read arrays ``x_key`` (N, ...) and ``y_key`` (N,) or (N, K) from a numpy ``.npz`` file.

    X of shape (N,) is treated as one feature (N, 1); (N, T, F) arrays are kept (sequence
    models) and then ``in_dim`` is F, otherwise ``in_dim`` is the number of features per
    example. Object arrays are refused (no pickle). Labels: see the module docstring.
    """
    _check_options(task, val_fraction, test_fraction, preprocess)
    p = _check_path(path)
    if p.stat().st_size == 0:
        raise DataFileError(f"{p}: the file is empty. Expected a numpy .npz archive (np.savez(path, X=..., y=...)).")
    try:
        z = np.load(p, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise DataFileError(f"{p}: is a single .npy array, expected an .npz archive with arrays "
                                f"{x_key!r} and {y_key!r}. Save with np.savez(path, {x_key}=X, {y_key}=y).")
        with z:
            keys = list(z.keys())
            missing = [k for k in (x_key, y_key) if k not in keys]
            if missing:
                raise DataFileError(f"{p}: lacks array(s) {', '.join(map(repr, missing))}. Arrays present: "
                                    f"{', '.join(map(repr, keys)) or '(none)'}. Pass x_key=/y_key= to name the ones to use.")
            try:
                Xa, ya = z[x_key], z[y_key]
            except ValueError as e:  # object arrays need pickle
                raise DataFileError(f"{p}: cannot read arrays without pickle ({e}). Store plain numeric arrays.") from None
    except DataFileError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DataFileError(f"{p}: not a readable numpy .npz archive ({e}). Save with np.savez(path, X=..., y=...).") from None

    if Xa.dtype.kind not in "biuf":
        raise DataFileError(f"{p}: array {x_key!r} has dtype {Xa.dtype}, expected numbers (int/float).")
    if Xa.ndim == 0 or ya.ndim == 0:
        raise DataFileError(f"{p}: arrays must have one row per example; got {x_key!r} shape {Xa.shape}, "
                            f"{y_key!r} shape {ya.shape}.")
    if Xa.shape[0] != ya.shape[0]:
        raise DataFileError(f"{p}: {x_key!r} has {Xa.shape[0]} rows but {y_key!r} has {ya.shape[0]}; they must "
                            f"have the same length (one target per example).")
    if Xa.shape[0] == 0:
        raise DataFileError(f"{p}: arrays {x_key!r} and {y_key!r} are empty (0 examples).")
    Xa = Xa.astype(np.float64)
    if not np.all(np.isfinite(Xa)):
        raise DataFileError(f"{p}: array {x_key!r} has a non-finite value at {_first_nonfinite(Xa)}. "
                            f"Remove or impute NaN/inf values before loading.")
    y_numeric = ya.dtype.kind in "biuf"
    if y_numeric:
        ya = ya.astype(np.float64)
        if not np.all(np.isfinite(ya)):
            raise DataFileError(f"{p}: array {y_key!r} has a non-finite value at {_first_nonfinite(ya)}. "
                                f"Remove or impute NaN/inf values before loading.")
        y_raw = ya
    elif ya.dtype.kind in "USb":
        if task == "regression":
            raise DataFileError(f"{p}: task='regression' needs numeric {y_key!r}, got dtype {ya.dtype}.")
        if ya.ndim != 1:
            raise DataFileError(f"{p}: text labels {y_key!r} must be 1-D (one per example), got shape {ya.shape}.")
        y_raw = [str(v) for v in ya.tolist()]
    else:
        raise DataFileError(f"{p}: array {y_key!r} has dtype {ya.dtype}; expected numbers or text labels.")
    if Xa.ndim == 1:
        Xa = Xa[:, None]
    in_dim = int(Xa.shape[-1]) if Xa.ndim == 3 else int(np.prod(Xa.shape[1:]))
    meta = {"path": str(p), "format": "npz", "x_key": x_key, "y_key": y_key, "keys": keys}
    return _finish(torch.as_tensor(Xa, dtype=torch.float32), y_raw, y_numeric=y_numeric, task=task,
                   where=f"{p}, array {y_key!r}", name=p.stem, val_fraction=val_fraction,
                   test_fraction=test_fraction, seed=seed, preprocess=preprocess, meta=meta, in_dim=in_dim)


# --------------------------------------------------------------------------- registry entries

def _need_path(kind: str, path) -> None:
    if path is None:
        raise ValueError(f"the {kind!r} dataset reads a file: pass path=..., e.g. load({kind!r}, path='data.{kind}') "
                         f"or on the command line the dataset option path=data.{kind}")


def _csv_dataset(*, path: str | None = None, seed: int = 0, target: str | int = -1, task: str = "auto",
                 header: bool | str = "auto", delimiter: str = ",", val_fraction: float = 0.2,
                 test_fraction: float = 0.2, preprocess: str | None = None) -> Splits:
    """A user CSV file (path=..., target=column name or index; numeric features)."""
    _need_path("csv", path)
    return load_csv(path, target=target, task=task, header=header, delimiter=delimiter, val_fraction=val_fraction,
                    test_fraction=test_fraction, seed=seed, preprocess=preprocess)


def _npz_dataset(*, path: str | None = None, seed: int = 0, x_key: str = "X", y_key: str = "y", task: str = "auto",
                 val_fraction: float = 0.2, test_fraction: float = 0.2, preprocess: str | None = None) -> Splits:
    """A user numpy .npz file (path=..., arrays x_key='X' and y_key='y')."""
    _need_path("npz", path)
    return load_npz(path, x_key=x_key, y_key=y_key, task=task, val_fraction=val_fraction,
                    test_fraction=test_fraction, seed=seed, preprocess=preprocess)


for _name, _factory in (("csv", _csv_dataset), ("npz", _npz_dataset)):
    if _name not in DATASETS:  # importlib.reload-safe
        DATASETS.register(_name, _factory)

__all__ = ["load_csv", "load_npz", "DataFileError", "DataFileNotFoundError", "AUTO_MAX_CLASSES"]
