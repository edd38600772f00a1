"""Your model as it is: reading a forward's output and a batch, whatever their shape.

Two small functions every entry point that evaluates a model goes through (surface,
interpolation, the Hessian operator and its estimators, sharpness, train, gradcheck):

- :func:`select_output` turns what ``model(X)`` returned into the one tensor the loss takes.
  ``output=None`` means the forward returns a tensor; a ``str`` is a key of a dict (or a
  Hugging Face style ``ModelOutput``) or an attribute of a dataclass / named tuple; an ``int``
  indexes a tuple or list; a callable ``output(out) -> tensor`` does anything else.
- :func:`split_batch` turns one batch into ``(inputs, targets)``: an ``(X, y, ...)`` tuple or
  list by default, or a dict batch read with ``batch_keys=(inputs_key, targets_key)``.

Errors name what was received (the type, the keys, the length) and the hint fits it (a dict
gets ``output='logits'``, a tuple ``output=0``). The lowest floor: imports torch only.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Callable, Union

import torch

class OutputError(ValueError, TypeError):
    """A forward's output or a batch that cannot be read as asked (a ValueError and a TypeError)."""


OutputSpec = Union[None, str, int, Callable[[Any], torch.Tensor]]
BatchKeys = Union[None, tuple]


def _kind(out) -> str:
    return type(out).__name__


def _fields(out) -> list[str] | None:
    """The named fields of a dict, a dataclass or a named tuple (None for anything else)."""
    if isinstance(out, Mapping):
        return [str(k) for k in out.keys()]
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return [f.name for f in dataclasses.fields(out)]
    if isinstance(out, tuple) and hasattr(out, "_fields"):
        return list(out._fields)
    return None


def _tensor_fields(out) -> list[str]:
    names = _fields(out) or []
    return [n for n in names if isinstance(_get_field(out, n), torch.Tensor)]


def _get_field(out, name: str):
    if isinstance(out, Mapping):
        return out.get(name)
    return getattr(out, name, None)


def _suggest_key(out) -> str:
    tensors = _tensor_fields(out)
    for pref in ("logits", "output", "out", "prediction", "pred", "y"):
        if pref in tensors:
            return pref
    return tensors[0] if tensors else ((_fields(out) or ["logits"])[0])


def describe(out) -> str:
    """What a forward returned, for error messages: the type and its keys / length / shape."""
    if isinstance(out, torch.Tensor):
        return f"a tensor of shape {tuple(out.shape)}"
    names = _fields(out)
    if names is not None:
        return f"a {_kind(out)} with keys {names}"
    if isinstance(out, (tuple, list)):
        parts = ", ".join(f"tensor {tuple(t.shape)}" if isinstance(t, torch.Tensor) else _kind(t) for t in out[:6])
        return f"a {_kind(out)} of length {len(out)} ({parts}{', ...' if len(out) > 6 else ''})"
    return f"a {_kind(out)}"


def hint(out) -> str:
    """An ``output=`` that fits ``out``."""
    if _fields(out) is not None:
        return f"output={_suggest_key(out)!r}"
    if isinstance(out, (tuple, list)):
        first = next((i for i, t in enumerate(out) if isinstance(t, torch.Tensor)), 0)
        return f"output={first}"
    return "output=lambda out: ...  (a callable returning the logits tensor)"


def check_output_spec(output: OutputSpec) -> OutputSpec:
    """``output`` is None, a str, an int or a callable; anything else is a clear TypeError."""
    if output is None or isinstance(output, str) or callable(output):
        return output
    if isinstance(output, int) and not isinstance(output, bool):
        return output
    raise OutputError(f"output must be None (the forward returns a tensor), a key or attribute name (str, e.g. "
                    f"output='logits'), an index (int, e.g. output=0) or a callable output(out) -> tensor; got "
                    f"{output!r} ({type(output).__name__})")


def select_output(out, output: OutputSpec = None) -> torch.Tensor:
    """The tensor the loss takes, read from a forward's return value ``out`` as ``output`` says."""
    if output is None:
        if isinstance(out, torch.Tensor):
            return out
        raise OutputError(f"the model returned {describe(out)}, not a tensor: say which part the loss takes with "
                         f"{hint(out)}")
    if callable(output) and not isinstance(output, (str, int)):
        sel = output(out)
        what = f"output={getattr(output, '__name__', 'callable')}(out)"
    elif isinstance(output, str):
        names = _fields(out)
        if names is None:
            # an object with the attribute (e.g. a custom output class) is read by name too
            if not hasattr(out, output) or isinstance(out, (torch.Tensor, tuple, list)):
                raise OutputError(f"output={output!r} names a key, but the model returned {describe(out)}, which has "
                                 f"no keys; use {hint(out)}")
            sel = getattr(out, output)
        else:
            if output not in names:
                raise OutputError(f"output={output!r} is not a key of the model's output: it returned {describe(out)}; "
                                 f"use one of them, e.g. {hint(out)}")
            sel = _get_field(out, output)
        what = f"output={output!r}"
    elif isinstance(output, int) and not isinstance(output, bool):
        seq = out if isinstance(out, (tuple, list)) else (
            out.to_tuple() if isinstance(out, Mapping) and callable(getattr(out, "to_tuple", None)) else None)
        if seq is None:  # a Hugging Face ModelOutput indexes its non-None fields (to_tuple) too
            raise OutputError(f"output={output} is an index, but the model returned {describe(out)}; use {hint(out)}")
        if not -len(seq) <= output < len(seq):
            raise OutputError(f"output={output} is out of range: the model returned {describe(out)}; use an "
                              f"index from 0 to {len(seq) - 1}")
        sel = seq[output]
        what = f"output={output}"
    else:
        check_output_spec(output)  # raises
        raise AssertionError("unreachable")
    if not isinstance(sel, torch.Tensor):
        raise OutputError(f"{what} selected {describe(sel)}, not a tensor, from {describe(out)}; select the logits "
                         f"tensor (a callable output=lambda out: ... can dig deeper)")
    return sel


def check_batch_keys(batch_keys: BatchKeys) -> BatchKeys:
    """None or a pair (inputs_key, targets_key)."""
    if batch_keys is None:
        return None
    if isinstance(batch_keys, (tuple, list)) and len(batch_keys) == 2 and \
            all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in batch_keys):
        return tuple(batch_keys)
    raise OutputError(f"batch_keys must be a pair (inputs_key, targets_key), e.g. batch_keys=('pixels', 'label'); "
                    f"got {batch_keys!r}")


def describe_batch(batch) -> str:
    if isinstance(batch, Mapping):
        return f"a {_kind(batch)} with keys {[str(k) for k in batch.keys()]}"
    if isinstance(batch, (tuple, list)):
        return f"a {_kind(batch)} of length {len(batch)}"
    if isinstance(batch, torch.Tensor):
        return f"a tensor of shape {tuple(batch.shape)}"
    return f"a {_kind(batch)}"


def _keys_hint(batch: Mapping) -> str:
    keys = [k for k in batch.keys()]
    xs = [k for k in keys if str(k).lower() in ("x", "input", "inputs", "pixels", "pixel_values", "input_ids",
                                                "image", "images", "features", "data")]
    ys = [k for k in keys if str(k).lower() in ("y", "label", "labels", "target", "targets")]
    x = xs[0] if xs else (keys[0] if keys else "inputs")
    y = ys[0] if ys else (keys[1] if len(keys) > 1 else "labels")
    return f"batch_keys=({x!r}, {y!r})"


def split_batch(batch, batch_keys: BatchKeys = None) -> tuple[Any, Any]:
    """``(inputs, targets)`` of one batch: ``batch[0], batch[1]`` of a tuple/list, or
    ``batch[inputs_key], batch[targets_key]`` with ``batch_keys``."""
    if batch_keys is None:
        if isinstance(batch, (tuple, list)) and len(batch) >= 2:
            return batch[0], batch[1]
        if isinstance(batch, Mapping):
            raise OutputError(f"a batch is {describe_batch(batch)}: say which key holds the inputs and which the "
                            f"targets with {_keys_hint(batch)}")
        raise OutputError(f"each batch must be an (X, y) pair (or a dict read with batch_keys=(inputs_key, "
                        f"targets_key)); got {describe_batch(batch)}")
    xk, yk = check_batch_keys(batch_keys)
    if isinstance(batch, Mapping):
        missing = [k for k in (xk, yk) if k not in batch]
        if missing:
            raise OutputError(f"batch_keys={tuple(batch_keys)!r}: the batch has no key {missing[0]!r}; it is "
                           f"{describe_batch(batch)} (use e.g. {_keys_hint(batch)})")
        return batch[xk], batch[yk]
    if isinstance(batch, (tuple, list)) and all(isinstance(k, int) for k in (xk, yk)):
        if max(xk, yk) >= len(batch):
            raise OutputError(f"batch_keys={tuple(batch_keys)!r} indexes past the end of the batch, "
                           f"{describe_batch(batch)}")
        return batch[xk], batch[yk]
    raise OutputError(f"batch_keys={tuple(batch_keys)!r} reads dict batches, but a batch is {describe_batch(batch)}; "
                    f"pass batch_keys=None for (X, y) batches")


class OutputSelected(torch.nn.Module):
    """``model`` seen through ``output=``: its forward returns ``select_output(model(x), output)``.
    Holds ``model`` as its submodule ``inner`` (parameters named ``inner.<name>``); used where a
    function that takes a plain model (e.g. a training callback) must see the selected tensor."""

    def __init__(self, model: torch.nn.Module, output: OutputSpec):
        super().__init__()
        self.inner = model
        self.output = check_output_spec(output)

    def forward(self, *args, **kwargs):
        return select_output(self.inner(*args, **kwargs), self.output)


__all__ = ["OutputSelected", "select_output", "split_batch", "check_output_spec", "check_batch_keys", "describe", "hint",
           "describe_batch", "OutputError", "OutputSpec", "BatchKeys"]
