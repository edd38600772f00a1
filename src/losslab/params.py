"""One view of a model's parameters: flat vector <-> dict of tensors <-> nn.Module.

Everything here is functional (torch.func.functional_call): the caller's module is never
mutated -- not its parameters, buffers, requires_grad flags, nor its train/eval mode.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Mapping

import torch
from torch import nn
from torch.func import functional_call

ParamDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ParamSpec:
    """Names, shapes and offsets of a set of parameters laid out in one flat vector."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    dtype: torch.dtype
    device: torch.device

    @property
    def numels(self) -> tuple[int, ...]:
        return tuple(int(torch.Size(s).numel()) for s in self.shapes)

    @property
    def size(self) -> int:
        return sum(self.numels)

    def offsets(self) -> dict[str, tuple[int, int]]:
        out, i = {}, 0
        for n, k in zip(self.names, self.numels):
            out[n] = (i, i + k)
            i += k
        return out

    def flatten(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Dict -> flat vector (order of ``names``)."""
        missing = [n for n in self.names if n not in params]
        if missing:
            raise KeyError(f"parameter dict lacks {missing}; expected names {list(self.names)}")
        return torch.cat([params[n].reshape(-1) for n in self.names]) if self.names else torch.zeros(0)

    def unflatten(self, vec: torch.Tensor) -> ParamDict:
        """Flat vector (..., P) -> dict of tensors with leading batch dims kept."""
        if vec.shape[-1] != self.size:
            raise ValueError(f"flat vector has {vec.shape[-1]} entries, expected {self.size} ({len(self.names)} tensors)")
        lead = vec.shape[:-1]
        out, i = {}, 0
        for n, s, k in zip(self.names, self.shapes, self.numels):
            out[n] = vec[..., i : i + k].reshape(*lead, *s)
            i += k
        return out


def trainable_params(model: nn.Module, *, include_frozen: bool = False) -> ParamDict:
    """Detached copies-by-reference of the model's parameters (requires_grad ones by default)."""
    return {n: p.detach() for n, p in model.named_parameters() if include_frozen or p.requires_grad}


def param_spec(model_or_params: nn.Module | Mapping[str, torch.Tensor], *, include_frozen: bool = False) -> ParamSpec:
    params = (
        trainable_params(model_or_params, include_frozen=include_frozen)
        if isinstance(model_or_params, nn.Module)
        else dict(model_or_params)
    )
    if not params:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    first = next(iter(params.values()))
    return ParamSpec(
        names=tuple(params),
        shapes=tuple(p.shape for p in params.values()),
        dtype=first.dtype,
        device=first.device,
    )


def flatten_params(model: nn.Module, *, include_frozen: bool = False) -> torch.Tensor:
    """The model's trainable parameters as one detached flat vector (a copy)."""
    spec = param_spec(model, include_frozen=include_frozen)
    return spec.flatten(trainable_params(model, include_frozen=include_frozen)).clone()


def buffers_of(model: nn.Module) -> ParamDict:
    return {n: b for n, b in model.named_buffers()}


@contextlib.contextmanager
def eval_mode(model: nn.Module, train: bool = False) -> Iterator[nn.Module]:
    """Temporarily set train/eval mode, restoring every submodule's own flag afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.train(train)
        yield model
    finally:
        for m, t in modes:
            m.training = t


def call(model: nn.Module, params: Mapping[str, torch.Tensor], *args, buffers: Mapping[str, torch.Tensor] | None = None,
         **kwargs):
    """model(*args) with ``params`` (missing ones taken from the model) and without touching it.

    Buffers are passed as copies so batch-norm running statistics of the caller's model are
    never updated, even in train mode.
    """
    bufs = buffers if buffers is not None else {n: b.clone() for n, b in model.named_buffers()}
    return functional_call(model, ({**dict(params), **bufs}), args, kwargs, strict=False, tie_weights=True)


def load_flat(model: nn.Module, vec: torch.Tensor, *, include_frozen: bool = False) -> nn.Module:
    """A deep copy of ``model`` with its parameters set from ``vec``. The original is untouched."""
    import copy

    spec = param_spec(model, include_frozen=include_frozen)
    new = copy.deepcopy(model)
    values = spec.unflatten(vec.detach().to(spec.dtype))
    with torch.no_grad():
        named = dict(new.named_parameters())
        for n, v in values.items():
            named[n].copy_(v)
    return new


def module_fingerprint(model: nn.Module) -> tuple:
    """A snapshot of everything callers care about, used by tests to prove non-mutation."""
    return (
        tuple((n, p.detach().clone(), p.requires_grad) for n, p in model.named_parameters()),
        tuple((n, b.detach().clone()) for n, b in model.named_buffers()),
        tuple(m.training for m in model.modules()),
    )


def same_fingerprint(a: tuple, b: tuple) -> bool:
    pa, ba, ma = a
    pb, bb, mb = b
    if ma != mb or len(pa) != len(pb) or len(ba) != len(bb):
        return False
    for (n1, t1, r1), (n2, t2, r2) in zip(pa, pb):
        if n1 != n2 or r1 != r2 or not torch.equal(t1, t2):
            return False
    for (n1, t1), (n2, t2) in zip(ba, bb):
        if n1 != n2 or not torch.equal(t1, t2):
            return False
    return True
