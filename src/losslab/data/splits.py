"""Seeded splits, k-fold, and preprocessing fitted on the training split only."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from ..registry import Registry
from .types import Data


def split(data: Data, *, val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0
          ) -> tuple[Data, Data | None, Data | None]:
    """Shuffle with ``seed`` and cut into train/val/test. A fraction of 0 gives None for that split."""
    for nm, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise ValueError(f"{nm} must be in [0, 1), got {f}")
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction + test_fraction}")
    n = data.n
    if val_fraction == 0 and test_fraction == 0:
        return data, None, None
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    n_val = int(round(n * val_fraction))
    n_test = int(round(n * test_fraction))
    if n - n_val - n_test < 1:
        raise ValueError(f"{n} examples leave no training data with these fractions")
    te = perm[:n_test]
    va = perm[n_test : n_test + n_val]
    tr = perm[n_test + n_val :]
    return data.subset(tr), (data.subset(va) if n_val else None), (data.subset(te) if n_test else None)


def kfold(n_or_data: int | Data, k: int = 5, *, seed: int = 0, shuffle: bool = True
          ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (train_idx, val_idx) for each of ``k`` folds; every index is in exactly one val fold."""
    n = n_or_data if isinstance(n_or_data, int) else n_or_data.n
    if not 2 <= k <= n:
        raise ValueError(f"k-fold needs 2 <= k <= n_examples ({n}), got k={k}")
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))) if shuffle else torch.arange(n)
    for fold in torch.tensor_split(idx, k):
        mask = torch.ones(n, dtype=torch.bool)
        mask[fold] = False
        yield idx[mask[idx]], fold


PREPROCESSORS: Registry = Registry("preprocessing")


@dataclass
class Standardizer:
    """x -> (x - mean) / std with statistics from the training split (std of 0 is kept at 1)."""

    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None

    def fit(self, X: torch.Tensor) -> "Standardizer":
        self.mean = X.mean(dim=0, keepdim=True)
        s = X.std(dim=0, keepdim=True, unbiased=False)
        self.std = torch.where(s > 0, s, torch.ones_like(s))
        return self

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            raise RuntimeError("Standardizer.transform called before fit")
        return (X - self.mean) / self.std


@dataclass
class MinMaxScaler:
    """x -> (x - min) / (max - min) with min/max from the training split."""

    lo: torch.Tensor | None = None
    scale: torch.Tensor | None = None

    def fit(self, X: torch.Tensor) -> "MinMaxScaler":
        self.lo = X.amin(dim=0, keepdim=True)
        r = X.amax(dim=0, keepdim=True) - self.lo
        self.scale = torch.where(r > 0, r, torch.ones_like(r))
        return self

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        if self.lo is None:
            raise RuntimeError("MinMaxScaler.transform called before fit")
        return (X - self.lo) / self.scale


PREPROCESSORS.register("standardize", Standardizer)
PREPROCESSORS.register("minmax", MinMaxScaler)


def preprocess(splits, how: str):
    """Fit ``how`` ('standardize' or 'minmax') on splits.train.X and apply it to every split."""
    tf = PREPROCESSORS.get(how)().fit(splits.train.X)
    f = lambda d: None if d is None else Data(tf.transform(d.X), d.y)  # noqa: E731
    return splits.replace(train=f(splits.train), val=f(splits.val), test=f(splits.test),
                          meta={**splits.meta, "preprocessing": how})
