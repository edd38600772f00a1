"""``losslab surface``: a loss surface of a built-in model trained inline on built-in data.

The model comes from :func:`acquire_model` (built + trained with torch.optim); the lead's run
store will add "on a stored run" there. The Surface is written to the store folder (npz +
json), and partial grids are checkpointed there so an interrupted command resumes when rerun
with the same arguments.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Optional

import typer

from ._common import JsonOpt, StoreOpt, console, emit_json, fail, parse_options, progress, store_path

OPTIMIZERS = {"adam": "Adam", "sgd": "SGD", "adamw": "AdamW", "rmsprop": "RMSprop"}


def acquire_model(*, data: str, data_opts: dict, model: str, model_opts: dict, loss: str | None, train_steps: int,
                  lr: float, optimizer: str, seed: int):
    """Build data and model from the registries and train ``train_steps`` full-batch steps of
    ``torch.optim``; returns (model, splits, loss name). The one place a model is obtained."""
    import torch

    from ..data import load
    from ..losses import get_loss
    from ..models import MODELS, build

    splits = load(data, seed=seed, **data_opts)
    opts = dict(model_opts)
    import inspect

    params = inspect.signature(MODELS.get(model)).parameters
    if "in_dim" in params and "in_dim" not in opts:
        X = splits.train.X
        opts["in_dim"] = int(X.shape[-1]) if X.dim() == 3 else int(X[0].numel())
    if "out_dim" in params and "out_dim" not in opts:
        opts["out_dim"] = splits.n_classes if splits.task == "classification" and splits.n_classes else splits.out_dim
    net = build(model, seed=seed, **opts)
    loss_name = loss or splits.default_loss
    lossobj = get_loss(loss_name)
    if train_steps < 0:
        raise ValueError(f"--train-steps must be >= 0, got {train_steps}")
    if train_steps:
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        opt = getattr(torch.optim, OPTIMIZERS[optimizer])(net.parameters(), lr=lr)
        X, y = splits.train.X, splits.train.y
        net.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for _ in range(train_steps):
                opt.zero_grad()
                lossobj(net(X), y).backward()
                opt.step()
    net.eval()
    return net, splits, loss_name


def register(app: typer.Typer) -> None:
    @app.command("surface")
    def surface_cmd(
        data: str = typer.Option("digits", "--data", help="Built-in dataset name."),
        data_opt: Optional[list[str]] = typer.Option(None, "--data-opt", help="Dataset option KEY=VALUE (repeatable)."),
        model: str = typer.Option("mlp", "--model", help="Built-in model name."),
        model_opt: Optional[list[str]] = typer.Option(None, "--model-opt", help="Model option KEY=VALUE, e.g. hidden=[32]."),
        loss: Optional[str] = typer.Option(None, "--loss", help="Loss name (default: the dataset's task loss)."),
        train_steps: int = typer.Option(200, "--train-steps", help="Full-batch optimizer steps before measuring."),
        lr: float = typer.Option(1e-2, "--lr", help="Learning rate for the inline training."),
        optimizer: str = typer.Option("adam", "--optimizer", help=f"One of {', '.join(OPTIMIZERS)}."),
        directions: str = typer.Option("filter", "--directions", help="Direction kind: filter, layer, model, gaussian, unnormalized."),
        dim: int = typer.Option(2, "--dim", help="1 (curve) or 2 (plane)."),
        resolution: int = typer.Option(21, "--resolution", help="Grid points per axis."),
        span: float = typer.Option(1.0, "--span", help="Grid covers [-span, span] on each axis."),
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
        """Compute a loss surface (1-D curve or 2-D plane) around a trained built-in model."""
        import torch

        from ..landscape import surface

        dtypes = {"float32": torch.float32, "float64": torch.float64}
        if dtype not in dtypes:
            fail(f"--dtype must be one of {', '.join(dtypes)}, got {dtype!r}")
        net, splits, loss_name = acquire_model(data=data, data_opts=parse_options(data_opt), model=model,
                                               model_opts=parse_options(model_opt), loss=loss, train_steps=train_steps,
                                               lr=lr, optimizer=optimizer, seed=seed)
        d = getattr(splits, split, None) if split in ("train", "val", "test") else None
        if d is None:
            fail(f"--split must be train, val or test and present in dataset {data!r}; got {split!r}")
        args = {"data": data, "data_opt": sorted(data_opt or []), "model": model, "model_opt": sorted(model_opt or []),
                "loss": loss_name, "train_steps": train_steps, "lr": lr, "optimizer": optimizer,
                "directions": directions, "dim": dim, "resolution": resolution, "span": span,
                "include_biases": include_biases, "orthogonalize": orthogonalize, "bn": bn, "split": split,
                "dtype": dtype, "seed": seed}
        key = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
        root = store_path(store) / "surfaces"
        ck = root / "partial" / f"{key}.npz"
        with progress(disable=json_out) as bar:
            task = bar.add_task("surface", total=resolution ** dim)
            s = surface(net, d, loss=loss_name, directions=directions, dim=dim, resolution=resolution, span=span,
                        seed=seed, include_biases=include_biases, orthogonalize=orthogonalize, bn=bn,
                        dtype=dtypes[dtype], device=device, checkpoint=ck,
                        progress=lambda done, total: bar.update(task, completed=done, total=total))
        name = f"surface-{time.strftime('%Y%m%d-%H%M%S')}-{key[:8]}"
        npz, js = s.save(root / name)
        ck.unlink(missing_ok=True)
        result = s.to_dict()
        result["saved"] = {"npz": str(npz), "json": str(js)}
        result["command"] = args
        if json_out:
            emit_json(result)
            return
        m = s.min()
        console.print(f"[bold]surface[/] {s.kind} {'x'.join(map(str, s.shape))} on {data}/{split} "
                      f"({s.info['points']} points, {s.info['seconds']:.2f} s, {s.info['strategy']}, "
                      f"chunk {s.info['chunk_size']}, first-layer affine: {s.info['affine_first_layer']})")
        center = s.loss[tuple(len(a) // 2 for a in s.axes)]
        console.print(f"loss at centre {float(center):.6g}; min {m['loss']:.6g} at {m['coords']}; "
                      f"max {float(s.loss.max()):.6g}")
        console.print(f"saved {npz} and {js}")
