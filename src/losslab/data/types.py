"""Data containers: ``Data`` (X, y) and ``Splits`` (train/val/test + what the task is)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Iterator, Mapping, NamedTuple

import torch


class Data(NamedTuple):
    """Inputs X (N, ...) and targets y (N, ...) as tensors with the same first dimension."""

    X: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:  # number of examples, not the tuple length
        return int(self.X.shape[0])

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    def subset(self, idx: torch.Tensor) -> "Data":
        return Data(self.X[idx], self.y[idx])

    def to(self, *args, **kwargs) -> "Data":
        X = self.X.to(*args, **kwargs)
        y = self.y.to(*args, **kwargs) if self.y.is_floating_point() else self.y.to(device=X.device)
        return Data(X, y)


@dataclass(frozen=True)
class Splits:
    """Train/validation/test splits of one dataset. ``task`` is 'regression', 'classification'
    or 'binary'; ``meta`` holds the generating options (and e.g. the true coefficients)."""

    train: Data
    val: Data | None = None
    test: Data | None = None
    task: str = "regression"
    name: str = "data"
    in_dim: int = 1
    out_dim: int = 1
    n_classes: int | None = None
    meta: dict = field(default_factory=dict)

    @property
    def default_loss(self) -> str:
        return {"regression": "mse", "classification": "cross_entropy", "binary": "bce"}[self.task]

    def replace(self, **kw) -> "Splits":
        return replace(self, **kw)

    def to(self, *args, **kwargs) -> "Splits":
        f = lambda d: None if d is None else d.to(*args, **kwargs)  # noqa: E731
        return replace(self, train=f(self.train), val=f(self.val), test=f(self.test))


def as_data(data) -> Data:
    """Accept Data, Splits (its train split), or an (X, y) pair of tensors/arrays."""
    if isinstance(data, Data):
        return data
    if isinstance(data, Splits):
        return data.train
    if isinstance(data, (tuple, list)) and len(data) == 2:
        X, y = (torch.as_tensor(v) for v in data)
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
        return Data(X, y)
    raise TypeError(f"expected Data, Splits or an (X, y) pair, got {type(data).__name__}")


def iterate_batches(data, batch_size: int | None = None, *,
                    batch_keys: tuple | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (X, y) batches from an (X, y) pair/Data (in order) or from any iterable of batches
    (a DataLoader). ``batch_size=None`` yields the full tensors once. Batches of an iterable are
    ``(X, y, ...)`` tuples/lists, or dicts read with ``batch_keys=(inputs_key, targets_key)``
    (:func:`losslab.adapters.split_batch`)."""
    from ..adapters import check_batch_keys, split_batch

    batch_keys = check_batch_keys(batch_keys)
    if isinstance(data, Mapping):  # one dict batch holding all the data
        data = tuple(split_batch(data, batch_keys))
    if isinstance(data, (Data, Splits)) or (isinstance(data, (tuple, list)) and len(data) == 2
                                            and isinstance(data[0], torch.Tensor) and isinstance(data[1], torch.Tensor)
                                            and data[0].shape[0] == data[1].shape[0] and data[0].dim() > 0):
        d = as_data(data)
        if batch_size is None or batch_size >= d.n:
            yield d.X, d.y
            return
        for i in range(0, d.n, batch_size):
            yield d.X[i : i + batch_size], d.y[i : i + batch_size]
        return
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes, torch.Tensor)):
        for batch in data:
            yield split_batch(batch, batch_keys)
        return
    raise TypeError(f"cannot iterate batches from {type(data).__name__}")
