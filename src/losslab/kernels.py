"""Kernel choices that second-order differentiation needs (torch-only imports: any room may use it).

``torch.nn.functional.scaled_dot_product_attention`` (inside ``nn.MultiheadAttention`` and so
``nn.TransformerEncoder``) dispatches to fused kernels -- FlashAttention on CPU, the
flash / memory-efficient / cuDNN kernels on CUDA -- whose backward has no derivative of its
own (``derivative for aten::_scaled_dot_product_flash_attention_for_cpu_backward is not
implemented``) and no forward-mode rule. Every Hessian-vector product, by double backward or
forward-over-reverse, differentiates the backward, so it fails there. The MATH backend is
attention written out in differentiable torch ops (softmax(QK^T / sqrt(d)) V) and supports
both; it computes the same function (it is torch's reference implementation).

:func:`second_order` selects it for the duration of a block and restores the caller's backend
flags afterwards, also when the block raises. The operator (``losslab.hessian.operator``)
wraps every product, gradient, loss and exact-Hessian evaluation in it, so every estimator
built on the operator (Lanczos, trace, density, sharpness, tracking) gets it.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


def sdpa_backends() -> dict[str, bool]:
    """The current scaled-dot-product-attention backend flags (global in torch, CPU and CUDA):
    ``{"flash": ..., "mem_efficient": ..., "math": ..., "cudnn": ...}`` -- what
    :func:`second_order` changes and restores."""
    b = torch.backends.cuda
    out = {"flash": b.flash_sdp_enabled(), "mem_efficient": b.mem_efficient_sdp_enabled(), "math": b.math_sdp_enabled()}
    if hasattr(b, "cudnn_sdp_enabled"):
        out["cudnn"] = b.cudnn_sdp_enabled()
    return out


def mha_fastpath() -> bool:
    """Whether ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer`` may take their fused
    inference fast path (``torch.backends.mha``; what :func:`second_order` turns off)."""
    mha = getattr(torch.backends, "mha", None)
    return bool(mha.get_fastpath_enabled()) if mha is not None else False


def has_rnn(model) -> bool:
    """Whether ``model`` (an nn.Module, or None) contains an ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``."""
    from torch import nn

    return model is not None and any(isinstance(m, nn.RNNBase) for m in model.modules())


@contextlib.contextmanager
def _backend_flag(backend, enabled: bool) -> Iterator[None]:
    """Set ``backend.enabled`` (torch.backends.cudnn / mkldnn) for the block, restore after.
    (Not ``backend.flags()``: that also re-sets TF32 and precision flags, and warns on CPU.)"""
    before = bool(backend.enabled)
    backend.enabled = enabled
    try:
        yield
    finally:
        backend.enabled = before


@contextlib.contextmanager
def second_order(model=None) -> Iterator[None]:
    """Run the block with kernels that second-order autodiff (double backward and forward mode)
    can differentiate, and restore the caller's settings on exit, also after an exception
    (re-entrant):

    - scaled dot-product attention on its MATH backend (the fused flash / memory-efficient /
      cuDNN kernels on CPU and CUDA have no double backward and no forward-mode rule);
    - the fused inference fast path of ``nn.TransformerEncoderLayer`` / ``nn.MultiheadAttention``
      off (``torch.backends.mha``: taken whenever no tensor requires grad -- e.g. inside
      ``torch.func.jvp``, as in the Gauss-Newton operator -- and
      ``aten::_transformer_encoder_layer_fwd`` has no forward-mode rule);
    - when ``model`` contains an RNN/LSTM/GRU: oneDNN (``torch.backends.mkldnn``, CPU float32)
      and cuDNN (``torch.backends.cudnn``, CUDA) off, so the recurrences run as plain torch ops:
      ``mkldnn_rnn_layer`` has no forward-mode rule and cuDNN's RNN has no double backward
      (and no backward in eval mode). Only for such models: convolutions keep their fast kernels.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    mha = getattr(torch.backends, "mha", None)
    fast = mha_fastpath()
    with contextlib.ExitStack() as stack:
        if mha is not None:
            mha.set_fastpath_enabled(False)
            stack.callback(mha.set_fastpath_enabled, fast)
        stack.enter_context(sdpa_kernel(SDPBackend.MATH))
        if has_rnn(model):
            stack.enter_context(_backend_flag(torch.backends.mkldnn, False))
            stack.enter_context(_backend_flag(torch.backends.cudnn, False))
        yield


def settings() -> dict[str, bool]:
    """Every flag :func:`second_order` may change, as the caller has it now (for tests)."""
    return {**{f"sdpa_{k}": v for k, v in sdpa_backends().items()}, "mha_fastpath": mha_fastpath(),
            "mkldnn": bool(torch.backends.mkldnn.enabled), "cudnn": bool(torch.backends.cudnn.enabled)}


__all__ = ["second_order", "settings", "sdpa_backends", "mha_fastpath", "has_rnn"]
