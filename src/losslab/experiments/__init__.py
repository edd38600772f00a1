"""Experiments at scale: study specs (TOML, validated), the runner (sweeps, analyses, resume),
Dask execution, and sequential hyperparameter search / cross-validation.

    >>> from losslab.experiments import load_spec, run_study
    >>> result = run_study(load_spec("study.toml"), store="losslab-runs", workers=2)
"""
from .executors import Executor, LocalExecutor
from .runner import StudyResult, Unit, plan, run_study
from .units import execute_unit
from .search import CrossValidation, GridSearch, cross_validate, grid_search
from .spec import (AXIS_ALIASES, RunConfig, SpecError, StudySpec, default_spec_path, load_default_spec, load_spec,
                   spec_hash, validate_spec)


def DaskExecutor(*args, **kwargs):  # noqa: N802 - a lazy alias of the class (dask is optional)
    """``losslab.experiments.distributed.DaskExecutor`` (needs ``losslab[dask]``)."""
    from .distributed import DaskExecutor as _D

    return _D(*args, **kwargs)


__all__ = ["StudySpec", "RunConfig", "SpecError", "load_spec", "validate_spec", "spec_hash", "default_spec_path",
           "load_default_spec", "AXIS_ALIASES", "run_study", "plan", "execute_unit", "StudyResult", "Unit",
           "Executor", "LocalExecutor", "DaskExecutor", "grid_search", "cross_validate", "GridSearch", "CrossValidation"]
