"""Rebuild the trained model of a stored training run, so analyses (surface, hessian) can run
on it later. A training run stores its data/model settings and its parameter snapshots; the
model is rebuilt from the settings and the last snapshot is loaded into it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .runstore import RunRecord, RunStore, StoreError


@dataclass(frozen=True)
class TrainedRun:
    """A stored training run, ready to analyse: the model at its final parameters, its data,
    its loss name, the run's record and its parameter snapshots (K, P) with their steps."""

    record: RunRecord
    model: nn.Module
    splits: object
    loss: object  # a losslab.losses.Loss
    snapshots: np.ndarray
    snapshot_steps: np.ndarray


def load_trained_run(store: RunStore, run_id: str) -> TrainedRun:
    """The trained model of run ``run_id`` (an id or unique prefix) of kind ``train``."""
    from ..data import load
    from ..losses import get_loss
    from ..models import build_for
    from ..params import load_flat

    rec = store.get(run_id)
    if rec.kind != "train":
        raise StoreError(f"run {rec.id} is a {rec.kind!r} run; analyses need a training run (kind 'train')")
    s = rec.settings
    missing = [k for k in ("data", "model") if k not in s]
    if missing and s.get("source") == "tracker":
        raise StoreError(
            f"run {rec.id} was recorded by losslab.Tracker around your own model ({s.get('model_class', 'your class')}), which losslab cannot rebuild from the run's settings. Measure it from Python with your "
            f"model: snaps = losslab.open_store(STORE).load_arrays({rec.id!r})['snapshots']; net = "
            f"losslab.params.load_flat(model, torch.as_tensor(snaps[-1])); losslab.surface(net, data, loss=..., "
            f"directions=losslab.pca_directions(snaps, 2, model=net)). (A built-in model tracked with "
            f"Tracker(settings={{'data': NAME, 'model': NAME, 'model_options': {{...}}}}) can be rebuilt.)")
    if missing:
        raise StoreError(f"run {rec.id} does not record its {' and '.join(missing)}; it cannot be rebuilt "
                         f"(runs made by `losslab train` and `losslab run` record them)")
    splits = load(s["data"], seed=int(s.get("data_seed", s.get("seed", 0))), **(s.get("data_options") or {}))
    # the model factory from below (models.build_for), with the settings every training run records
    model = build_for(s["model"], splits, init=s.get("init", "default"), init_scale=float(s.get("init_scale", 1.0)),
                      seed=int(s.get("model_seed", s.get("seed", 0))), **(s.get("model_options") or {}))
    arrays = store.load_arrays(rec.id)
    snaps = arrays.get("snapshots")
    if snaps is None or snaps.ndim != 2 or len(snaps) == 0:
        raise StoreError(f"run {rec.id} has no parameter snapshots")
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if snaps.shape[1] != n:
        raise StoreError(f"run {rec.id}: snapshots have {snaps.shape[1]} parameters but the rebuilt "
                         f"{s['model']} has {n}; the stored settings do not describe this model")
    p0 = next(model.parameters())
    model = load_flat(model, torch.as_tensor(snaps[-1], dtype=p0.dtype))
    loss = get_loss(s.get("loss") or splits.default_loss, **(s.get("loss_options") or {}))
    return TrainedRun(rec, model, splits, loss, snaps, arrays.get("snapshot_steps", np.arange(len(snaps))))
