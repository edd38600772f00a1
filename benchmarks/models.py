"""Per architecture: surface time vs a naive per-point loop (and loss-landscapes), lambda_max
time / HVP count / error (and PyHessian), in one process.

Architectures (digits, train split, 1257 examples, 10 classes, cross-entropy, float32, randomly
initialised with torch.manual_seed(0); the CNN's batch-norm running statistics from one
train-mode pass over the data, as after training):
  mlp          losslab MLP 64-32(tanh)-10                                   (2410 parameters)
  cnn_bn_res   conv(1->11) -> BN -> relu, residual conv(11->11) -> BN, relu,
               global average pool, linear(11->10); images 1x8x8            (1374 parameters)
  lstm         nn.LSTM(8, 16) over the 8 image rows, linear head            (1834 parameters)
  transformer  linear(8->16) tokens + positions, 1 encoder layer (2 heads, ff 32), mean pool, head

Surface: 11x11 grid, span 1, filter-normalized directions (seed 0). "naive" = one deep copy of
the model, then per grid point theta = base + a d1 + b d2 written into its parameters with
``torch.no_grad(): p.copy_(...)`` and the full-data mean cross-entropy of ``model(X)`` -- the same
base and directions as losslab's surface. losslab's time includes everything ``surface()`` does
(direction drawing, checks, strategy choice). Also timed: ``strategy="vmap"`` and ``"loop"``
forced, to show what the automatic choice picked from. Error: max |loss - naive| / |naive|.

lambda_max: losslab ``hessian_operator`` + ``lanczos(tol=1e-4)`` (construction included) on the
first 256 examples; reference = the top eigenvalue (``eigvalsh``) of the exact float64 Hessian
(``losslab.hessian.exact_hessian``, tested against torch.func.hessian in the test suite).
At equal accuracy (with PyHessian installed; --no-frontier skips it): losslab's Lanczos (with and
without its fresh-vector check) at tol 1e-1..1e-6 and PyHessian's power iteration at tol 1e-2..1e-6
(maxIter 1000); per PyHessian setting, the fastest losslab run whose error is no larger.

Timings: wall clock, min over --repeats after one warm-up (the naive loop and losslab's surface also
interleaved, with their medians: on glibc the naive loop's speed on a CNN moves up to 3x between runs
with the heap's state, see losslab/allocator.py; --allocator keep fixes it for every method), all methods
in this process with the same torch thread count (default 1: on a loaded 2-core machine two intra-op
threads wait on each other's scheduling and make every op cost a time slice). With --device cuda every
timed function ends in host values (float() or numpy), so the GPU's work is inside each timing; TF32 off. Peers (loss-landscapes, PyHessian) are
skipped with a note when not installed: pip install -e ".[bench]".

Run:  python benchmarks/models.py [--repeats 3] [--threads 1] [--only cnn_bn_res,mlp] [--allocator keep] [--device cuda] [--json]
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from losslab.data import load
from losslab.models import build


class ResidualCNN(nn.Module):
    def __init__(self, ch: int = 11, classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(1, ch, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(ch)
        self.head = nn.Linear(ch, classes)

    def forward(self, x):
        h = torch.relu(self.bn1(self.stem(x)))
        h = torch.relu(h + self.bn2(self.conv(h)))
        return self.head(h.mean(dim=(2, 3)))


class RowLSTM(nn.Module):
    def __init__(self, hidden: int = 16, classes: int = 10):
        super().__init__()
        self.rnn = nn.LSTM(8, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class RowTransformer(nn.Module):
    def __init__(self, d: int = 16, classes: int = 10):
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.pos = nn.Parameter(torch.randn(8, d) * 0.1)
        layer = nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x) + self.pos).mean(dim=1))


def make(name: str):
    sp = load("digits", seed=0)
    X, y = sp.train.X.float(), sp.train.y
    torch.manual_seed(0)
    if name == "mlp":
        return build("mlp", in_dim=64, hidden=[32], out_dim=10, activation="tanh", seed=0).eval(), X, y
    if name == "cnn_bn_res":
        X = X.reshape(-1, 1, 8, 8)
        m = ResidualCNN()
        with torch.no_grad():
            m.train()
            m(X)
        return m.eval(), X, y
    X = X.reshape(-1, 8, 8)  # 8 rows of 8 pixels as a sequence
    return (RowLSTM() if name == "lstm" else RowTransformer()).eval(), X, y


ARCHS = ("mlp", "cnn_bn_res", "lstm", "transformer")


def best_of(fn, repeats):
    fn()  # warm-up
    best, out = math.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def naive_surface(model, X, y, s):
    """The naive loop: one deep copy, parameters written per point, full-data forward."""
    base = torch.as_tensor(s.base, dtype=torch.float32, device=X.device)
    d = torch.as_tensor(s.directions, dtype=torch.float32, device=X.device)
    m = copy.deepcopy(model).eval()
    named = dict(m.named_parameters())
    params = [named[n] for n in s.param_names]
    out = np.zeros(s.loss.shape)
    with torch.no_grad():
        for i, a in enumerate(s.axes[0]):
            for j, b in enumerate(s.axes[1]):
                theta = base + float(a) * d[0] + float(b) * d[1]
                k = 0
                for p in params:
                    p.copy_(theta[k:k + p.numel()].view_as(p))
                    k += p.numel()
                out[i, j] = float(F.cross_entropy(m(X), y))
    return out


def have(module: str, what: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        print(f'note: {what} is not installed, its columns are skipped: pip install -e ".[bench]"')
        return False
    return True


def loss_landscapes_time(model, X, y, repeats):
    import loss_landscapes
    import loss_landscapes.metrics

    metric = loss_landscapes.metrics.Loss(nn.CrossEntropyLoss(), X, y)
    return best_of(lambda: loss_landscapes.random_plane(copy.deepcopy(model), metric, distance=1, steps=11,
                                                        normalization="filter", deepcopy_model=True), repeats)[0]


def pyhessian_lambda_max(model, X, y, repeats):
    from pyhessian import hessian as ph_hessian

    def run():
        torch.manual_seed(0)
        comp = ph_hessian(copy.deepcopy(model), nn.CrossEntropyLoss(), data=(X, y), cuda=X.is_cuda)
        return float(comp.eigenvalues(top_n=1)[0][0])
    return best_of(run, repeats)


def surface_rows(name, model, X, y, repeats, peers):
    from losslab.landscape import surface

    kw = dict(loss="cross_entropy", directions="filter", resolution=11, span=1.0, seed=0)
    s = surface(model, (X, y), **kw)
    naive_surface(model, X, y, s)  # warm-ups
    # interleaved (naive, losslab, naive, ...): both see the same host and the same heap state; min and median
    ts = {"naive": [], "losslab": []}
    for _ in range(repeats):
        t = time.perf_counter()
        ref = naive_surface(model, X, y, s)
        ts["naive"].append(time.perf_counter() - t)
        t = time.perf_counter()
        s = surface(model, (X, y), **kw)
        ts["losslab"].append(time.perf_counter() - t)
    t_auto, t_naive = min(ts["losslab"]), min(ts["naive"])
    row = {"arch": name, "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
           "naive_s": t_naive, "losslab_s": t_auto, "naive_median_s": float(np.median(ts["naive"])),
           "losslab_median_s": float(np.median(ts["losslab"])), "strategy": s.info["strategy"], "chunk": s.info["chunk_size"],
           "mlp_fast_path": s.info["mlp_fast_path"], "rel_err": float(np.max(np.abs(s.loss - ref) / np.abs(ref)))}
    for strat in ("vmap", "loop"):
        try:  # vmap has no batching rule for some modules (aten::lstm): that strategy is then n/a
            row[f"{strat}_s"] = best_of(lambda: surface(model, (X, y), strategy=strat, **kw), repeats)[0]
        except RuntimeError as e:
            row[f"{strat}_s"] = None
            row[f"{strat}_error"] = str(e).split("\n")[0][:120]
    row["loss_landscapes_s"] = None
    if peers["ll"]:
        try:  # the peer's own failure on a model is a result (e.g. a zero-norm filter), not a crash of the table
            row["loss_landscapes_s"] = loss_landscapes_time(model, X, y, repeats)
        except Exception as e:  # noqa: BLE001 - any peer error is reported in the table
            row["loss_landscapes_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}"
    return row


def lambda_rows(row, model, X, y, repeats, peers, n=256):
    import losslab.hessian as H

    Xs, ys = X[:n], y[:n]
    ref = float(torch.linalg.eigvalsh(H.exact_hessian(model, (Xs, ys), "cross_entropy"))[-1])

    def run():
        op = H.hessian_operator(model, (Xs, ys), "cross_entropy")
        e = H.lanczos(op, 1, tol=1e-4, seed=0)
        return float(e.eigenvalues[0]), op.n_products
    t, (lam, hvps) = best_of(run, repeats)
    row.update(lambda_exact=ref, lambda_losslab_s=t, lambda_hvps=hvps, lambda_rel_err=abs(lam - ref) / abs(ref))
    if peers["ph"]:
        try:
            tp, lp = pyhessian_lambda_max(model, Xs, ys, repeats)
            row.update(lambda_pyhessian_s=tp, lambda_pyhessian_rel_err=abs(lp - ref) / abs(ref))
        except Exception as e:  # noqa: BLE001 - any peer error is reported in the table
            row["pyhessian_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}"
    return row


LOSSLAB_TOLS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-6)
PYHESSIAN_TOLS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def lambda_frontier(model, X, y, repeats, n=256):
    """Time, HVPs and error of lambda_max over a range of tolerances for losslab (with and without
    Lanczos's fresh-vector check) and PyHessian's power iteration (maxIter 1000), so that the two
    are compared at equal accuracy rather than at their own default tolerances."""
    import importlib

    import losslab.hessian as H

    Xs, ys = X[:n], y[:n]
    ref = float(torch.linalg.eigvalsh(H.exact_hessian(model, (Xs, ys), "cross_entropy"))[-1])
    out = []
    for check in (True, False):
        for tol in LOSSLAB_TOLS:
            def run():
                op = H.hessian_operator(model, (Xs, ys), "cross_entropy")
                e = H.lanczos(op, 1, tol=tol, seed=0, check=check, warn=False)
                return float(e.eigenvalues[0]), op.n_products
            t, (lam, hvps) = best_of(run, repeats)
            out.append({"method": "losslab" if check else "losslab check=False", "tol": tol, "s": t, "hvps": hvps,
                        "rel_err": abs(lam - ref) / abs(ref)})
    from pyhessian import hessian as ph_hessian
    phm = importlib.import_module("pyhessian.hessian")
    count = [0]
    orig = getattr(phm, "hessian_vector_product", None)
    if orig is not None:  # count the peer's products by wrapping its module-level helper
        def counted(*args, **kw):
            count[0] += 1
            return orig(*args, **kw)
        phm.hessian_vector_product = counted
    try:
        for tol in PYHESSIAN_TOLS:
            def run():
                torch.manual_seed(0)
                count[0] = 0
                comp = ph_hessian(copy.deepcopy(model), nn.CrossEntropyLoss(), data=(Xs, ys), cuda=Xs.is_cuda)
                return float(comp.eigenvalues(top_n=1, tol=tol, maxIter=1000)[0][0]), count[0]
            t, (lam, hvps) = best_of(run, repeats)
            out.append({"method": "PyHessian", "tol": tol, "s": t, "hvps": hvps if orig is not None else None,
                        "rel_err": abs(lam - ref) / abs(ref)})
    finally:
        if orig is not None:
            phm.hessian_vector_product = orig
    return out


def equal_accuracy(frontier, method):
    """Per PyHessian setting: the fastest ``method`` run at least as accurate, and the time ratio."""
    mine = [r for r in frontier if r["method"] == method]
    rows = []
    for p in (r for r in frontier if r["method"] == "PyHessian"):
        ok = [r for r in mine if r["rel_err"] <= p["rel_err"]]
        best = min(ok, key=lambda r: r["s"]) if ok else None
        rows.append((p, best))
    return rows


def fmt(v, spec, err=None):
    if v is None and err:
        return f"fails: {err.split(':')[0]}"
    return "—" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default=",".join(ARCHS))
    ap.add_argument("--no-hessian", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-frontier", action="store_true", help="skip lambda_max at equal accuracy vs PyHessian")
    ap.add_argument("--device", default="cpu", help="cpu or cuda: models, data and every method on that device")
    ap.add_argument("--allocator", choices=("default", "keep"), default="default",
                    help="keep: losslab.keep_freed_memory() first (what the losslab command does), for every method")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.allocator == "keep":
        from losslab import keep_freed_memory

        print(f"# allocator: {keep_freed_memory()}")
    else:
        print("# allocator: glibc defaults (adaptive trim threshold)" if "MALLOC_TRIM_THRESHOLD_" not in os.environ
              else f"# allocator: MALLOC_TRIM_THRESHOLD_={os.environ['MALLOC_TRIM_THRESHOLD_']}")
    peers = {"ll": have("loss_landscapes", "loss-landscapes"), "ph": have("pyhessian", "PyHessian")}
    print(f"# {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} "
          f"thread(s), load average at start {os.getloadavg()[0]:.1f}")
    rows = []
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch.cuda.is_available() is False on this machine")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 for every method
        print(f"# device: {torch.cuda.get_device_name(device)}")
    for name in a.only.split(","):
        model, X, y = make(name)
        model, X, y = model.to(device), X.to(device), y.to(device)
        row = surface_rows(name, model, X, y, a.repeats, peers)
        if not a.no_hessian:
            lambda_rows(row, model, X, y, a.repeats, peers)
        if peers["ph"] and not a.no_hessian and not a.no_frontier and not row.get("pyhessian_error"):
            row["frontier"] = lambda_frontier(model, X, y, a.repeats)
        rows.append(row)
        print(json.dumps(row) if a.json else row, flush=True)
    print(f"# load average at end {os.getloadavg()[0]:.1f}")
    for r in rows:
        for k in ("loss_landscapes_error", "pyhessian_error", "vmap_error", "loop_error"):
            if r.get(k):
                print(f"# {r['arch']}: {k.replace('_error', '')} failed: {r[k]}")
    print("| arch | params | naive loop (s) | losslab (s) | naive / losslab | medians (s) | naive / losslab, medians "
          "| chosen | vmap (s) | loop (s) "
          "| loss-landscapes (s) | max rel. error vs naive | lambda_max (s) | HVPs | rel. error vs exact "
          "| PyHessian (s) | PyHessian rel. error |")
    print("|" + "---|" * 17)
    for r in rows:
        print(f"| {r['arch']} | {r['params']} | {r['naive_s']:.3f} | {r['losslab_s']:.3f} | "
              f"{r['naive_s'] / r['losslab_s']:.2f}x | {r['naive_median_s']:.3f} / {r['losslab_median_s']:.3f} | "
              f"{r['naive_median_s'] / r['losslab_median_s']:.2f}x | "
              f"{'mlp fast path' if r['mlp_fast_path'] else r['strategy']}"
              f" (chunk {r['chunk']}) | {fmt(r['vmap_s'], '.3f')} | {fmt(r['loop_s'], '.3f')} | {fmt(r['loss_landscapes_s'], '.3f', r.get('loss_landscapes_error'))} | "
              f"{r['rel_err']:.1e} | {fmt(r.get('lambda_losslab_s'), '.3f')} | {r.get('lambda_hvps', '—')} | "
              f"{fmt(r.get('lambda_rel_err'), '.1e')} | {fmt(r.get('lambda_pyhessian_s'), '.3f', r.get('pyhessian_error'))} | "
              f"{fmt(r.get('lambda_pyhessian_rel_err'), '.1e')} |")
    if any(r.get("frontier") for r in rows):
        print("\nlambda_max at equal accuracy (256 examples, error vs the exact float64 top eigenvalue): per PyHessian "
              "tolerance, the fastest losslab run that is at least as accurate")
        print("| arch | PyHessian tol | PyHessian (ms) | HVPs | rel. error | losslab (ms) | tol | HVPs | rel. error "
              "| PyHessian / losslab | check=False (ms) | tol | HVPs | rel. error | PyHessian / check=False |")
        print("|" + "---|" * 15)
        for r in rows:
            if not r.get("frontier"):
                continue
            a_rows = equal_accuracy(r["frontier"], "losslab")
            b_rows = dict((id(p), b) for p, b in equal_accuracy(r["frontier"], "losslab check=False"))
            for p, best in a_rows:
                cells = [r["arch"], f"{p['tol']:.0e}", f"{p['s'] * 1e3:.1f}", str(p["hvps"] or "—"), f"{p['rel_err']:.1e}"]
                for b in (best, b_rows[id(p)]):
                    cells += ([f"{b['s'] * 1e3:.1f}", f"{b['tol']:.0e}", str(b["hvps"]), f"{b['rel_err']:.1e}",
                               f"{p['s'] / b['s']:.2f}x"] if b else ["none as accurate", "", "", "", ""])
                print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
