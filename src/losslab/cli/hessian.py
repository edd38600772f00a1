"""``losslab hessian``: curvature of a model's loss (top/bottom eigenvalues, trace, density),
for the whole model or per layer. A thin layer over :mod:`losslab.hessian`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch
import typer
from torch import nn

from ._common import JsonOpt, StoreOpt, analysis_store, emit_json, out, parse_options, warn


def save_checkpoint(model: nn.Module, path: str | Path, *, model_name: str, model_options: dict | None = None,
                    data: str | None = None, data_options: dict | None = None, loss: str | None = None,
                    seed: int = 0) -> Path:
    """Save ``model``'s state_dict at ``path`` and its spec as JSON beside it (``path`` with
    suffix ``.json``): what :func:`load_model` reads back."""
    path = Path(path)
    torch.save(model.state_dict(), path)
    spec = {"model": model_name, "model_options": model_options or {}, "data": data,
            "data_options": data_options or {}, "loss": loss, "seed": seed}
    path.with_suffix(".json").write_text(json.dumps(spec, indent=2))
    return path


def load_model(*, data: str | None, data_options: dict, model: str | None, model_options: dict,
               checkpoint: Path | None, seed: int):
    """(model, splits, default loss name) from built-in names or a checkpoint + spec JSON.

    The one place that turns CLI inputs into a model; stored runs will be added here.
    """
    from ..data import load
    from ..models import build_for

    spec: dict = {}
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if not checkpoint.exists():
            raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
        spec_path = checkpoint.with_suffix(".json")
        if not spec_path.exists():
            raise FileNotFoundError(f"checkpoint {checkpoint} needs its model spec {spec_path} beside it "
                                    '(JSON: {"model": NAME, "model_options": {...}, "data": NAME, ...})')
        try:
            spec = json.loads(spec_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"model spec {spec_path} is not valid JSON ({e}); expected "
                             '{"model": NAME, "model_options": {...}, "data": NAME, ...}') from None
        if not isinstance(spec, dict):
            raise ValueError(f"model spec {spec_path} must be a JSON object, got {type(spec).__name__}; expected "
                             '{"model": NAME, "model_options": {...}, "data": NAME, ...}')
        if "model" not in spec:
            raise ValueError(f"model spec {spec_path} lacks the key 'model'")
        for k in ("model_options", "data_options"):
            if not isinstance(spec.get(k) or {}, dict):
                raise ValueError(f"model spec {spec_path}: {k!r} must be a JSON object, got {spec[k]!r}")
    data = data or spec.get("data")
    model = model or spec.get("model")
    if data is None:
        raise ValueError("no data: give --data NAME (or a checkpoint whose spec names its data)")
    if model is None:
        raise ValueError("no model: give --model NAME or --checkpoint PATH")
    d_opts = {**spec.get("data_options", {}), **data_options}
    splits = load(data, seed=int(spec.get("seed", seed)), **d_opts)
    m_opts = {**spec.get("model_options", {}), **model_options}
    net = build_for(model, splits, seed=seed, **m_opts)  # in/out dims from the data unless given
    if checkpoint is not None:
        _load_state(net, checkpoint, spec_path, model, m_opts)
    return net, splits, spec.get("loss") or splits.default_loss


def _load_state(net: nn.Module, checkpoint: Path, spec_path: Path, model: str, m_opts: dict) -> None:
    """Load the checkpoint's state_dict into ``net``; an unreadable file or one that does not fit
    the model its spec describes is a ValueError naming both files."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError (not a zip), EOFError, ...
        first = " ".join(str(e).split())[:200]
        raise ValueError(f"checkpoint {checkpoint} is not a readable torch state_dict ({type(e).__name__}: {first}); "
                         f"save one with torch.save(model.state_dict(), PATH)") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"checkpoint {checkpoint} holds a {type(state).__name__}, not a state_dict of tensors; "
                         f"save one with torch.save(model.state_dict(), PATH)")
    want = net.state_dict()
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    shapes = [f"{k} {list(state[k].shape)} vs {list(v.shape)}" for k, v in want.items()
              if k in state and state[k].shape != v.shape]
    if missing or extra or shapes:
        parts = ([f"shape (checkpoint vs model) of {', '.join(shapes[:4])}{' ...' if len(shapes) > 4 else ''}"]
                 if shapes else [])
        parts += [f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"] if missing else []
        parts += [f"unexpected {', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''}"] if extra else []
        raise ValueError(f"checkpoint {checkpoint} does not fit the model {model} {json.dumps(m_opts)} that "
                         f"{spec_path} (and --model-opt) describe: {'; '.join(parts)}; fix the spec's model_options")
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"checkpoint {checkpoint} does not fit the model {model} that {spec_path} describes "
                         f"({' '.join(str(e).split())[:300]})") from None


def _analyse(net, data, loss, *, block, top, bottom, trace, density, ggn, tol, dtype, seed, batch_size,
             n_probes, n_steps, trace_rtol=1e-2, trace_samples=300) -> dict:
    from .. import hessian as H

    op_fn = H.ggn_operator if ggn else H.hessian_operator
    make = lambda: op_fn(net, data, loss, block=block, batch_size=batch_size, dtype=dtype)  # noqa: E731
    op = make()
    res: dict = {"parameters": op.size, "names": list(op.spec.names), "operator": op.kind}
    if top:
        e = H.lanczos(op, min(top, op.size), which="largest", tol=tol, seed=seed, vectors=False, warn=False)
        res["top"] = {"eigenvalues": e.eigenvalues.tolist(), "residuals": list(e.report.residuals),
                      "error_bounds": list(e.report.error_bounds), "converged": e.report.converged,
                      "hvps": e.report.n_products}
    if bottom:
        e = H.lanczos(op, min(bottom, op.size), which="smallest", tol=tol, seed=seed, vectors=False, warn=False)
        res["bottom"] = {"eigenvalues": e.eigenvalues.tolist(), "residuals": list(e.report.residuals),
                         "error_bounds": list(e.report.error_bounds), "converged": e.report.converged,
                         "hvps": e.report.n_products}
    if trace:  # Krylov-deflated Hutchinson (the default of hessian_trace); --trace-samples caps its probes
        t = H.deflated_hutchinson(op, seed=seed, rtol=trace_rtol, max_samples=trace_samples,
                                  min_samples=min(30, trace_samples), warn=False)
        res["trace"] = {"estimate": t.estimate, "stderr": t.stderr, "samples": t.n_samples, "method": t.method,
                        "deflated_rank": t.rank, "converged": t.converged, "hvps": t.n_products}
    if density:
        d = H.slq(op, n_probes=n_probes, n_steps=n_steps, seed=seed)
        idx, idx_se = d.index()
        thr = d._threshold(None)
        tr, tr_se = d.trace
        res["density"] = {"grid": d.grid.tolist(), "density": d.density.tolist(), "sigma": d.sigma,
                          "nodes": d.nodes.tolist(), "weights": d.weights.tolist(),
                          # P x the SLQ quadrature mass below -threshold: an estimate, not a count
                          "index": idx, "index_stderr": idx_se, "index_threshold": thr,
                          "index_meaning": "P x SLQ quadrature mass below -threshold (an estimate)",
                          # Ritz values below -threshold in one probe's Krylov space: a lower bound
                          # on the count (Cauchy interlacing); the converged ones located to +- r
                          "negative_ritz": d.resolved_index(), "negative_ritz_converged": d.resolved_index(converged=True),
                          "trace": tr, "trace_stderr": tr_se, "hvps": d.n_products}
    return res


def _print(name: str, r: dict) -> None:
    out.print(f"[bold]{name}[/] ({r['parameters']} parameters, {r['operator']})")
    for end in ("top", "bottom"):
        if end in r:
            vals = ", ".join(f"{v:.6g}" for v in r[end]["eigenvalues"])
            flag = "" if r[end]["converged"] else "  [yellow](not converged)[/]"
            out.print(f"  {end}-{len(r[end]['eigenvalues'])}: {vals}  (max residual "
                      f"{max(r[end]['residuals']):.2e}, {r[end]['hvps']} HVPs){flag}")
    if "trace" in r:
        t = r["trace"]
        flag = "" if t["converged"] else "  [yellow](stderr above --trace-rtol)[/]"
        out.print(f"  trace: {t['estimate']:.6g} +- {t['stderr']:.2g} (1 s.e.; {t.get('deflated_rank', 0)} Lanczos "
                  f"steps deflated + {t['samples']} probes, {t['hvps']} HVPs){flag}")
    if "density" in r:
        d = r["density"]
        lo, hi = d["grid"][0], d["grid"][-1]
        out.print(f"  density: grid [{lo:.4g}, {hi:.4g}], sigma {d['sigma']:.3g}, {d['hvps']} HVPs")
        if "negative_ritz" in d:
            out.print(f"  negative eigenvalues (below -{d['index_threshold']:.2g}): SLQ estimate {d['index']:.1f} +- "
                      f"{d['index_stderr']:.1f} (P x quadrature mass below the threshold, not a count); at least "
                      f"{d['negative_ritz']} resolved by Lanczos (Ritz values below it, {d['negative_ritz_converged']} "
                      f"converged)")
        else:  # an older stored result
            out.print(f"  estimated index {d['index']:.1f} +- {d['index_stderr']:.1f} (P x SLQ mass below zero)")


def _save(st, result: dict, *, parent: str | None, settings: dict) -> str:
    """Record a curvature result as a run of kind 'hessian' (linked to the analysed run)."""
    import time
    import uuid

    from ._common import _clean

    summary = {}
    for name, r in result["blocks"].items():
        prefix = "" if name == "all parameters" else f"{name}: "
        if "top" in r:
            summary[f"{prefix}lambda_max"] = r["top"]["eigenvalues"][0]
        if "bottom" in r:
            summary[f"{prefix}lambda_min"] = r["bottom"]["eigenvalues"][0]
        if "trace" in r:
            summary[f"{prefix}trace"] = r["trace"].get("estimate")
    summary = {k: v for k, v in _clean(summary).items() if isinstance(v, (int, float)) or v is None}
    rid = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    return st.put_run(rid, name=f"hessian/{result['data']}", kind="hessian", settings=settings, status="completed",
                      summary=summary, result=_clean(result), parent=parent)


def register(app: typer.Typer) -> None:
    @app.command("hessian")
    def hessian_cmd(
        data: Optional[str] = typer.Option(None, "--data", help="Built-in dataset name (see `losslab data`)."),
        data_opt: Optional[list[str]] = typer.Option(None, "--data-opt", help="Dataset option KEY=VALUE (repeatable)."),
        model: Optional[str] = typer.Option(None, "--model", help="Built-in model name."),
        model_opt: Optional[list[str]] = typer.Option(None, "--model-opt", help="Model option KEY=VALUE (repeatable)."),
        checkpoint: Optional[Path] = typer.Option(None, "--checkpoint",
                                                  help="torch.save'd state_dict; its spec JSON lies beside it."),
        loss: Optional[str] = typer.Option(None, "--loss", help="Loss name (default: the dataset's task loss)."),
        split: str = typer.Option("train", "--split", help="Which split's loss: train, val or test."),
        top: int = typer.Option(1, "--top", help="Number of largest eigenvalues (0: none)."),
        bottom: int = typer.Option(0, "--bottom", help="Number of smallest eigenvalues."),
        trace: bool = typer.Option(False, "--trace", help="Trace with its standard error (Lanczos-deflated Hutchinson)."),
        density: bool = typer.Option(False, "--density", help="Spectral density by stochastic Lanczos quadrature."),
        layer: Optional[list[str]] = typer.Option(None, "--layer",
                                                  help="Restrict to a layer (parameter prefix, repeatable); 'all' = each layer."),
        ggn: bool = typer.Option(False, "--ggn", help="Use the Gauss-Newton matrix instead of the Hessian."),
        tol: float = typer.Option(1e-6, "--tol", help="Lanczos tolerance (relative to the spectral norm)."),
        float64: bool = typer.Option(True, "--float64/--float32", help="Compute in float64 (default) or float32."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size for HVPs (default: full)."),
        trace_rtol: float = typer.Option(1e-2, "--trace-rtol", help="Stop the trace at stderr <= rtol |trace|."),
        trace_samples: int = typer.Option(300, "--trace-samples", help="Most Hutchinson probes (after the deflation)."),
        probes: int = typer.Option(10, "--probes", help="SLQ probe vectors."),
        steps: int = typer.Option(80, "--steps", help="SLQ Lanczos steps per probe."),
        seed: int = typer.Option(0, "--seed", help="Seed of the model init and of the random probes."),
        run: Optional[str] = typer.Option(None, "--run", help="A stored training run (id or prefix) to analyse "
                                                                "at its final parameters."),
        no_save: bool = typer.Option(False, "--no-save", help="Do not record the result in the store."),
        json_: bool = JsonOpt,
        store: Optional[Path] = StoreOpt,
    ):
        """Curvature of a model's loss: top/bottom Hessian eigenvalues, trace, spectral density."""
        from ..hessian import layer_blocks
        from ..store import load_trained_run

        if trace and trace_samples < 2:
            raise ValueError(f"--trace-samples must be >= 2 (a standard error needs two probes), got {trace_samples}")
        if run is not None and (data or model or checkpoint):
            raise ValueError("give either --run or --data/--model/--checkpoint, not both")
        # analysing a stored run needs its store; only saving a new result may create one
        # (a new store is created only when the result is saved; a read-only one is read, not written)
        st = analysis_store(store, run=run, save=not no_save) if (run or not no_save) else None
        warning = None
        if run is not None:
            from .surface import diverged_warning

            tr = load_trained_run(st, run)
            net, splits, default_loss = tr.model, tr.splits, tr.loss
            warning = diverged_warning(tr.record)
            if warning:
                warn(warning)
        else:
            net, splits, default_loss = load_model(data=data, data_options=parse_options(data_opt), model=model,
                                                   model_options=parse_options(model_opt), checkpoint=checkpoint,
                                                   seed=seed)
        d = getattr(splits, split, None) if split in ("train", "val", "test") else None
        if d is None:
            raise ValueError(f"split {split!r} is not available; use train, val or test (one the dataset has)")
        loss_name = loss or default_loss
        dtype = torch.float64 if float64 else torch.float32
        blocks: list[tuple[str, object]]
        if not layer:
            blocks = [("all parameters", None)]
        elif layer == ["all"]:
            blocks = [(b, b) for b in layer_blocks(net)]
        else:
            blocks = [(b, b) for b in layer]
        result = {"data": splits.name, "loss": getattr(loss_name, "name", loss_name), "split": split, "blocks": {},
                  "warnings": [warning] if warning else []}
        for name, block in blocks:
            result["blocks"][name] = _analyse(net, d, loss_name, block=block, top=top, bottom=bottom, trace=trace,
                                              density=density, ggn=ggn, tol=tol, dtype=dtype, seed=seed,
                                              batch_size=batch_size, n_probes=probes, n_steps=steps,
                                              trace_rtol=trace_rtol, trace_samples=trace_samples)
        if st is not None and not no_save and not st.read_only:
            result["run_id"] = _save(st, result, parent=tr.record.id if run is not None else None,
                                     settings={"top": top, "bottom": bottom, "trace": trace, "density": density,
                                               "ggn": ggn, "layer": layer, "split": split, "seed": seed,
                                               "float64": float64, "tol": tol,
                                               **({"run_status": "diverged", "warnings": [warning]} if warning else {})})
        if json_:
            emit_json(result)
        else:
            for name, r in result["blocks"].items():
                _print(name, r)
