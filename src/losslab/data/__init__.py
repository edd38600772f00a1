"""Built-in datasets and user data: ``load(name, *, seed=0, **options)`` returns train/val/test splits.

Every dataset is generated or shipped by a package (scikit-learn's digits); nothing is
downloaded at run time. User files (CSV, NPZ) go through :mod:`losslab.data.files`.
"""
from __future__ import annotations

from .types import Data, Splits, as_data, iterate_batches
from .builtin import DATASETS, load
from .splits import kfold, split, Standardizer, MinMaxScaler, PREPROCESSORS
from .files import load_csv, load_npz

__all__ = ["Data", "Splits", "DATASETS", "load", "as_data", "iterate_batches", "kfold", "split",
           "Standardizer", "MinMaxScaler", "PREPROCESSORS", "load_csv", "load_npz"]
