"""``losslab surface``: a loss surface around a stored training run or a built-in model trained inline.

The model comes from :func:`acquire_model`: a stored training run (``--run``) or a built-in
model trained inline. On a stored run with parameter snapshots the default directions
(``--directions auto``) are the PCA plane of the run's trajectory anchored at its final
parameters (Li et al. 2018, Sec. 7), so the path it took lies (nearly) in the plotted plane;
random filter-normalized directions (``--directions filter``) are almost orthogonal to it.
The Surface is written to the store folder (npz + json), and partial grids are checkpointed
there so an interrupted command resumes when rerun with the same arguments.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

import typer

from ._common import (JsonOpt, StoreOpt, analysis_store, check_device, console, emit_json, fail,
                      parse_options, progress, warn)


def diverged_warning(record) -> str | None:
    """The warning for measuring a run whose training diverged (None for any other run): its final
    parameters are where training blew up, so the numbers describe that blown-up point."""
    if record is None or record.status != "diverged":
        return None
    why = f" ({record.message})" if record.message else ""
    return (f"run {record.id} has status 'diverged'{why}: its final parameters are where training blew up, so this "
            f"measures the blown-up model; train with a smaller --lr to measure a trained one")

def acquire_model(store, *, run: str | None, data: str, data_opts: dict, model: str, model_opts: dict,
                  loss: str | None, train_steps: int, lr: float, optimizer: str, seed: int, progress_cb=None):
    """The model to measure: a stored training run's final parameters (``run``), or a built-in
    model trained ``train_steps`` steps with ``losslab.train`` and stored as a training run
    (so the surface links to it and the report can draw its path). Returns
    (model, splits, loss, training run id). The one place a model is obtained."""
    from ..data import load
    from ..experiments.units import build_model
    from ..experiments.spec import ModelSpec
    from ..store import load_trained_run
    from ..train import train

    if run is not None:
        tr = load_trained_run(store, run)
        run_loss = tr.loss
        if loss is not None and loss != tr.loss.name:  # an explicit --loss wins, as in `losslab hessian --run`
            from ..losses import get_loss

            run_loss = get_loss(loss)
        return tr.model, tr.splits, run_loss, tr.record.id
    if train_steps < 1:
        raise ValueError(f"--train-steps must be >= 1, got {train_steps} (or measure a stored run with --run ID)")
    splits = load(data, seed=seed, **data_opts)
    mspec = ModelSpec(name=model, options=model_opts, seed=seed)
    net = build_model(mspec, splits)
    traj = train(net, splits, loss=loss, optimizer=optimizer, lr=lr, steps=train_steps, seed=seed,
                 progress=progress_cb)
    rid = store.save_trajectory(traj, name=f"{data}-{model}-{optimizer}",
                                extra_settings={"data": data, "data_options": data_opts, "model": model,
                                                "model_options": mspec.options, "init": mspec.init})
    tr = load_trained_run(store, rid)
    return tr.model, tr.splits, tr.loss, rid


PCA_SPAN_MARGIN = 1.25  # the default PCA grid covers 1.25 x the trajectory's extent on each axis


def run_snapshots(store, run_id: str):
    """The parameter snapshots (K, P) a stored training run recorded (None when it has none)."""
    import numpy as np

    snaps = store.load_arrays(run_id).get("snapshots")
    if snaps is None or snaps.ndim != 2 or len(snaps) == 0:
        return None
    return np.asarray(snaps)


def trajectory_plane(snapshots, net, dim: int):
    """The PCA plane (or line, ``dim`` = 1) of a run's trajectory, anchored at its final parameters
    (Li et al. 2018, Sec. 7), with what the CLI reports about it. Returns
    (PCADirections, None, info) or (None, why, None) when the snapshots cannot give one: fewer than
    dim + 1 snapshots, non-finite ones, or all identical. ``info``: snapshots (K), the explained
    variance ratios, the trajectory's coordinates extent per axis and the default span per axis
    (1.25 x the largest |coordinate|), and how far off the plane it is: ``trajectory_off_plane`` =
    sqrt(sum_i off_i^2 / sum_i ||theta_i - base||^2) (off_i: snapshot i's distance to the plane)
    and the largest per-snapshot ratio off_i / ||theta_i - base||."""
    import numpy as np

    from ..landscape import pca_directions, project_trajectory

    if snapshots is None:
        return None, "the run has no parameter snapshots", None
    K = int(snapshots.shape[0])
    if K < dim + 1:
        return None, (f"the run has {K} parameter snapshot{'s' if K != 1 else ''}; a PCA "
                      f"{'plane' if dim == 2 else 'line'} needs at least {dim + 1}"), None
    bad = ~np.isfinite(snapshots).all(axis=1)
    if bad.any():
        return None, (f"{int(bad.sum())} of the run's {K} parameter snapshots are not finite (NaN/inf), so its "
                      f"trajectory has no PCA plane"), None
    try:
        pca = pca_directions(snapshots, dim, base="last", model=net)
    except ValueError as e:  # e.g. every snapshot identical
        return None, f"no PCA plane of the run's {K} snapshots ({e})", None
    proj = project_trajectory(pca, snapshots)
    extent = np.abs(proj.coords).max(axis=0)  # (dim,)
    spans = [float(PCA_SPAN_MARGIN * e) if e > 0 else 1.0 for e in extent]
    moved = np.linalg.norm(np.asarray(snapshots, dtype=np.float64) - pca.directions.base.double().numpy(), axis=1)
    off = float(np.sqrt((proj.off_plane ** 2).sum() / (moved ** 2).sum())) if (moved > 0).any() else 0.0
    info = {"snapshots": K, "explained_variance_ratio": [float(v) for v in pca.explained_variance_ratio],
            "base": "last", "trajectory_extent": [float(e) for e in extent], "span": spans,
            "trajectory_off_plane": off,
            "trajectory_max_relative_off_plane": float(np.max(proj.relative_off_plane))}
    return pca, None, info


def describe_pca(info: dict) -> str:
    """One line: "pca of the run's K snapshots (explained variance 91.2%, 6.1%)"."""
    ev = ", ".join(f"{100 * v:.1f}%" for v in info["explained_variance_ratio"])
    return f"pca of the run's {info['snapshots']} snapshots (explained variance {ev})"


def register(app: typer.Typer) -> None:
    @app.command("surface")
    def surface_cmd(
        data: str = typer.Option("digits", "--data", help="Built-in dataset name."),
        data_opt: Optional[list[str]] = typer.Option(None, "--data-opt", help="Dataset option KEY=VALUE (repeatable)."),
        model: str = typer.Option("mlp", "--model", help="Built-in model name."),
        model_opt: Optional[list[str]] = typer.Option(None, "--model-opt", help="Model option KEY=VALUE, e.g. hidden=[32]."),
        loss: Optional[str] = typer.Option(None, "--loss", help="Loss name (default: the dataset's task loss)."),
        run: Optional[str] = typer.Option(None, "--run", help="Measure a stored training run (id or prefix) at its "
                                                                "final parameters instead of training one."),
        train_steps: int = typer.Option(200, "--train-steps", help="Full-batch training steps before measuring "
                                                                    "(the training run is stored too)."),
        lr: float = typer.Option(1e-2, "--lr", help="Learning rate of that training."),
        optimizer: str = typer.Option("adam", "--optimizer", help="Optimizer of that training (see `losslab train`)."),
        directions: str = typer.Option("auto", "--directions", help="Direction kind: auto (default: pca with --run "
                                       "when the run has enough snapshots, else filter), pca (the plane of the run's "
                                       "trajectory, Li et al. 2018 Sec. 7; needs --run), filter, layer, model, "
                                       "gaussian, unnormalized, or hessian (top eigenvectors)."),
        dim: int = typer.Option(2, "--dim", help="1 (curve) or 2 (plane)."),
        resolution: int = typer.Option(21, "--resolution", help="Grid points per axis."),
        span: Optional[float] = typer.Option(None, "--span", help="Grid covers [-span, span] on each axis (default: "
                                             "1.25 x the trajectory's extent per axis for pca, else 1)."),
        include_biases: bool = typer.Option(False, "--include-biases", help="Perturb biases and norm-layer parameters too."),
        orthogonalize: bool = typer.Option(False, "--orthogonalize", help="Gram-Schmidt the second axis against the first."),
        bn: str = typer.Option("eval", "--bn", help="Batch norm: eval (running stats) or recompute (per point)."),
        split: str = typer.Option("train", "--split", help="Which split to measure: train, val or test."),
        dtype: str = typer.Option("float32", "--dtype", help="float32 or float64."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cpu)."),
        seed: int = typer.Option(0, "--seed", help="Seed for data, model, training and directions."),
        json_out: bool = JsonOpt,
        store: Optional[Path] = StoreOpt,
    ):
        """Compute a loss surface (1-D curve or 2-D plane) around a trained model (a stored run with --run:
        by default in the PCA plane of its trajectory)."""
        import torch

        from ..landscape import surface

        dtypes = {"float32": torch.float32, "float64": torch.float64}
        if dtype not in dtypes:
            fail(f"--dtype must be one of {', '.join(dtypes)}, got {dtype!r}")
        from ..store.analyses import save_surface

        from ..landscape import DIRECTIONS

        directions = directions.strip().lower()
        if directions == "pca" and run is None:
            fail("--directions pca is the plane of a stored run's trajectory: pass --run ID (a training run with "
                 "parameter snapshots), or choose random directions such as --directions filter")
        if directions not in ("hessian", "auto", "pca"):
            DIRECTIONS.get(directions)  # a bad name fails now, before any training
        check_device(device)
        data_opts, model_opts = parse_options(data_opt), parse_options(model_opt)
        from ..landscape.surface import check_grid_size, grid_axes

        # a bad grid fails now, before training or storing (the PCA span is known only once the run is read)
        check_grid_size(grid_axes(resolution, 1.0 if span is None else span, dim))
        # measuring a stored run needs its store (read-only is fine: the surface is then not stored);
        # otherwise the store is created only when the first result (the training run) is saved
        st = analysis_store(store, run=run)
        with progress(disable=json_out) as bar:
            t = bar.add_task("train", total=train_steps if run is None else 1)
            net, splits, loss_obj, parent = acquire_model(
                st, run=run, data=data, data_opts=data_opts, model=model,
                model_opts=model_opts, loss=loss, train_steps=train_steps, lr=lr, optimizer=optimizer,
                seed=seed, progress_cb=lambda done, total: bar.update(t, completed=done))
        loss_name = loss_obj.name
        d = getattr(splits, split, None) if split in ("train", "val", "test") else None
        if d is None:
            have = [n for n in ("train", "val", "test") if getattr(splits, n, None) is not None]
            fail(f"--split must be one of the splits dataset {splits.name!r} has ({', '.join(have)}); got {split!r}")
        warning = diverged_warning(st.get(parent))
        if warning:
            warn(warning)
        # the direction kind: with --run, auto and pca take the PCA plane of the run's trajectory
        kind, pca, pca_info, note = directions, None, None, None
        if directions in ("auto", "pca"):
            kind = "filter"
            if run is not None:
                pca, why, pca_info = trajectory_plane(run_snapshots(st, parent), net, dim)
                if pca is not None:
                    kind = "pca"
                elif directions == "pca":
                    fail(f"--directions pca: {why} (run {parent}); train with more steps, or choose random "
                         f"directions such as --directions filter")
                else:
                    note = f"directions: filter (random, filter-normalized), not pca: {why}"
                    console.print(f"note: {note}", highlight=False, soft_wrap=True)
        if span is None:
            grid_span = [(-s_, s_) for s_ in pca_info["span"]] if kind == "pca" else 1.0
        else:
            grid_span = span
        args = {"run": parent, "loss": loss_name,
                "directions": kind, "dim": dim, "resolution": resolution,
                "span": grid_span if not isinstance(grid_span, list) else [list(p) for p in grid_span],
                "include_biases": include_biases, "orthogonalize": orthogonalize, "bn": bn, "split": split,
                "dtype": dtype, "seed": seed}
        # the partial-grid key names the measured parameters and the grid, not the run id, so rerunning an
        # interrupted command (which retrains the same model bit for bit) resumes the same grid
        from ..params import flatten_params

        h = hashlib.sha256(json.dumps({k: v for k, v in args.items() if k != "run"}, sort_keys=True).encode())
        h.update(flatten_params(net).double().numpy().tobytes())
        if pca is not None:  # the plane depends on the whole trajectory, not only on its last point
            h.update(pca.directions.vectors.double().numpy().tobytes())
        key = h.hexdigest()[:16]
        ck = None if st.read_only else st.path / "surfaces" / "partial" / f"{key}.npz"  # an interrupted grid resumes from here
        with progress(disable=json_out) as bar:
            task = bar.add_task("surface", total=resolution ** dim)
            if directions == "hessian":  # the top-`dim` Hessian eigenvectors, by Lanczos
                from ..hessian import hessian_directions

                dirs = hessian_directions(net, d, loss_obj, k=dim, seed=seed)
            elif pca is not None:
                dirs = pca
            else:
                dirs = kind
            import warnings

            with warnings.catch_warnings():  # the CLI reports non-finite points itself, in one line
                warnings.filterwarnings("ignore", message=r".* grid points have a NaN/inf loss", category=RuntimeWarning)
                s = surface(net, d, loss=loss_obj, directions=dirs, dim=dim, resolution=resolution, span=grid_span,
                            seed=seed, include_biases=include_biases, orthogonalize=orthogonalize, bn=bn,
                            dtype=dtypes[dtype], device=device, checkpoint=ck,
                            progress=lambda done, total: bar.update(task, completed=done, total=total))
        settings = {k: v for k, v in args.items() if k != "run"}
        settings["directions_requested"] = directions
        if pca_info is not None:
            settings["pca_snapshots"] = pca_info["snapshots"]
            settings["explained_variance_ratio"] = pca_info["explained_variance_ratio"]
            settings["span_from"] = "trajectory" if span is None else "--span"
        if note:
            settings["directions_note"] = note
        if warning:
            settings["run_status"], settings["warnings"] = "diverged", [warning]
        rid = None if st.read_only else save_surface(st, s, name=f"surface/{splits.name}/{split}", parent=parent,
                                                     settings=settings)
        if ck is not None:
            ck.unlink(missing_ok=True)
        result = s.to_dict()
        result["run_id"], result["training_run"] = rid, parent
        result["command"] = args
        result["directions"] = {"kind": kind, "requested": directions, "note": note,
                                **({"description": describe_pca(pca_info), **pca_info} if pca_info else {})}
        result["warnings"] = [warning] if warning else []
        nonfinite = int(s.info.get("nonfinite_points", 0) or 0)
        if nonfinite:
            result["warnings"].append(f"{nonfinite} of {s.info['points']} grid points have a non-finite loss "
                                      f"(overflow far from the model?); they are NaN/inf in the stored surface")
            warn(result["warnings"][-1])
        if json_out:
            emit_json(result)
            return
        if pca_info is not None:
            console.print(f"directions: {describe_pca(pca_info)}; trajectory off the plane "
                          f"{100 * pca_info['trajectory_off_plane']:.2g}% (rms, at most "
                          f"{100 * pca_info['trajectory_max_relative_off_plane']:.2g}%); grid span "
                          f"{' x '.join(f'±{v:.4g}' for v in (pca_info['span'] if span is None else [span] * dim))}",
                          highlight=False, soft_wrap=True)
        m = s.min()
        console.print(f"[bold]surface[/] {s.kind} {'x'.join(map(str, s.shape))} on {splits.name}/{split} "
                      f"({s.info['points']} points, {s.info['seconds']:.2f} s, {s.info['strategy']}, "
                      f"chunk {s.info['chunk_size']}, first-layer affine: {s.info['affine_first_layer']})")
        import numpy as np

        # the grid point nearest the model (coordinate 0): an even --resolution has no point at 0 exactly
        near = tuple(int(np.argmin(np.abs(np.asarray(a, dtype=float)))) for a in s.axes)
        at = tuple(float(a[i]) for a, i in zip(s.axes, near))
        where = "at the model" if all(c == 0 for c in at) else f"nearest the model, at {tuple(round(c, 4) for c in at)}"
        lo = "n/a (every point is non-finite)" if m["loss"] is None else f"{m['loss']:.6g} at {m['coords']}"
        console.print(f"loss {where} {float(s.loss[near]):.6g}; min {lo}; "
                      f"max {float(np.nanmax(s.loss)) if np.isfinite(s.loss).any() else float('nan'):.6g}",
                      highlight=False)
        if rid is not None:
            console.print(f"stored as run {rid} (training run {parent}); see it with `losslab report {rid}`")
