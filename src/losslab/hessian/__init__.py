"""Curvature of the loss: Hessian-vector products, the exact Hessian, extreme eigenpairs,
trace, spectral density, sharpness measures and sharpness tracking.

Everything is a pure function of a model's parameters: the model is never mutated. See
docs/hessian.md for the definitions and measured accuracy.
"""
from __future__ import annotations

from .density import SpectralDensity, slq
from .directions import hessian_directions
from .exact import Spectrum, dense_matrix, exact_hessian, exact_spectrum
from .lanczos import ConvergenceReport, ConvergenceWarning, Eigen, lanczos, power_iteration
from .operator import (HVP_METHODS, OPERATOR_KINDS, FunctionOperator, HessianOperator, MatrixOperator, NonFiniteError,
                       UnsupportedModelError, as_operator, ggn_operator, hessian_operator, layer_blocks, select_block)
from .sharpness import (EpsilonSharpness, LossRise, epsilon_sharpness, hessian_trace, lambda_max, loss_rise)
from .trace import TraceEstimate, deflated_hutchinson, hutchinson, hutchpp
from .tracking import sharpness_callback, stability_thresholds

__all__ = [
    "HessianOperator", "hessian_operator", "ggn_operator", "MatrixOperator", "FunctionOperator", "as_operator",
    "HVP_METHODS", "OPERATOR_KINDS", "layer_blocks", "select_block", "NonFiniteError", "UnsupportedModelError",
    "Spectrum", "exact_hessian", "exact_spectrum", "dense_matrix",
    "Eigen", "ConvergenceReport", "ConvergenceWarning", "lanczos", "power_iteration",
    "TraceEstimate", "hutchinson", "hutchpp", "deflated_hutchinson",
    "SpectralDensity", "slq",
    "EpsilonSharpness", "LossRise", "lambda_max", "hessian_trace", "epsilon_sharpness", "loss_rise",
    "sharpness_callback", "stability_thresholds", "hessian_directions",
]
