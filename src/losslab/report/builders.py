"""Turn results into report figures and sections.

- :func:`trajectory_figures`: a training Trajectory (or its stored arrays) -> loss and
  accuracy curves (train/validation), gradient norm, sharpness against 2/lr when the run
  recorded ``lambda_max`` (``losslab.hessian.sharpness_callback``), other recorded metrics.
- :func:`surface_figures`: a ``losslab.landscape.Surface`` -> 2D contour and 3D surface with
  trajectories projected on its plane (``losslab.landscape.project_trajectory``) and their
  off-plane distance; a 1-D surface -> a curve.
- :func:`experiment_section`: a ``losslab.phenomena.ExperimentResult`` -> a report Section.
- :func:`run_sections` / :func:`study_sections`: runs in the store -> Sections. A run that
  stored ``figures.json`` (as the tour does, see :func:`save_section`) is rendered from it;
  an experiment run is loaded with ``losslab.phenomena.storage.load_experiment``; a training
  run from its Trajectory arrays.

Analyses and the store are imported lazily, so this module imports without them.
"""
from __future__ import annotations

import traceback
from typing import Any, Mapping

import numpy as np

from ..figures import Figure, Grid, Path, Series
from .html import Section
from .serialize import figure_from_dict, figure_to_dict, jsonable

SHARPNESS_METRICS = ("lambda_max", "lambda_max_residual", "hvps", "lambda_max_certified", "two_over_lr", "two_one_plus_beta_over_lr",
                     "nesterov_threshold")


def _finite(a) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return a[np.isfinite(a)]


def _last(a):
    f = _finite(a)
    return float(f[-1]) if len(f) else None


def _wants_log(*arrays) -> bool:
    v = np.concatenate([_finite(a) for a in arrays]) if arrays else np.zeros(0)
    return bool(len(v)) and bool((v > 0).all()) and float(v.max()) / max(float(v.min()), 1e-300) > 100.0


def _traj_arrays(traj) -> tuple[dict[str, np.ndarray], dict]:
    if isinstance(traj, Mapping):
        return {k: np.asarray(v) for k, v in traj.items()}, {}
    return traj.arrays(), dict(getattr(traj, "settings", {}) or {})


def trajectory_figures(traj, *, name: str = "run", settings: Mapping[str, Any] | None = None) -> list[Figure]:
    """Figures of one training run: a ``Trajectory`` or the dict of its ``arrays()`` (as stored).

    Loss: per-step batch loss, full-data training loss and validation loss at the evaluation
    steps. Accuracy: train/validation when measured (classification). Sharpness: the top
    Hessian eigenvalue lambda_max against the stability threshold 2/lr (Cohen et al. 2021;
    2(1+beta)/lr for heavy ball) when the run recorded it. Gradient norm per step.
    """
    a, s0 = _traj_arrays(traj)
    settings = dict(settings or s0)
    if "train_loss" not in a:
        raise ValueError(f"trajectory arrays need 'train_loss' (got keys {sorted(a)[:12]}); pass a Trajectory or "
                         f"the dict from Trajectory.arrays()")
    steps = a.get("steps", np.arange(len(a["train_loss"])))
    ev = a.get("eval_steps", np.zeros(0))
    figs: list[Figure] = []
    series = [Series("train (batch, per step)", steps, a["train_loss"], mode="lines")]
    if "train_eval_loss" in a and len(_finite(a["train_eval_loss"])):
        series.append(Series("train (full data)", ev, a["train_eval_loss"], mode="lines+markers"))
    has_val = "val_loss" in a and len(_finite(a["val_loss"])) > 0
    if has_val:
        series.append(Series("validation", ev, a["val_loss"], mode="lines+markers"))
    table: dict[str, Any] = {"steps run": int(len(steps)), "final batch loss": _last(a["train_loss"]),
                             "final train loss (full)": _last(a.get("train_eval_loss", []))}
    if has_val:
        vl = np.asarray(a["val_loss"], dtype=float)
        k = int(np.nanargmin(vl))
        table.update({"final validation loss": _last(vl), "best validation loss": float(vl[k]),
                      "best validation step": int(ev[k])})
    figs.append(Figure(f"{name}-loss", f"{name}: loss", "lines", "step", "loss", tuple(series),
                       caption="Training loss of each step's batch (before the update), the full-data training "
                               "loss and the validation loss at the evaluation steps.",
                       table=table, settings=settings, log_y=_wants_log(*(x.y for x in series))))
    acc = [(lab, a[k]) for lab, k in (("train", "train_acc"), ("validation", "val_acc"))
           if k in a and len(_finite(a[k]))]
    if acc:
        figs.append(Figure(f"{name}-accuracy", f"{name}: accuracy", "lines", "step", "accuracy",
                           tuple(Series(lab, ev, v, mode="lines+markers") for lab, v in acc),
                           caption="Fraction of examples classified correctly, on the training and validation sets.",
                           table={f"final {lab} accuracy": _last(v) for lab, v in acc}, settings=settings))
    metrics = {k[len("metric/"):]: (np.asarray(a.get(f"metric_steps/{k[len('metric/'):]}", np.arange(len(v)))),
                                    np.asarray(v)) for k, v in a.items() if k.startswith("metric/")}
    if "lambda_max" in metrics:
        st, lam = metrics["lambda_max"]
        ser = [Series("lambda_max (top Hessian eigenvalue)", st, lam, mode="lines+markers")]
        hl: tuple = ()
        thr_key = next((k for k in ("two_one_plus_beta_over_lr", "nesterov_threshold", "two_over_lr")
                        if k in metrics and len(_finite(metrics[k][1]))), None)
        if thr_key is not None:
            tst, thr = metrics[thr_key]
            label = {"two_over_lr": "2/lr", "two_one_plus_beta_over_lr": "2(1+beta)/lr"}.get(thr_key, thr_key)
            ser.append(Series(label, tst, thr, dash=True))
        elif settings.get("lr"):
            hl = (("2/lr", 2.0 / float(settings["lr"])),)
        thr_val = _last(ser[1].y) if len(ser) > 1 else (hl[0][1] if hl else None)
        figs.append(Figure(f"{name}-sharpness", f"{name}: sharpness against 2/lr", "lines", "step", "lambda_max",
                           tuple(ser), hlines=hl, settings=settings,
                           caption="Top eigenvalue of the training-loss Hessian (Lanczos) during training, against "
                                   "the stability threshold of the optimizer: gradient descent on a quadratic with "
                                   "curvature lambda diverges iff lambda > 2/lr (Cohen et al. 2021).",
                           table={"final lambda_max": _last(lam), "max lambda_max": float(np.nanmax(lam)) if
                                  len(_finite(lam)) else None, "threshold (last)": thr_val,
                                  "final lambda_max / threshold": (_last(lam) / thr_val) if thr_val and _last(lam)
                                  is not None else None}))
    if "grad_norm" in a and len(_finite(a["grad_norm"])):
        figs.append(Figure(f"{name}-grad-norm", f"{name}: gradient norm", "lines", "step", "||grad||",
                           (Series("gradient norm", steps, a["grad_norm"]),), settings=settings,
                           caption="Euclidean norm of the batch gradient at each step.",
                           table={"first": float(_finite(a["grad_norm"])[0]), "last": _last(a["grad_norm"])},
                           log_y=_wants_log(a["grad_norm"])))
    for k, (st, v) in sorted(metrics.items()):
        if k in SHARPNESS_METRICS or v.dtype.kind not in "fiu" or not len(_finite(v)):
            continue
        figs.append(Figure(f"{name}-metric-{k}", f"{name}: {k}", "lines", "step", k, (Series(k, st, v, mode="lines+markers"),),
                           caption=f"The metric {k!r} recorded by a training callback.",
                           table={"first": float(_finite(v)[0]), "last": _last(v)}, settings=settings))
    return figs


def _snapshots_of(t) -> tuple[np.ndarray, np.ndarray | None]:
    """(snapshots (K, P), steps (K,) or None) from a Trajectory, a (steps, snapshots) pair or an array."""
    if hasattr(t, "snapshots") and hasattr(t, "snapshot_steps"):
        return np.asarray(t.snapshots), np.asarray(t.snapshot_steps)
    if isinstance(t, tuple) and len(t) == 2:
        return np.asarray(t[1]), np.asarray(t[0])
    return np.asarray(t), None


def surface_figures(surface, *, trajectories: Mapping[str, Any] | None = None, name: str = "surface",
                    slider: bool = True) -> list[Figure]:
    """Figures of a ``losslab.landscape.Surface``: for a 2-D surface a contour and a rotatable 3D
    surface with each trajectory projected on the surface's plane (coordinates = least-squares
    coefficients on the directions, ``project_trajectory``), and the trajectories' distance off
    the plane per step; for a 1-D surface the loss curve.

    ``trajectories``: name -> Trajectory, (steps, snapshots) or snapshots (K, P).
    """
    axes = [np.asarray(x, dtype=float) for x in surface.axes]
    loss = np.asarray(surface.loss, dtype=float)
    settings = jsonable({"direction kind": surface.kind, **dict(surface.settings or {})})
    mn = surface.min()
    table = {"grid": "x".join(str(len(x)) for x in axes), "direction kind": surface.kind,
             "min loss on grid": mn["loss"], "argmin coords": mn["coords"]}
    origin = tuple(int(np.argmin(np.abs(x))) for x in axes)
    if all(abs(x[i]) < 1e-12 for x, i in zip(axes, origin)):
        table["loss at origin (the base point)"] = float(loss[origin])
    if len(axes) == 1:
        return [Figure(f"{name}-curve", f"{name}: loss along a direction", "lines", "alpha", "loss",
                       (Series("loss", axes[0], loss),), table=table, settings=settings,
                       caption="The loss at base + alpha * d along one direction.")]
    from ..landscape import project_trajectory

    paths: list[Path] = []
    off_series: list[Series] = []
    for tname, t in (trajectories or {}).items():
        snaps, steps = _snapshots_of(t)
        pr = project_trajectory(surface, snaps)
        st = steps if steps is not None else np.arange(len(snaps))
        paths.append(Path(str(tname), pr.coords[:, 0], pr.coords[:, 1], None, st, pr.off_plane))
        off_series.append(Series(str(tname), st, pr.off_plane, mode="lines+markers"))
        table[f"{tname}: max off-plane distance"] = float(np.nanmax(pr.off_plane)) if len(pr.off_plane) else None
        table[f"{tname}: max relative off-plane"] = float(np.nanmax(pr.relative_off_plane)) if len(pr.off_plane) else None
    grid = Grid(axes[0], axes[1], loss.T, "loss")  # Surface.loss[i, j] is at (axes[0][i], axes[1][j])
    cap = ("The loss over the plane base + a d1 + b d2 ({}). Trajectories are projected on the plane; hover a "
           "point for its step and its distance off the plane.").format(surface.kind)
    figs = [Figure(f"{name}-contour", f"{name}: contour", "contour", "a (direction 1)", "b (direction 2)",
                   grid=grid, paths=tuple(paths), caption=cap, table=table, settings=settings, slider=slider and bool(paths)),
            Figure(f"{name}-surface", f"{name}: 3D surface", "surface", "a", "b", grid=grid, paths=tuple(paths),
                   caption=cap + " Drag to rotate.", table=table, settings=settings, slider=slider and bool(paths))]
    if off_series:
        figs.append(Figure(f"{name}-off-plane", f"{name}: distance of the trajectories off the plane", "lines", "step",
                           "||theta - projection||", tuple(off_series), settings=settings,
                           caption="How far each trajectory is from the plane drawn: a path drawn on a plane is "
                                   "only faithful where this distance is small compared with its length.",
                           table={k: v for k, v in table.items() if "off-plane" in k}))
    return figs


def experiment_section(result, *, run_id: str | None = None, note: str = "") -> Section:
    """A report Section from a ``losslab.phenomena.ExperimentResult``."""
    n = note or (f"stored as run {run_id}" if run_id else "")
    return Section(key=result.name, title=result.title, text=(f"Claim: {result.claim}\n\n" if result.claim else "") +
                   (result.text or ""), figures=tuple(result.figures), summary=dict(result.summary),
                   checks=dict(result.checks), settings=dict(result.settings), note=n,
                   wall_time=getattr(result, "wall_time", None) or None)


# -- the store ---------------------------------------------------------------------------
FIGURES_FILE = "figures"  # <run dir>/figures.json, written by save_section


def save_section(store, section: Section, *, study: str | None = None, kind: str = "report_section",
                 arrays: Mapping[str, np.ndarray] | None = None, status: str | None = None) -> str:
    """Store a Section as a run (figures.json + arrays.npz + summary in the index); returns the id."""
    rid = store.new_run(name=section.key, kind=kind, settings=jsonable(section.settings), study=study)
    if arrays:
        store.save_arrays(rid, {k: np.asarray(v) for k, v in arrays.items() if np.asarray(v).dtype != object})
    store.save_json(rid, {"title": section.title, "text": section.text, "summary": jsonable(section.summary),
                          "checks": jsonable(section.checks), "settings": jsonable(section.settings),
                          "error": section.error, "figures": [figure_to_dict(f) for f in section.figures]},
                    name=FIGURES_FILE)
    summ = {k: v for k, v in jsonable(section.summary).items() if not isinstance(v, (list, dict))}
    if section.checks:
        summ["checks_passed"] = sum(bool(v) for v in section.checks.values())
        summ["checks_total"] = len(section.checks)
    store.finish(rid, status=status or ("failed" if section.error else "completed"), summary=summ,
                 wall_time=section.wall_time, message=section.error)
    return rid


def _record_note(rec) -> str:
    parts = [f"run {rec.id}", f"kind {rec.kind}", f"status {rec.status}"]
    if rec.study:
        parts.append(f"study {rec.study}")
    return " · ".join(parts)


def run_sections(store, run_id: str) -> list[Section]:
    """Sections for one stored run (see the module docstring for how each kind is read)."""
    rec = store.get(run_id)
    rdir = store.run_dir(rec.id)
    note = _record_note(rec)
    failed_msg = rec.message if rec.status == "failed" else None
    if (rdir / f"{FIGURES_FILE}.json").exists():
        d = store.load_json(rec.id, name=FIGURES_FILE)
        figs = tuple(figure_from_dict(f) for f in d.get("figures", ()))
        return [Section(key=rec.id, title=d.get("title") or rec.name, text=d.get("text", ""), figures=figs,
                        summary=d.get("summary") or rec.summary, checks=d.get("checks") or {},
                        settings=d.get("settings") or rec.settings, error=d.get("error") or failed_msg, note=note,
                        wall_time=rec.wall_time)]
    if rec.kind == "experiment":
        try:
            from ..phenomena.storage import load_experiment
        except ImportError as e:
            return [Section(key=rec.id, title=rec.name, summary=rec.summary, settings=rec.settings, note=note,
                            error=f"cannot read experiment runs: losslab.phenomena.storage is unavailable ({e})")]
        res = load_experiment(store, rec.id)
        sec = experiment_section(res, note=note)
        return [Section(**{**sec.__dict__, "key": rec.id, "error": failed_msg, "wall_time": rec.wall_time})]
    arrays: dict[str, np.ndarray] = {}
    err = failed_msg
    try:
        arrays = store.load_arrays(rec.id)
    except Exception as e:  # a failed run may have no arrays; show why instead of crashing
        err = err or f"{type(e).__name__}: {e}"
    figs: list[Figure] = []
    if "train_loss" in arrays:
        figs = trajectory_figures(arrays, name=rec.name, settings=rec.settings)
    elif "loss" in arrays and "axis0" in arrays:
        figs = _stored_surface_figures(store, arrays, rec)
    text = f"Run {rec.name!r} ({rec.kind}), status {rec.status}."
    if rec.message and not err:
        text += f"\n\n{rec.message}"
    return [Section(key=rec.id, title=rec.name, text=text, figures=tuple(figs), summary=rec.summary,
                    settings=rec.settings, error=err, note=note, wall_time=rec.wall_time)]


def _stored_surface_figures(store, arrays, rec) -> list[Figure]:
    """A stored surface run (arrays axis0[, axis1], loss[, base, directions]). With base and
    directions it becomes a ``landscape.Surface``, and the training run it was computed from
    (``rec.parent``), when it has parameter snapshots, is projected on it as a trajectory."""
    axes = [arrays[f"axis{i}"] for i in range(2) if f"axis{i}" in arrays]
    if "base" in arrays and "directions" in arrays and len(axes) in (1, 2):
        from ..landscape import Surface

        surf = Surface(tuple(np.asarray(a, dtype=float) for a in axes), np.asarray(arrays["loss"], dtype=float),
                       arrays.get("accuracy"), np.asarray(arrays["base"], dtype=float),
                       np.asarray(arrays["directions"], dtype=float),
                       str(rec.settings.get("directions", rec.settings.get("kind", "stored"))), (), (),
                       dict(rec.settings), {})
        trajs = {}
        parent = getattr(rec, "parent", None)
        if parent and len(axes) == 2:
            try:
                pa = store.load_arrays(parent)
                snaps = pa.get("snapshots")
                if snaps is not None and snaps.ndim == 2 and snaps.shape[1] == surf.base.shape[0] and len(snaps):
                    trajs[f"training run {store.get(parent).name}"] = (pa.get("snapshot_steps", np.arange(len(snaps))),
                                                                       snaps)
            except Exception:  # the parent is optional decoration: a missing one leaves the surface alone
                trajs = {}
        return surface_figures(surf, trajectories=trajs, name=rec.name)
    loss = np.asarray(arrays["loss"], dtype=float)
    if len(axes) == 1:
        return [Figure(f"{rec.name}-curve", f"{rec.name}: loss along a direction", "lines", "alpha", "loss",
                       (Series("loss", axes[0], loss),), settings=rec.settings)]
    grid = Grid(np.asarray(axes[0]), np.asarray(axes[1]), loss.T, "loss")
    table = {"grid": f"{len(axes[0])}x{len(axes[1])}", "min loss on grid": float(np.nanmin(loss))}
    return [Figure(f"{rec.name}-contour", f"{rec.name}: contour", "contour", "a", "b", grid=grid, table=table,
                   settings=rec.settings),
            Figure(f"{rec.name}-surface", f"{rec.name}: 3D surface", "surface", "a", "b", grid=grid, table=table,
                   settings=rec.settings)]


def study_sections(store, study: str) -> list[Section]:
    """One Section per run of a study (a run that cannot be read shows its error, in red)."""
    recs = store.list(study=study)
    if not recs:
        studies = sorted({r.study for r in store.list() if r.study})
        raise ValueError(f"no runs in study {study!r} in store {store.path}; studies: {', '.join(studies) or '(none)'}")
    out = []
    for rec in recs:
        try:
            out.extend(run_sections(store, rec.id))
        except Exception as e:
            out.append(Section(key=rec.id, title=rec.name, note=_record_note(rec),
                               error="".join(traceback.format_exception_only(type(e), e)).strip()))
    return out



