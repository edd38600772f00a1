"""``losslab gradcheck``: backprop vs central finite differences for a registered model."""
from __future__ import annotations

import inspect
import time
import uuid
from pathlib import Path
from typing import List, Optional

import typer

from ._common import JsonOpt, console, emit_json, out, parse_options, store_path
from ._format import print_table, whole_column


def _fill_dims(model: str, opts: dict, splits) -> dict:
    """Give in_dim/out_dim from the data when the model takes them and the user did not."""
    from ..models import MODELS

    params = inspect.signature(MODELS.get(model)).parameters
    filled = dict(opts)
    if "in_dim" in params and "in_dim" not in filled:
        filled["in_dim"] = splits.in_dim
    if "out_dim" in params and "out_dim" not in filled:
        filled["out_dim"] = splits.out_dim
    return filled


def register(app: typer.Typer) -> None:
    @app.command("gradcheck")
    def gradcheck_cmd(
        model: str = typer.Option(..., "--model", "-m", help="Registered model name (losslab models: linear, mlp, ...)."),
        data: str = typer.Option(..., "--data", "-d", help="Dataset name (see `losslab data list`)."),
        model_opt: Optional[List[str]] = typer.Option(None, "--model-opt", help="Model option KEY=VALUE (repeatable). "
                                                      "in_dim/out_dim default to the data's."),
        data_opt: Optional[List[str]] = typer.Option(None, "--data-opt", help="Dataset option KEY=VALUE (repeatable)."),
        loss: Optional[str] = typer.Option(None, "--loss", help="Loss name (default: the dataset's task default)."),
        init: str = typer.Option("default", "--init", help="Initialization (default, xavier, kaiming, orthogonal, small)."),
        seed: int = typer.Option(0, "--seed", help="Seed for model init, data and the checked-entry subset."),
        eps: float = typer.Option(1e-6, "--eps", help="Central-difference step."),
        tol: float = typer.Option(1e-6, "--tol", help="Pass when every tensor's relative error is <= tol."),
        max_per_tensor: Optional[int] = typer.Option(200, "--max-per-tensor",
                                                     help="Check a seeded random subset of at most this many entries "
                                                          "per tensor (0: all)."),
        max_examples: Optional[int] = typer.Option(256, "--max-examples",
                                                   help="Use the first N training examples (0: all)."),
        train: bool = typer.Option(False, "--train", help="Evaluate in train mode (batch norm batch stats, dropout)."),
        json_: bool = JsonOpt,
        store: Optional[Path] = typer.Option(None, "--store", help="Also record the check as a run of kind 'gradcheck' "
                                             "in this run store (only when given: a diagnostic is not stored by default)."),
    ) -> None:
        """Compare backprop gradients with central finite differences in float64, per tensor."""
        from rich.table import Table

        from ..data import Data, load
        from ..gradcheck import gradcheck
        from ..models import build

        splits = load(data, seed=seed, **parse_options(data_opt))
        mopts = _fill_dims(model, parse_options(model_opt), splits)
        net = build(model, init=init, seed=seed, **mopts)
        d = splits.train
        if max_examples:
            d = Data(d.X[:max_examples], d.y[:max_examples])
        loss_name = loss or splits.default_loss
        t0 = time.time()
        with console.status("finite differences ...", spinner="dots"):
            res = gradcheck(net, d, loss_name, eps=eps, seed=seed, tol=tol,
                            max_params_per_tensor=max_per_tensor or None, train=train)
        result = {"model": model, "model_options": mopts, "data": data, "data_options": parse_options(data_opt),
                  "loss": loss_name, "n_examples": d.n, "init": init, **res.as_dict()}
        if store is not None:
            from ..store import open_store

            settings = {k: result[k] for k in ("model", "model_options", "data", "data_options", "loss", "n_examples",
                                               "init", "eps", "tol", "seed", "train", "scale_floor")}
            summary = {"passed": res.passed, "max_rel_err": res.max_rel_err, "max_abs_err": res.max_abs_err}
            rid = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
            open_store(store_path(store)).put_run(rid, name=f"gradcheck {model} on {data}", kind="gradcheck",
                                                  settings=settings, status="completed", summary=summary, result=result,
                                                  wall_time=time.time() - t0)
            result["run_id"] = rid
            console.print(f"stored as run {rid} in {store_path(store)}")
        if json_:
            emit_json(result)
        else:
            t = Table(title=f"gradcheck {model} on {data} ({loss_name}, {d.n} examples, eps={eps:g})")
            whole_column(t, "tensor", [c.name for c in res.tensors])  # parameter names are never cut
            for c, j in (("shape", "left"), ("checked", "right"), ("max abs err", "right"),
                         ("max rel err", "right"), ("grad scale", "right"), ("", "left")):
                t.add_column(c, justify=j, no_wrap=True)
            for c in res.tensors:
                ok = c.max_rel_err <= tol
                t.add_row(c.name, "x".join(map(str, c.shape)) or "()", f"{c.n_checked}/{c.n_total}",
                          f"{c.max_abs_err:.2e}", f"{c.max_rel_err:.2e}", f"{c.grad_scale:.2e}",
                          "[green]ok[/]" if ok else "[bold red]FAIL[/]")
            print_table(out, t)
            verdict = "[bold green]PASSED[/]" if res.passed else "[bold red]FAILED[/]"
            out.print(f"{verdict}: max relative error {res.max_rel_err:.2e} (tol {tol:g}); "
                      f"relative error = max|g_bp - g_fd| / max(max|g_bp|, max|g_fd|, "
                      f"{res.scale_floor:g} x largest tensor scale), per tensor")
        if not res.passed:
            raise typer.Exit(1)
