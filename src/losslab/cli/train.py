"""``losslab train``: train one model on one dataset, with a progress bar, and save it to the run store."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import JsonOpt, StoreOpt, check_store_writable, console, emit_json, out, parse_options, progress
from ._format import num


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        data: str = typer.Option(..., "--data", "-d", help="Dataset name (see `losslab data list`)."),
        model: str = typer.Option("mlp", "--model", "-m", help="Model name (linear, mlp, deep_linear, rnn, lstm, ...)."),
        model_opt: Optional[List[str]] = typer.Option(None, "--model-opt", help="Model option KEY=VALUE (repeatable); "
                                                      "in_dim/out_dim default to the data's."),
        data_opt: Optional[List[str]] = typer.Option(None, "--data-opt", help="Dataset option KEY=VALUE (repeatable)."),
        optimizer: str = typer.Option("sgd", "--optimizer", "-o", help="Optimizer name (gd, sgd, momentum, adam, ...)."),
        opt_opt: Optional[List[str]] = typer.Option(None, "--opt-opt", help="Optimizer option KEY=VALUE (repeatable)."),
        lr: float = typer.Option(0.1, "--lr", help="Learning rate (> 0)."),
        steps: int = typer.Option(100, "--steps", help="Optimizer steps (> 0)."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Minibatch size (default: full batch)."),
        seed: int = typer.Option(0, "--seed", help="Seed for data, model init and minibatch order."),
        loss: Optional[str] = typer.Option(None, "--loss", help="Loss name (default: the dataset's task default)."),
        schedule: str = typer.Option("constant", "--schedule", help="Learning-rate schedule (constant, step, cosine, ...)."),
        init: str = typer.Option("default", "--init", help="Initialization (default, xavier, kaiming, orthogonal, small)."),
        weight_decay: float = typer.Option(0.0, "--weight-decay", help="L2 penalty."),
        eval_every: int = typer.Option(10, "--eval-every", help="Evaluate the full-data loss every N steps."),
        sharpness_every: Optional[int] = typer.Option(None, "--sharpness-every",
                                                      help="Record lambda_max (with 2/lr) every N steps."),
        name: Optional[str] = typer.Option(None, "--name", help="Run name (default DATA-MODEL-OPTIMIZER)."),
        json_: bool = JsonOpt,
        store: Optional[Path] = StoreOpt,
    ) -> None:
        """Train a model and record the run in the store (Ctrl-C keeps what it had, as 'interrupted')."""
        from ..data import load
        from ..experiments.units import build_model
        from ..experiments.spec import ModelSpec
        from ..store import open_store
        from ..train import train

        # nothing is written before the input is known to be good: a read-only or broken store fails
        # now, before training; the store is created (and the run registered) only once training runs
        path = check_store_writable(store)
        splits = load(data, seed=seed, **parse_options(data_opt))
        mspec = ModelSpec(name=model, options=parse_options(model_opt), init=init, seed=seed)
        net = build_model(mspec, splits)
        run_name = name or f"{data}-{model}-{optimizer}"
        extra = {"data": data, "data_options": parse_options(data_opt), "model": model, "model_options": mspec.options,
                 "init": init}
        opened: dict = {}

        def register_run() -> None:
            # the run is in the index (status 'running') while it trains; its full record replaces this one at the end
            if not opened:
                st = open_store(path)
                rid = st.new_run(name=run_name, kind="train", settings={**extra, "optimizer": optimizer, "lr": lr,
                                                                        "steps": steps, "batch_size": batch_size,
                                                                        "seed": seed})
                opened.update(st=st, rid=rid, created=st.get(rid).created)

        def on_step(done, total) -> None:
            register_run()  # train() calls this after its first step: every argument has been checked by then
            bar.update(task, completed=done)

        try:
            with progress(disable=json_) as bar:
                task = bar.add_task(f"train {run_name}", total=steps)
                traj = train(net, splits, loss=loss, optimizer=optimizer, lr=lr, steps=steps, batch_size=batch_size,
                             seed=seed, optimizer_options=parse_options(opt_opt) or None, schedule=schedule,
                             weight_decay=weight_decay, eval_every=eval_every, sharpness_every=sharpness_every,
                             progress=on_step)
        except KeyboardInterrupt:  # before the first step (train() itself turns a Ctrl-C into status 'interrupted')
            if opened:
                opened["st"].finish(opened["rid"], status="interrupted", summary={"steps_run": 0},
                                    message="interrupted before training started")
            raise
        except Exception as e:
            if opened:
                opened["st"].finish(opened["rid"], status="failed", summary={}, message=f"{type(e).__name__}: {e}")
            raise
        register_run()  # a run that stopped (diverged, interrupted) before reporting a step
        st, rid, created = opened["st"], opened["rid"], opened["created"]
        settings = {**traj.settings, **extra}
        st.put_run(rid, name=run_name, kind="train", settings=settings, status=traj.status, summary=traj.summary(),
                   arrays=traj.arrays(), result={"settings": settings, "summary": traj.summary(),
                                                 "param_names": list(traj.param_names), "message": traj.message},
                   wall_time=traj.wall_time, message=traj.message, created=created)
        summary = traj.summary()
        if json_:
            emit_json({"id": rid, "store": str(st.path), "status": traj.status, "message": traj.message,
                       "summary": summary})
        else:
            colour = {"completed": "green", "interrupted": "yellow", "diverged": "red"}.get(traj.status, "white")
            out.print(f"run [bold]{rid}[/] [{colour}]{traj.status}[/] in {num(traj.wall_time)} s: final train loss "
                      f"{num(summary['final_train_loss'])}"
                      + (f", val loss {num(summary['final_val_loss'])}" if summary.get("final_val_loss") is not None else "")
                      + (f", val accuracy {num(summary['final_val_acc'])}" if summary.get("final_val_acc") is not None
                         else "")
                      + (f" ({traj.message})" if traj.message else ""), highlight=False, soft_wrap=True)
            out.print(f"saved to {st.path} (see `losslab runs show {rid}`)", highlight=False, soft_wrap=True)
        if traj.status == "interrupted":
            console.print("[yellow]interrupted: the run was saved with what it had[/]")
            raise SystemExit(130)  # typer.Exit codes are dropped by run_app (standalone_mode=False)
