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


def load(name: str, *, seed: int = 0, **options) -> Splits:
    """Load a built-in dataset by name; unknown names list the valid ones."""
    factory = DATASETS.get(name)
    return call_with_options("dataset", name, factory, {"seed": seed, **options})
