"""losslab: a laboratory for how neural networks are trained.

The public API is imported lazily (PEP 562), so ``import losslab`` stays fast and pulls in
plotting, Dask or SciPy only when a function that needs them is used.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Imported eagerly on purpose: ``losslab/train.py`` and ``losslab/gradcheck.py`` are modules
# whose names equal their main function. Binding the functions here, after the submodules
# load, keeps ``losslab.train(...)`` callable even after someone runs ``import losslab.train``.
from .train import Trajectory, train  # noqa: E402
from .gradcheck import gradcheck  # noqa: E402

# public name -> module that defines it
_EXPORTS = {
    # foundation
    "build": "losslab.models", "MODELS": "losslab.models",
    "load": "losslab.data", "DATASETS": "losslab.data", "Data": "losslab.data", "Splits": "losslab.data",
    "kfold": "losslab.data",
    "get_loss": "losslab.losses", "LOSSES": "losslab.losses",
    "OPTIMIZERS": "losslab.optim", "SCHEDULES": "losslab.optim",
    "open_store": "losslab.store", "RunStore": "losslab.store",
    "Figure": "losslab.figures",
    "surface": "losslab.landscape", "Surface": "losslab.landscape", "interpolate": "losslab.landscape",
    "barrier": "losslab.landscape", "project_trajectory": "losslab.landscape", "pca_directions": "losslab.landscape",
    "random_curves": "losslab.landscape", "plane_through": "losslab.landscape",
    "hessian_directions": "losslab.hessian",
    "lambda_max": "losslab.hessian", "hessian_trace": "losslab.hessian", "epsilon_sharpness": "losslab.hessian",
    "sharpness_callback": "losslab.hessian",
    "ols": "losslab.closed_form", "build_for": "losslab.models",
    "save_experiment": "losslab.phenomena.storage", "load_experiment": "losslab.phenomena.storage",
    "load_trained_run": "losslab.store", "Tracker": "losslab.tracker",
    "load_spec": "losslab.experiments", "run_study": "losslab.experiments", "grid_search": "losslab.experiments",
    "cross_validate": "losslab.experiments",
    "write_report": "losslab.report", "write_index": "losslab.report", "run_tour": "losslab.tour",
    "EXPERIMENTS": "losslab.phenomena", "run_experiment": "losslab.phenomena",
    "keep_freed_memory": "losslab.allocator",
}
_SUBMODULES = ("data", "models", "losses", "optim", "params", "store", "landscape", "hessian", "dln", "phenomena",
               "experiments", "report", "figures", "registry")

__all__ = ["train", "Trajectory", "gradcheck"] + sorted(_EXPORTS) + list(_SUBMODULES) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"losslab.{name}")
    raise AttributeError(f"module 'losslab' has no attribute {name!r}")


def __dir__():
    return __all__
