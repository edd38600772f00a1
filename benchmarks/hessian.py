"""losslab.hessian vs PyHessian 0.1 on the digits MLP 64-32(tanh)-10, against the exact spectrum.

Setup: ``losslab.models.build("mlp", in_dim=64, hidden=[32], out_dim=10, activation="tanh",
seed=0)`` trained 200 full-batch Adam steps (lr 1e-2) with cross_entropy on
``losslab.data.load("digits", seed=0).train`` (float32, like PyHessian). Reference: the exact
Hessian in float64 (``losslab.hessian.exact_spectrum``, torch.func.jacrev of the gradient).

Both tools run in float32 on the same model and data, one thread (``--threads``), seeds
0..S-1; medians over seeds are printed. Both tools are timed the same way: the timed region
includes each tool's construction (PyHessian's ``hessian(...)`` runs the forward pass and the
backward pass with ``create_graph=True``; losslab's operator builds and caches the same gradient
graph on its first product), and for top-1 / top-5 each seed's time is the median of
``--repeats`` calls after one warm-up call. HVPs are counted by wrapping each tool's product
function. PyHessian needs one shim: ``density()`` calls ``torch.eig`` (removed from torch), which
is answered with ``torch.linalg.eigh`` of the symmetric T. Without the ``bench`` extra
(PyHessian) its rows are skipped with a one-line note. Usage::

    python benchmarks/hessian.py [--seeds 5] [--threads 1] [--repeats 7] [--tol 1e-4] [--device cpu|cuda]
    python benchmarks/hessian.py --trace-only --seeds 20   # the trace table: products, seconds, error,
                                                            # stated s.e. and its coverage over seeds
"""
from __future__ import annotations

import argparse
import copy
import warnings
import statistics
import time

import numpy as np
import torch


def train_digits_mlp(device: str):
    from losslab.data import load
    from losslab.losses import get_loss
    from losslab.models import build

    data = load("digits", seed=0).train.to(device)
    model = build("mlp", in_dim=64, hidden=[32], out_dim=10, activation="tanh", seed=0).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    L = get_loss("cross_entropy")
    for _ in range(200):
        opt.zero_grad()
        L(model(data.X), data.y).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    return model, data


def _pyhessian_module():
    """PyHessian's module with its HVP function wrapped in a counter (and the torch.eig shim)."""
    import importlib
    import sys

    importlib.import_module("pyhessian")
    ph = sys.modules["pyhessian.hessian"]  # the module (the package re-exports the class by that name)
    if not getattr(ph, "_losslab_counted", False):
        orig = ph.hessian_vector_product

        def counted(*a, **k):
            ph._losslab_counter["n"] += 1
            return orig(*a, **k)

        ph.hessian_vector_product = counted
        ph._losslab_counted = True
        ph._losslab_counter = {"n": 0}
    if not getattr(torch, "_losslab_eig_shim", False):  # the one shim: torch.eig was removed (it raises)
        def eig(T, eigenvectors=True):
            w, V = torch.linalg.eigh(T)
            return torch.stack([w, torch.zeros_like(w)], 1), V

        torch.eig = eig
        torch._losslab_eig_shim = True
    return ph


def have_pyhessian() -> bool:
    """PyHessian importable? If not, say once how to get it (its columns are skipped)."""
    try:
        import pyhessian  # noqa: F401
    except ImportError:
        print('note: PyHessian is not installed, its rows are skipped: pip install -e ".[bench]"')
        return False
    return True


def trace_rows(model, data, dev, seed, exact_trace, add, *, pyhessian: bool) -> None:
    """Each trace method to a stated 1 % (or its fixed budget): error, products, seconds, and
    whether the truth lies within 2 stated standard errors (the ``[2 s.e. covers]`` rows)."""
    import losslab.hessian as H

    methods = [
        ("trace  losslab deflated Hutchinson (rtol 1e-2, default)",
         lambda op: H.deflated_hutchinson(op, rtol=1e-2, seed=seed, max_samples=2000, warn=False)),
        ("trace  losslab Hutchinson (rtol 1e-2)",
         lambda op: H.hutchinson(op, rtol=1e-2, seed=seed, max_samples=2000, warn=False)),
        ("trace  losslab Hutch++ (66 products)", lambda op: H.hutchpp(op, n_products=66, seed=seed)),
        ("trace  losslab SLQ 10 x 80 (deflated by probe 1)",
         lambda op: H.slq(op, n_probes=10, n_steps=80, seed=seed, grid_points=2)),
    ]
    if pyhessian:
        sec, n_py, tr = _timed_pyhessian(model, data, dev, seed, lambda c: float(np.mean(c.trace())))
        add("trace  PyHessian (Hutchinson, tol 1e-3)", abs(tr - exact_trace) / exact_trace, n_py, sec)
    for name, fn in methods:
        _sync(dev); t = time.perf_counter()
        op = H.hessian_operator(model, data, "cross_entropy")
        est = fn(op)
        _sync(dev); sec = time.perf_counter() - t
        value, se = (est.estimate, est.stderr) if hasattr(est, "estimate") else est.trace
        add(name, abs(value - exact_trace) / exact_trace, op.n_products, sec)
        add(name + " [stderr/|tr|]", se / abs(value), 0, 0)
        add(name + " [2 s.e. covers]", float(abs(value - exact_trace) <= 2 * se), 0, 0)


def _timed_pyhessian(model, data, device, seed, fn):
    """Seconds, HVPs and result of PyHessian *including* its construction (forward, backward with
    create_graph=True: its gradient graph) -- as losslab's operator construction and first
    gradient graph are inside losslab's timed region. The deep copy of the model (PyHessian
    mutates the model it is given) is made outside the timed region."""
    ph = _pyhessian_module()
    m = copy.deepcopy(model)
    torch.manual_seed(seed)  # PyHessian draws its start vectors from the global generator
    ph._losslab_counter["n"] = 0
    _sync(device); t = time.perf_counter()
    comp = ph.hessian(m, torch.nn.CrossEntropyLoss(), data=(data.X, data.y), cuda=(device == "cuda"))
    out = fn(comp)
    _sync(device); sec = time.perf_counter() - t
    return sec, ph._losslab_counter["n"], out


def _timed_losslab(model, data, device, fn):
    """Seconds, HVPs and result of losslab *including* operator construction (and so the first,
    cached gradient graph, built on the first product)."""
    import losslab.hessian as H

    _sync(device); t = time.perf_counter()
    op = H.hessian_operator(model, data, "cross_entropy")
    out = fn(op)
    _sync(device); sec = time.perf_counter() - t
    return sec, op.n_products, out


def _median_timing(run, repeats):
    """One warm-up call, then the median seconds over ``repeats`` calls (HVP count and result
    from the last call; they are the same on every call: fixed seeds)."""
    run()
    secs, last = [], None
    for _ in range(repeats):
        sec, n, out = run()
        secs.append(sec)
        last = (n, out)
    return statistics.median(secs), last[0], last[1]


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tol", type=float, default=1e-4, help="losslab Lanczos tol for top-1 / top-5")
    ap.add_argument("--repeats", type=int, default=7,
                    help="timed calls per seed for top-1 / top-5 (after one warm-up); the median is kept")
    ap.add_argument("--trace-only", action="store_true", help="only the trace table")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph")  # PyHessian's
    dev = args.device
    from scipy.stats import wasserstein_distance

    import losslab.hessian as H

    import os

    import losslab

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"torch {torch.__version__}, device {dev}, threads {torch.get_num_threads()}, float32 for both tools, "
          f"losslab from {os.path.dirname(losslab.__file__)}, load average at start {load}")
    model, data = train_digits_mlp(dev)
    t0 = time.perf_counter()
    spec = H.exact_spectrum(model.cpu(), data.to("cpu"), "cross_entropy")  # float64 reference
    model.to(dev)
    exact = spec.eigenvalues.numpy()
    top5 = exact[::-1][:5]
    print(f"exact Hessian ({spec.size} params, float64): {time.perf_counter() - t0:.1f} s; "
          f"top-5 {np.array2string(top5, precision=6)}, trace {exact.sum():.6f}, "
          f"negative eigenvalues {int((exact < -1e-8 * abs(exact).max()).sum())}")

    rows: dict[str, list[tuple[float, float, float]]] = {}

    def add(name, err, hvp, sec):
        rows.setdefault(name, []).append((err, hvp, sec))

    py = have_pyhessian()
    for seed in range(args.seeds):
        trace_rows(model, data, dev, seed, float(exact.sum()), add, pyhessian=py)
        if args.trace_only:
            continue
        # ---- top-1 / top-5: both tools timed the same way (construction included, warm-up,
        # median over --repeats calls; PyHessian's global RNG re-seeded before each call) -------
        for k, name in [(1, "top-1"), (5, "top-5")] if py else []:
            sec, n, (vals, _) = _median_timing(
                lambda: _timed_pyhessian(model, data, dev, seed, lambda c: c.eigenvalues(top_n=k)), args.repeats)
            err = float(np.max(np.abs(np.array(vals) - top5[:k]) / top5[:k]))
            add(f"{name}  PyHessian (power, tol 1e-3)", err, n, sec)
        for k, name in [(1, "top-1"), (5, "top-5")]:
            sec, n, e = _median_timing(
                lambda: _timed_losslab(model, data, dev, lambda op: H.lanczos(op, k, tol=args.tol, seed=seed,
                                                                               vectors=False, warn=False)),
                args.repeats)
            err = float(np.max(np.abs(e.eigenvalues.double().cpu().numpy() - top5[:k]) / top5[:k]))
            add(f"{name}  losslab (Lanczos, tol {args.tol:g})", err, n, sec)

        # ---- density (1 probe x 100 steps each; error = Wasserstein-1 to the exact spectrum) --
        if py:
            sec, n_py, (nodes, weights) = _timed_pyhessian(model, data, dev, seed,
                                                           lambda c: c.density(iter=100, n_v=1))
            w1 = wasserstein_distance(exact, np.array(nodes[0]), None, np.array(weights[0]))
            add("density PyHessian (SLQ 1x100) [W1]", w1, n_py, sec)
        _sync(dev); t = time.perf_counter()
        op = H.hessian_operator(model, data, "cross_entropy")
        d = H.slq(op, n_probes=1, n_steps=100, seed=seed)
        _sync(dev); sec = time.perf_counter() - t
        w1 = wasserstein_distance(exact, d.nodes[0].numpy(), None, d.weights[0].numpy())
        add("density losslab (SLQ 1x100) [W1]", w1, d.n_products, sec)

    print(f"\nmedians over {args.seeds} seeds (error: relative, or W1 distance for density); times include each "
          f"tool's construction (gradient graph); top-1/top-5 times: median of {args.repeats} calls after a warm-up, "
          f"per seed; other rows: one call per seed")
    if hasattr(os, "getloadavg"):
        print(f"load average at end {os.getloadavg()}")
    print(f"{'method':66s} {'error':>10s} {'HVPs':>6s} {'seconds':>8s}")
    for name, r in rows.items():
        med = [statistics.median(x[i] for x in r) for i in range(3)]
        if name.endswith("[2 s.e. covers]"):  # a fraction over seeds, not a median
            print(f"{name:66s} {sum(x[0] for x in r) / len(r):10.2f}   ({int(sum(x[0] for x in r))} of {len(r)} seeds)")
            continue
        errs = ", ".join(f"{x[0]:.1e}" for x in r[:8]) + (" ..." if len(r) > 8 else "")
        hv = f"   HVPs max {max(x[1] for x in r):.0f}" if med[1] else ""
        print(f"{name:66s} {med[0]:10.2e} {med[1]:6.0f} {med[2]:8.4f}   errors per seed: {errs}{hv}")


if __name__ == "__main__":
    main()
