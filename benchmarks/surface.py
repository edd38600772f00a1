"""Loss-surface speed: losslab vs a per-point loop vs loss-landscapes 3.0.6 (random_plane).

Cases (digits, train split, 1257 examples, cross-entropy, filter-normalized directions, span 1):
  (a) MLP 64-32(tanh)-10 trained 200 full-batch Adam steps (lr 1e-2), 51x51 grid;
  (b) MLP 64-512-512-10 (tanh) trained 200 full-batch Adam steps (lr 1e-3), 201x201 grid.

The fp32 FLOP floor of a grid = (forward matmul FLOPs per point x points) / (measured fp32
matmul rate of this device: best of a square matmul and the case-b layer shape, the fastest seen before and
after all cases). "At the same moment": each losslab repeat right after its own rate measurement, the best of
the repeats' ratios (on a shared host the rate moves within minutes). Timings are wall clock, best of --repeats,
after one warm-up; on CUDA every timed region ends with torch.cuda.synchronize().

Where a full grid would take too long (case b on a small CPU) a strip of whole grid rows is
timed and the time multiplied by (rows in the grid / rows timed); the table says so.
loss-landscapes has no row subset: on such cases its random_plane is timed on a smaller
steps x steps grid and its per-point time multiplied by the full point count (also stated).

All methods run in this one process with the same torch thread count (printed; --threads sets it).

Run:  python benchmarks/surface.py [--quick] [--device cuda] [--full] [--threads N] [--allocator keep] [--json]
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import sys
import time

import numpy as np
import torch

from losslab.data import load
from losslab.landscape import random_directions
from losslab.landscape.evaluate import Evaluator
from losslab.losses import get_loss
from losslab.models import build


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats):
    best, out = math.inf, None
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t)
    return best, out


def matmul_rate(device, reps=10):
    """Measured fp32 GFLOP/s (TF32 off): the best of a square matmul (2048 on CUDA, 1024 on CPU)
    and the case-(b) layer shape (1257 x 512) @ (512 x 512), each best of 3 timings of ``reps`` calls."""
    torch.backends.cuda.matmul.allow_tf32 = False
    n = 2048 if device.type == "cuda" else 1024
    best = 0.0
    for (p, q, r) in ((n, n, n), (1257, 512, 512)):
        a = torch.randn(p, q, device=device)
        b = torch.randn(q, r, device=device)
        for _ in range(3):
            a @ b
        for _ in range(3):
            sync(device)
            t = time.perf_counter()
            for _ in range(reps):
                a @ b
            sync(device)
            best = max(best, 2 * p * q * r * reps / (time.perf_counter() - t) / 1e9)
    return best


def make_case(name, device, quick):
    sp = load("digits", seed=0)
    X, y = sp.train.X.to(device), sp.train.y.to(device)
    if name == "a":
        model = build("mlp", in_dim=64, hidden=[32], out_dim=10, activation="tanh", seed=0)
        lr, res = 1e-2, 51
    else:
        model = build("mlp", in_dim=64, hidden=[512, 512], out_dim=10, activation="tanh", seed=0)
        lr, res = 1e-3, 201
    model = model.to(device)
    lf = get_loss("cross_entropy")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(200):
        opt.zero_grad()
        lf(model(X), y).backward()
        opt.step()
    model.eval()
    if quick:
        res = {"a": 21, "b": 41}[name]
    widths = [64] + ([32] if name == "a" else [512, 512]) + [10]
    flops_per_point = 2 * X.shape[0] * sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    return model, X, y, res, flops_per_point, widths


def grid(res):
    a = np.linspace(-1, 1, res)
    A, B = np.meshgrid(a, a, indexing="ij")
    return torch.as_tensor(np.stack([A.ravel(), B.ravel()], 1), dtype=torch.float32)


def per_point_loop(model, X, y, base, dirs, coords):
    """The straightforward way: one deep copy, parameters overwritten and one forward per point."""
    m = copy.deepcopy(model).eval()
    lf = torch.nn.CrossEntropyLoss()
    out = torch.empty(len(coords), device=X.device)
    with torch.no_grad():
        for i, c in enumerate(coords.to(X.device)):
            torch.nn.utils.vector_to_parameters(base + c @ dirs, m.parameters())
            out[i] = lf(m(X), y)
    return out.cpu()


def loss_landscapes_plane(model, X, y, steps, device):
    import loss_landscapes
    import loss_landscapes.main as llm
    import loss_landscapes.model_interface.model_parameters as llp
    from loss_landscapes.metrics import Loss

    if device.type == "cuda":  # 3.0.6 draws directions on the CPU and fails on CUDA: patch it to draw on the device
        def rand_u_like(example):
            return llp.ModelParameters([torch.rand(p.size(), dtype=p.dtype, device=p.device) for p in example])
        llm.rand_u_like = rand_u_like
        llp.rand_u_like = rand_u_like
    metric = Loss(torch.nn.CrossEntropyLoss(), X, y)
    torch.manual_seed(0)
    return loss_landscapes.random_plane(model, metric, distance=1, steps=steps, normalization="filter",
                                        deepcopy_model=True)


def have_loss_landscapes() -> bool:
    """loss-landscapes importable? If not, say once how to get it (its column is skipped)."""
    try:
        import loss_landscapes  # noqa: F401
    except ImportError:
        print('note: loss-landscapes is not installed, its column is skipped: pip install -e ".[bench]"', file=sys.stderr)
        return False
    return True


def run_case(name, device, args):
    model, X, y, res, fpp, widths = make_case(name, device, args.quick)
    M = res * res
    coords = grid(res)
    d = random_directions(model, kind="filter", k=2, seed=0)
    base, dirs = d.base.to(device), d.vectors.to(device)
    big = name == "b" and device.type == "cpu" and not args.full
    rows = (2 if args.quick else 3) if big else res
    sub = coords[: rows * res]
    scale = res / rows
    rec = {"case": name, "grid": f"{res}x{res}", "points": M, "widths": widths, "n": int(X.shape[0])}

    ev = Evaluator(model, (X, y), "cross_entropy", base, dirs, device=device)
    ev.run_chunked(coords[: min(M, 64)])  # warm-up (also chooses the chunk size)
    reps = args.repeats  # best of --repeats everywhere (a strip of 3 rows is a few seconds per repeat)
    # each repeat right after a measurement of the matmul rate: its ratio to the floor *at that moment*
    # (on a shared host the rate moves by 10-30 % within minutes; the main column keeps the global best rate)
    adjacent, l_ll = [], None
    for _ in range(reps):
        r_now = matmul_rate(device)
        t_i, (l_ll, _) = timed(lambda: ev.run_chunked(sub), device, 1)
        adjacent.append((t_i, r_now))
    t_ll = min(t for t, _ in adjacent)
    rec["losslab_s"] = t_ll * scale
    rec["adjacent"] = [{"s": t * scale, "gflops": r} for t, r in adjacent]
    rec["losslab_over_adjacent_floor"] = min(t * r * 1e9 / (fpp * len(sub)) for t, r in adjacent)
    rec["losslab_chunk"] = ev.chunk_size
    rec["losslab_affine"] = ev.affine is not None
    rec["losslab_fast_path"] = ev.fast is not None
    ev2 = Evaluator(model, (X, y), "cross_entropy", base, dirs, device=device, affine=False)
    ev2.run_chunked(coords[: min(M, 64)])
    t_gen, (l_gen, _) = timed(lambda: ev2.run_chunked(sub), device, reps)
    rec["losslab_generic_s"] = t_gen * scale

    loop_rows = max(1, rows // 3) if big else rows
    loop_sub = coords[: loop_rows * res]
    per_point_loop(model, X, y, base, dirs, coords[:8])
    t_loop, l_loop = timed(lambda: per_point_loop(model, X, y, base, dirs, loop_sub), device, args.repeats)
    rec["loop_s"] = t_loop * res / loop_rows
    n_cmp = len(loop_sub)
    rec["max_rel_diff_vs_loop"] = float(((l_ll[:n_cmp].double() - l_loop.double()).abs() / l_loop.double().abs()).max())

    if not args.skip_loss_landscapes:
        try:
            lsteps = res if not big else (11 if args.quick else 15)
            loss_landscapes_plane(model, X, y, 5, device)  # warm-up
            t_lls, _ = timed(lambda: loss_landscapes_plane(model, X, y, lsteps, device), device,
                             1 if (big or name == "b") else args.repeats)
            rec["loss_landscapes_s"] = t_lls * M / (lsteps * lsteps)
            rec["loss_landscapes_grid"] = f"{lsteps}x{lsteps}"
        except Exception as e:  # report, don't hide
            rec["loss_landscapes_error"] = f"{type(e).__name__}: {e}"
    rec["flops"] = fpp * M
    rec["extrapolated"] = big
    rec["rows_timed"] = {"losslab": rows, "loop": loop_rows}
    return rec


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small grids (21x21, 41x41) for a fast smoke run")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--full", action="store_true", help="time every grid point even where it takes long")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cases", default="a,b")
    p.add_argument("--skip-loss-landscapes", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads for ALL methods (default: torch's default, every core)")
    p.add_argument("--allocator", choices=("default", "keep"), default="default",
                   help="keep: losslab.keep_freed_memory() first (what the losslab command does), for every method")
    args = p.parse_args(argv)
    if args.allocator == "keep":
        from losslab import keep_freed_memory

        print(f"# allocator: {keep_freed_memory()}")
    if args.threads:
        torch.set_num_threads(args.threads)  # one setting for losslab, the loop and loss-landscapes alike
    device = torch.device(args.device)
    if not args.skip_loss_landscapes and not have_loss_landscapes():
        args.skip_loss_landscapes = True
    rate = matmul_rate(device)
    info = {"device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
            "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "matmul_gflops": rate, "quick": args.quick,
            "load_average_at_start": __import__("os").getloadavg()}
    recs = [run_case(c.strip(), device, args) for c in args.cases.split(",")]
    # the floor uses the fastest matmul rate seen (before and after the cases): a conservative floor
    rate = max(rate, matmul_rate(device))
    info["matmul_gflops"] = rate
    for r in recs:
        r["floor_s"] = r["flops"] / (rate * 1e9)
    if args.json:
        print(json.dumps({"info": info, "cases": recs}, indent=2))
        return
    print(f"device {info['device']} ({info['threads']} threads), torch {info['torch']}, "
          f"fp32 matmul {rate:.1f} GFLOP/s{' [quick]' if args.quick else ''}; load average at start "
          f"{info['load_average_at_start'][0]:.1f}, at end {__import__('os').getloadavg()[0]:.1f}")
    print("| case | grid | losslab (s) | losslab generic vmap (s) | per-point loop (s) | loss-landscapes (s) | "
          "fp32 FLOP floor (s) | losslab / floor | losslab / floor at the same moment | speed-up vs loss-landscapes | "
          "speed-up vs loop | max rel diff vs loop |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in recs:
        lls = r.get("loss_landscapes_s")
        print(f"| {r['case']} {'-'.join(map(str, r['widths']))} | {r['grid']} | {r['losslab_s']:.3f} | "
              f"{r['losslab_generic_s']:.3f} | {r['loop_s']:.3f} | "
              f"{'%.3f' % lls if lls else r.get('loss_landscapes_error', 'skipped')} | {r['floor_s']:.3f} | "
              f"{r['losslab_s'] / r['floor_s']:.2f} | {r['losslab_over_adjacent_floor']:.2f} | "
              f"{('%.1fx' % (lls / r['losslab_s'])) if lls else '-'} | "
              f"{r['loop_s'] / r['losslab_s']:.2f}x | {r['max_rel_diff_vs_loop']:.1e} |")
    for r in recs:
        if r["extrapolated"]:
            print(f"case {r['case']}: extrapolated: losslab timed on {r['rows_timed']['losslab']} of "
                  f"{r['grid'].split('x')[0]} grid rows, the per-point loop on {r['rows_timed']['loop']} rows, "
                  f"loss-landscapes on a {r.get('loss_landscapes_grid')} grid; times scaled to the full {r['grid']} grid.")
        elif r.get("loss_landscapes_grid") and r["loss_landscapes_grid"] != r["grid"]:
            print(f"case {r['case']}: loss-landscapes timed on {r['loss_landscapes_grid']}, scaled.")
        print(f"case {r['case']}: losslab repeats (s, matmul GFLOP/s measured just before): "
              + ", ".join(f"{a['s']:.3g} s at {a['gflops']:.0f}" for a in r["adjacent"]))
        print(f"case {r['case']}: losslab chunk {r['losslab_chunk']} points, MLP fast path {r['losslab_fast_path']}, "
              f"first-layer affine {r['losslab_affine']}")


if __name__ == "__main__":
    main()
