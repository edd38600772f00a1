"""``losslab data list`` and ``losslab data show NAME``: what datasets exist and what they hold."""
from __future__ import annotations

from typing import List, Optional

import typer

from ._common import JsonOpt, emit_json, out, parse_options
from ._format import print_table, value


def describe(name: str) -> str:
    """A dataset's description: the first paragraph of its docstring, whole (the registry keeps only
    the first line, which can stop mid-sentence), as one line."""
    from ..data import DATASETS

    doc = (getattr(DATASETS.get(name), "__doc__", None) or "").strip()
    para = " ".join(doc.split("\n\n")[0].split())
    return para.replace("``", "") or DATASETS.describe().get(name, "")


def _summary(splits) -> dict:
    def part(d):
        if d is None:
            return None
        return {"n": d.n, "X_shape": list(d.X.shape), "y_shape": list(d.y.shape), "X_dtype": str(d.X.dtype).replace("torch.", ""),
                "y_dtype": str(d.y.dtype).replace("torch.", "")}

    return {"name": splits.name, "task": splits.task, "in_dim": splits.in_dim, "out_dim": splits.out_dim,
            "n_classes": splits.n_classes, "default_loss": splits.default_loss,
            "splits": {"train": part(splits.train), "val": part(splits.val), "test": part(splits.test)},
            "meta": splits.meta}


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="Datasets: list the registry, show one dataset's shapes and splits.",
                           no_args_is_help=True)

    @data_app.command("list")
    def list_cmd(json_: bool = JsonOpt) -> None:
        """Registered dataset names with a one-line description."""
        from rich.table import Table

        from ..data import DATASETS

        docs = {k: describe(k) for k in DATASETS.names()}
        if json_:
            emit_json(docs)
            return
        t = Table(title="datasets")
        t.add_column("name", style="bold", no_wrap=True)
        t.add_column("description", overflow="fold")
        for k, v in docs.items():
            t.add_row(k, v)
        print_table(out, t)

    @data_app.command("show")
    def show_cmd(
        name: str = typer.Argument(..., help="Dataset name (csv/npz need --opt path=FILE)."),
        opt: Optional[List[str]] = typer.Option(None, "--opt", "-o", help="Dataset option KEY=VALUE (repeatable)."),
        seed: int = typer.Option(0, "--seed", help="Seed for generation and splitting."),
        json_: bool = JsonOpt,
    ) -> None:
        """Shapes, task and split sizes of one dataset."""
        from rich.table import Table

        from ..data import DATASETS, load

        s = _summary(load(name, seed=seed, **parse_options(opt)))
        if json_:
            emit_json(s)
            return
        ncls = f", {s['n_classes']} classes" if s["n_classes"] else ""
        out.print(f"[bold]{s['name']}[/]: {s['task']}{ncls}, in_dim {s['in_dim']}, out_dim {s['out_dim']}, "
                  f"default loss {s['default_loss']}", highlight=False, soft_wrap=True)
        if name in DATASETS:
            out.print(describe(name), highlight=False, soft_wrap=True, markup=False)
        t = Table()
        for c in ("split", "n", "X shape", "y shape", "X dtype", "y dtype"):
            t.add_column(c)
        for k, v in s["splits"].items():
            if v is None:
                t.add_row(k, "0", "-", "-", "-", "-")
            else:
                t.add_row(k, str(v["n"]), str(tuple(v["X_shape"])), str(tuple(v["y_shape"])), v["X_dtype"], v["y_dtype"])
        print_table(out, t)
        if s["meta"]:
            out.print("meta: " + value(s["meta"]), highlight=False, soft_wrap=True, markup=False)

    app.add_typer(data_app, name="data")
