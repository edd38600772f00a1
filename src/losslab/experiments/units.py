"""Executing one unit of a study: a pure function of its payload (a plain dict) that returns a
plain dict of numpy arrays. Workers (a Dask cluster's, or this process) run only this module;
the runner (``runner.py``) plans units and writes their results, so the arrows point one way:
runner -> executors / distributed -> units.

Units: ``train`` (one training run), ``surface_chunk`` (one slice of a surface grid),
``hessian`` (top eigenvalues of a trained model), ``experiment`` / ``dln`` (a named phenomenon).
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .spec import RunConfig




def _device(pref: str) -> str:
    import torch

    if pref == "cpu" or (pref == "auto" and not torch.cuda.is_available()):
        return "cpu"
    if not torch.cuda.is_available():
        raise RuntimeError("train.device = 'cuda' but CUDA is not available on this worker")
    n = torch.cuda.device_count()
    idx = 0
    try:  # one GPU per worker: worker i of a cluster uses GPU i mod n
        from distributed import get_worker

        name = get_worker().name
        idx = int(str(name).rsplit("-", 1)[-1]) % n if str(name).rsplit("-", 1)[-1].isdigit() else hash(name) % n
    except Exception:
        pass
    return f"cuda:{idx}"


def load_data(cfg: RunConfig):
    from ..data import load

    return load(cfg.data.name, seed=cfg.data.seed, **cfg.data.options)


def build_model(model_spec, splits):
    """Build the spec's model; ``in_dim``/``out_dim`` default to the data's when the model takes them."""
    from ..models import build_for

    return build_for(model_spec.name, splits, init=model_spec.init, init_scale=model_spec.init_scale,
                     seed=model_spec.seed, **model_spec.options)


def _loss_name(cfg: RunConfig, splits) -> str:
    return cfg.train.loss or splits.default_loss


def trained_model(cfg: RunConfig, params: np.ndarray):
    """The model of a training run with its final parameters loaded (for the analyses)."""
    import torch

    from ..params import load_flat

    splits = load_data(cfg)
    model = build_model(cfg.model, splits)
    p0 = next(model.parameters())
    return load_flat(model, torch.as_tensor(np.asarray(params), dtype=p0.dtype)), splits


def _train_unit(p: dict) -> dict:
    from ..train import train

    cfg = RunConfig.model_validate(p["config"])
    splits = load_data(cfg)
    model = build_model(cfg.model, splits)
    t = cfg.train
    traj = train(model, splits, loss=t.loss, optimizer=t.optimizer, lr=t.lr, steps=t.steps, batch_size=t.batch_size,
                 seed=t.seed, optimizer_options=t.optimizer_options or None, schedule=t.schedule,
                 schedule_options=t.schedule_options or None, weight_decay=t.weight_decay, input_noise=t.input_noise,
                 early_stopping=t.early_stopping, eval_every=t.eval_every, snapshot_every=t.snapshot_every,
                 grad_clip=t.grad_clip, device=_device(t.device))
    settings = {**traj.settings, "data": cfg.data.name, "data_seed": cfg.data.seed, "data_options": cfg.data.options,
                "model": cfg.model.name, "model_options": cfg.model.options, "init": cfg.model.init,
                "init_scale": cfg.model.init_scale, "model_seed": cfg.model.seed, "sweep": p["point"]}
    return {"status": traj.status, "arrays": traj.arrays(), "summary": traj.summary(), "settings": settings,
            "wall_time": traj.wall_time, "message": traj.message,
            "result": {"param_names": list(traj.param_names), "config": p["config"]}}


def _surface_chunk_unit(p: dict) -> dict:
    import torch

    from ..landscape import evaluate_points
    from ..landscape.directions import resolve_directions

    t0 = time.perf_counter()
    cfg = RunConfig.model_validate(p["config"])
    a = p["analysis"]
    model, splits = trained_model(cfg, p["params"])
    d = resolve_directions(model, a["directions"], dim=a["dim"], seed=a["seed"], include_biases=a["include_biases"],
                           orthogonalize=a["orthogonalize"])
    coords, _ = surface_coords(a)
    idx = np.array_split(np.arange(coords.shape[0]), p["n_chunks"])[p["chunk"]]
    dtype = getattr(torch, a["dtype"])
    dev = _device(cfg.train.device)
    r = evaluate_points(model, splits.train, _loss_name(cfg, splits), d.base, d.vectors,
                        torch.as_tensor(coords[idx]), dtype=dtype, device=dev)
    arrays = {"index": idx, "loss": r.loss.double().numpy()}
    if r.accuracy is not None:
        arrays["accuracy"] = r.accuracy.double().numpy()
    if p["chunk"] == 0:  # the plane itself, stored once with the assembled surface
        arrays["base"] = d.base.detach().double().cpu().numpy()
        arrays["directions"] = d.vectors.detach().double().cpu().numpy()
    return {"status": "completed", "arrays": arrays, "wall_time": time.perf_counter() - t0}


def surface_coords(a: dict) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Grid coordinates (M, k) in the order of ``losslab.landscape.surface`` (meshgrid 'ij', row-major)."""
    from ..landscape import grid_axes

    axes = grid_axes(a["resolution"], a["span"], a["dim"])
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=1), axes


def _hessian_unit(p: dict) -> dict:
    import torch

    from ..hessian import hessian_operator, lanczos

    t0 = time.perf_counter()
    cfg = RunConfig.model_validate(p["config"])
    a = p["analysis"]
    model, splits = trained_model(cfg, p["params"])
    op = hessian_operator(model, splits.train, _loss_name(cfg, splits), dtype=getattr(torch, a["dtype"]))
    k = min(a["top_k"], op.size)
    eig = lanczos(op, k=k, tol=a["tol"], max_iter=a["max_iter"], seed=a["seed"], vectors=False)
    ev = eig.eigenvalues.double().cpu().numpy()
    summary = {"lambda_max": float(ev[0]), "converged": bool(eig.converged), "n_products": eig.report.n_products,
               "stability_2_over_lr": 2.0 / cfg.train.lr}
    summary.update({f"lambda_{i + 1}": float(v) for i, v in enumerate(ev)})
    return {"status": "completed", "arrays": {"eigenvalues": ev, "residuals": np.asarray(eig.report.residuals),
                                              "error_bounds": np.asarray(eig.report.error_bounds)},
            "summary": summary, "settings": {**a, "lr": cfg.train.lr, "sweep": p["point"]},
            "wall_time": time.perf_counter() - t0, "message": eig.report.message}


def _experiment_result(res, a: dict, t0: float) -> dict:
    """An ExperimentResult as a unit result, stored in the same layout as
    ``phenomena.storage.save_experiment`` so ``load_experiment`` and the report read it."""
    from ..phenomena.storage import experiment_record

    arrays, meta, summary = experiment_record(res)
    summary = {k: v for k, v in summary.items() if isinstance(v, (int, float, bool, str)) or v is None}
    return {"status": "completed", "arrays": arrays, "summary": summary, "settings": a,
            "wall_time": time.perf_counter() - t0, "result": {**meta, "settings": {**meta["settings"], **a}}}


def _experiment_unit(p: dict) -> dict:
    from ..phenomena import run_experiment

    t0 = time.perf_counter()
    a = p["analysis"]
    return _experiment_result(run_experiment(a["name"], quick=a["quick"], seed=a["seed"], **a["options"]), a, t0)


def _dln_unit(p: dict) -> dict:
    """A deep-linear-network experiment, run through its registered phenomenon ``dln_<name>``."""
    from ..phenomena import run_experiment

    t0 = time.perf_counter()
    a = p["analysis"]
    name = "dln_" + a["name"].replace("-", "_")
    return _experiment_result(run_experiment(name, quick=a["quick"], seed=a["seed"], **a["options"]), a, t0)


UNIT_FUNCTIONS: dict[str, Callable[[dict], dict]] = {"train": _train_unit, "surface_chunk": _surface_chunk_unit,
                                                     "hessian": _hessian_unit, "experiment": _experiment_unit,
                                                     "dln": _dln_unit}


def execute_unit(kind: str, payload: dict, threads: int | None = None) -> dict:
    """Run one unit (on a worker or in this process) and return its result as a plain dict.

    ``threads``: torch intra-op threads while it runs (restored after); small models are fastest
    with 1, and N workers on one machine must not each use every core."""
    import torch

    if threads is None:
        return UNIT_FUNCTIONS[kind](payload)
    old = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        return UNIT_FUNCTIONS[kind](payload)
    finally:
        torch.set_num_threads(old)
