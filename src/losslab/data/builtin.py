"""The built-in datasets (registry ``DATASETS``)."""
from __future__ import annotations

import math

import torch

from ..registry import Registry, call_with_options
from .splits import split
from .types import Data, Splits

DATASETS: Registry = Registry("dataset")

# The seven-point table of the book chapter (../shared/seeds, "Why training is hard").
SEVEN_X = (2.4, 2.8, 3.2, 3.6, 4.0, 4.2, 5.0)
SEVEN_Y = (1.7, 1.85, 1.79, 1.95, 2.1, 2.0, 2.7)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


@DATASETS.register("seven_points")
def seven_points(*, seed: int = 0, val_fraction: float = 0.0, test_fraction: float = 0.0) -> Splits:
    """The chapter's seven (x, y) points; no split by default."""
    d = Data(torch.tensor(SEVEN_X, dtype=torch.float32).unsqueeze(1), torch.tensor(SEVEN_Y, dtype=torch.float32).unsqueeze(1))
    tr, va, te = split(d, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return Splits(tr, va, te, task="regression", name="seven_points", in_dim=1, out_dim=1)


@DATASETS.register("linear")
def linear(*, seed: int = 0, n: int = 200, dim: int = 5, noise: float = 0.1, val_fraction: float = 0.2,
           test_fraction: float = 0.2) -> Splits:
    """y = x . w + b + noise, x ~ N(0, I_dim), w ~ N(0, I), b ~ N(0, 1)."""
    g = _gen(seed)
    w = torch.randn(dim, 1, generator=g)
    b = torch.randn(1, generator=g)
    X = torch.randn(n, dim, generator=g)
    y = X @ w + b + noise * torch.randn(n, 1, generator=g)
    tr, va, te = split(Data(X, y), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return Splits(tr, va, te, task="regression", name="linear", in_dim=dim, out_dim=1,
                  meta={"w": w.squeeze(1).tolist(), "b": float(b), "noise": noise})


@DATASETS.register("polynomial")
def polynomial(*, seed: int = 0, n: int = 12, noise: float = 0.2, n_test: int = 200, val_fraction: float = 0.25) -> Splits:
    """Few noisy points of y = sin(2 pi x) on [0, 1] (the overfitting example), plus a large clean-x test set."""
    g = _gen(seed)
    X = torch.rand(n, 1, generator=g)
    y = torch.sin(2 * math.pi * X) + noise * torch.randn(n, 1, generator=g)
    tr, va, _ = split(Data(X, y), val_fraction=val_fraction, test_fraction=0.0, seed=seed)
    Xt = torch.rand(n_test, 1, generator=g)
    yt = torch.sin(2 * math.pi * Xt) + noise * torch.randn(n_test, 1, generator=g)
    return Splits(tr, va, Data(Xt, yt), task="regression", name="polynomial", in_dim=1, out_dim=1,
                  meta={"curve": "sin(2 pi x)", "noise": noise})


@DATASETS.register("moons")
def moons(*, seed: int = 0, n: int = 400, noise: float = 0.2, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Splits:
    """scikit-learn's two interleaving half circles, two classes (labels 0/1, cross-entropy)."""
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    d = Data(torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.long))
    tr, va, te = split(d, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return Splits(tr, va, te, task="classification", name="moons", in_dim=2, out_dim=2, n_classes=2)


@DATASETS.register("spirals")
def spirals(*, seed: int = 0, n: int = 400, classes: int = 2, turns: float = 1.5, noise: float = 0.1,
            val_fraction: float = 0.2, test_fraction: float = 0.2) -> Splits:
    """``classes`` interleaved spiral arms in the plane."""
    g = _gen(seed)
    per = n // classes
    xs, ys = [], []
    for c in range(classes):
        r = torch.linspace(0.05, 1.0, per)
        t = r * turns * 2 * math.pi + 2 * math.pi * c / classes + noise * torch.randn(per, generator=g)
        xs.append(torch.stack([r * torch.cos(t), r * torch.sin(t)], dim=1))
        ys.append(torch.full((per,), c, dtype=torch.long))
    d = Data(torch.cat(xs), torch.cat(ys))
    tr, va, te = split(d, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return Splits(tr, va, te, task="classification", name="spirals", in_dim=2, out_dim=classes, n_classes=classes)


@DATASETS.register("digits")
def digits(*, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15, n: int | None = None) -> Splits:
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes), pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    b = load_digits()
    X = torch.tensor(b.data / 16.0, dtype=torch.float32)
    y = torch.tensor(b.target, dtype=torch.long)
    if n is not None:
        X, y = X[:n], y[:n]
    tr, va, te = split(Data(X, y), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return Splits(tr, va, te, task="classification", name="digits", in_dim=64, out_dim=10, n_classes=10)


@DATASETS.register("adding")
def adding(*, seed: int = 0, n: int = 1000, length: int = 30, val_fraction: float = 0.1, test_fraction: float = 0.1) -> Splits:
    """The adding problem (Hochreiter & Schmidhuber 1997): inputs (N, T, 2) = (value in U[0,1],
    marker); exactly two markers, one in each half; target = sum of the two marked values.
    Predicting the constant 1 gives mse ~ 1/6 (the trivial loss)."""
    if length < 2:
        raise ValueError(f"adding problem needs length >= 2, got {length}")
    g = _gen(seed)
    vals = torch.rand(n, length, generator=g)
    half = length // 2
    i = torch.randint(0, half, (n,), generator=g)
    j = torch.randint(half, length, (n,), generator=g)
    marks = torch.zeros(n, length)
    marks[torch.arange(n), i] = 1.0
    marks[torch.arange(n), j] = 1.0
    X = torch.stack([vals, marks], dim=2)
    y = (vals * marks).sum(dim=1, keepdim=True)
    tr, va, te = split(Data(X, y), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return Splits(tr, va, te, task="regression", name="adding", in_dim=2, out_dim=1, meta={"length": length})


# MNIST-1D (Greydanus 2020, "Scaling down deep learning", arXiv 2011.14439): ten 1-D digit templates,
# padded, translated, sheared, scaled, blurred with correlated noise and downsampled to 40 points.
# Always generated here from the PyPI package's make_dataset (never its download function: no network).
# Generation takes ~1.3 s idle (5-10 s on a loaded 2-core machine, with the package's matplotlib import),
# so the arrays are cached per seed: in-process (a dict) and in a file cache
# <cache dir>/mnist1d/v<package version>-seed<seed>.npz, where the cache dir is $LOSSLAB_CACHE_DIR, else
# $XDG_CACHE_HOME/losslab, else ~/.cache/losslab. The file is written atomically (temporary file + rename);
# a file that cannot be read or has the wrong shapes is regenerated; an unwritable cache dir is skipped.
_MNIST1D_CACHE: dict[int, tuple] = {}
MNIST1D_SHAPES = ((4000, 40), (4000,), (1000, 40), (1000,))


def cache_dir():
    """The losslab file-cache directory (not created here)."""
    import os
    from pathlib import Path

    if os.environ.get("LOSSLAB_CACHE_DIR"):
        return Path(os.environ["LOSSLAB_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "losslab"


def _mnist1d_file(seed: int):
    from importlib.metadata import version

    return cache_dir() / "mnist1d" / f"v{version('mnist1d')}-seed{seed}.npz"


def _mnist1d_generate(seed: int):
    """``mnist1d.data.make_dataset`` with the package's default arguments and ``seed`` (no download). The
    package seeds numpy's and Python's global generators; their states are restored afterwards."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:  # pragma: no cover - the package is a dependency
        raise ImportError("dataset 'mnist1d' needs the PyPI package mnist1d: pip install 'mnist1d>=0.0.2,<0.1'") from e
    import random

    import numpy as np

    args = get_dataset_args()  # 5000 samples, train_split 0.8, final_seq_length 40
    args.seed = int(seed)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return tuple(np.asarray(d[k]) for k in ("x", "y", "x_test", "y_test"))


def _mnist1d_arrays(seed: int, cache: bool = True):
    """(x (4000, 40), y (4000,), x_test (1000, 40), y_test (1000,)) read-only numpy arrays for ``seed``."""
    import numpy as np

    if cache and seed in _MNIST1D_CACHE:
        return _MNIST1D_CACHE[seed]
    out = None
    path = _mnist1d_file(seed) if cache else None
    if path is not None and path.exists():
        try:
            with np.load(path) as f:
                out = tuple(f[k] for k in ("x", "y", "x_test", "y_test"))
            if tuple(a.shape for a in out) != MNIST1D_SHAPES:
                out = None
        except Exception:  # a damaged cache file: regenerate
            out = None
    if out is None:
        out = _mnist1d_generate(seed)
        if path is not None:
            try:
                import os
                import tempfile

                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, x=out[0], y=out[1], x_test=out[2], y_test=out[3])
                os.replace(tmp, path)
            except OSError:  # read-only or full disk: the in-process cache still works
                pass
    for a in out:
        a.setflags(write=False)  # shared by every caller through the cache
    if cache:
        _MNIST1D_CACHE[seed] = out
    return out


@DATASETS.register("mnist1d")
def mnist1d(*, seed: int = 0, val_fraction: float = 0.2, cache: bool = True) -> Splits:
    """MNIST-1D (Greydanus 2020): 40 features, 10 classes; 4000 train (cut into train/val) + 1000 test, generated
    procedurally by the mnist1d package with ``seed`` (never downloaded; cached per seed in-process and on disk)."""
    x, y, xt, yt = _mnist1d_arrays(int(seed), cache=bool(cache))
    d = Data(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long))
    tr, va, _ = split(d, val_fraction=val_fraction, test_fraction=0.0, seed=seed)
    te = Data(torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.long))
    return Splits(tr, va, te, task="classification", name="mnist1d", in_dim=int(x.shape[1]), out_dim=10, n_classes=10,
                  meta={"source": "mnist1d.data.make_dataset (Greydanus 2020, arXiv 2011.14439), generated locally",
                        "generation_seed": int(seed), "n_generated": int(len(y) + len(yt)),
                        "train_pool": int(len(y)), "val_fraction": val_fraction,
                        "features": "40-point 1-D signals, globally centred to mean 0 and std 1",
                        "cache": str(_mnist1d_file(int(seed))) if cache else "off"})


def load(name: str, *, seed: int = 0, **options) -> Splits:
    """Load a built-in dataset by name; unknown names list the valid ones."""
    factory = DATASETS.get(name)
    return call_with_options("dataset", name, factory, {"seed": seed, **options})
