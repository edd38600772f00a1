"""An 8-run sweep (2 seeds x 4 learning rates, MLP on moons, 300 SGD steps) with 1 vs 2 local Dask
workers on this machine; prints a markdown section for benchmarks/RESULTS.md.

    python benchmarks/sweep.py

The measured time is run_study's wall time (cluster startup excluded: the cluster is started
first and passed in); every unit runs with 1 torch thread. Results must be identical across
worker counts (checked).
"""
from __future__ import annotations

import os
import platform
import tempfile
import time


SPEC = {"name": "bench8", "data": {"name": "moons", "options": {"n": 400}}, "model": {"options": {"hidden": [32, 32]}},
        "train": {"steps": 300, "batch_size": 32, "eval_every": 50},
        "sweep": {"seeds": [0, 1], "lrs": [0.02, 0.05, 0.1, 0.2]}}


def _warm():
    from losslab.experiments import execute_unit, plan, validate_spec

    u = plan(validate_spec({**SPEC, "train": {**SPEC["train"], "steps": 2}, "sweep": {}}), "warm")[0]
    execute_unit(u.kind, u.payload, 1)


def main():
    import distributed

    from losslab.experiments import run_study, validate_spec
    from losslab.experiments.distributed import DaskExecutor
    from losslab.store import open_store

    spec = validate_spec(SPEC)
    rows, finals = [], {}
    for n in (1, 2):
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
        client = distributed.Client(cluster)
        client.run(_warm)  # warm each worker (imports, torch's lazy first-call setup) before timing
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            res = run_study(spec, store=d, executor=DaskExecutor(client=client))
            wall = time.perf_counter() - t0
            st = open_store(d)
            finals[n] = {r.name: r.summary["final_train_loss"] for r in st.list(study=res.study_id)}
        client.close()
        cluster.close()
        assert res.status == "completed" and res.n_ran == 8
        rows.append((n, wall))
        print(f"{n} worker(s): {wall:.2f} s")
    assert finals[1] == finals[2], "results differ between 1 and 2 workers"
    speedup = rows[0][1] / rows[1][1]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = [
        "# 8-run sweep: 1 vs 2 local Dask workers",
        "",
        f"Command: `python benchmarks/sweep.py` ({time.strftime('%Y-%m-%d')}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load:.1f} at the end: the machine is shared).",
        "",
        "Sweep: MLP [32, 32] on moons (n=400), SGD, 300 steps, batch 32; seeds {0, 1} x lr {0.02, 0.05, 0.1, 0.2}.",
        "Wall time of `run_study` (cluster started and each worker warmed by a 2-step run beforehand), 1 torch thread per worker.",
        "",
        "| workers | wall time (s) | speedup |",
        "|---|---|---|",
    ]
    for n, w in rows:
        text.append(f"| {n} | {w:.2f} | {rows[0][1] / w:.2f}x |")
    text += ["", f"Final training losses identical with 1 and 2 workers: yes ({len(finals[1])} runs).", ""]
    print("\n".join(text))  # a markdown section for benchmarks/RESULTS.md
    print(f"speedup {speedup:.2f}x")


if __name__ == "__main__":
    main()
