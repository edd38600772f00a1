"""Matmul precision of a grid evaluation: IEEE float32 by default, TF32 or bfloat16 on request.

TF32 is off by default because it changes the numbers (10-bit mantissa on CUDA tensor cores): a
surface must be what a float32 per-point loop computes unless the caller asks otherwise, and then
the error is measured and reported. The caller's TF32 settings are restored afterwards.
"""
from __future__ import annotations

import contextlib

import torch

from ..registry import Registry

PRECISIONS: Registry = Registry("precision")
PRECISIONS.register("fp32", "fp32", doc="IEEE float32 matmuls (default; no TF32).")
PRECISIONS.register("tf32", "tf32", doc="TF32 tensor-core matmuls on CUDA (10-bit mantissa); error measured and reported.")
PRECISIONS.register("bf16", "bf16", doc="bfloat16 autocast (8-bit mantissa); error measured and reported.")


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device):
    """fp32 / tf32: TF32 off / on for CUDA matmuls and cuDNN, the caller's setting restored; bf16: autocast."""
    if precision in ("fp32", "tf32"):
        old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
    else:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
