"""Small-batch vs large-batch training, and small vs large learning rates: flat vs sharp minima
(Keskar, Mudigere, Nocedal, Smelyanskiy, Tang 2017, "On Large-Batch Training for Deep Learning:
Generalization Gap and Sharp Minima"; Cohen, Kaur, Li, Kolter, Talwalkar 2021, "Gradient descent
on neural networks typically occurs at the edge of stability").

Batch axis. Two copies of the same network (same initialization) are trained at the same
learning rate, one by SGD with small minibatches, one by full-batch GD, each until its
full-data training loss first falls below the same ``target_loss`` (checked every
``eval_every`` steps; the parameters at that step are used). This is repeated for
``n_seeds`` initializations (pair k uses seed ``seed + k`` for the initialization and the
minibatch order; the data split is fixed by ``seed``); pair 0 is the "main" pair. At every
solution: lambda_max (Lanczos, ``losslab.hessian.lambda_max``), test accuracy and test loss.
At the main pair also:

- tr H (Hutchinson, ``hessian_trace``, with its standard error);
- the spectral density by stochastic Lanczos quadrature (``losslab.hessian.slq`` on
  ``hessian_operator``), checked against Lanczos lambda_max (its top node) and Hutchinson
  (its trace);
- ``n_slices`` random filter-normalized 1-D slices L(theta + a d_i) with their mean and 10-90%
  band (``losslab.landscape.random_curves``; Li et al. 2018);
- epsilon-sharpness, Keskar et al. Metric 2.1 with A = I:
  100 (max_{|z_i| <= eps (|theta_i| + 1)} L(theta + z) - L(theta)) / (1 + L(theta))
  (``epsilon_sharpness``, L-BFGS-B), with its first-order part
  100 eps sum_i |g_i| (|theta_i| + 1) / (1 + L) (g the full-batch gradient), which is what
  dominates it at small eps when training stopped at a loss level rather than at a critical point;
- the 1D interpolation theta(a) = (1 - a) theta_small + a theta_large (Keskar et al. Fig. 3;
  Goodfellow et al. 2015) of train and test loss (``losslab.landscape.interpolate``).

Generalization is compared over the pairs: the paired difference d_k = acc_small,k - acc_large,k
(and the same for test loss), its mean and standard error; "small batch generalizes better" is
reported only when the mean exceeds 2 standard errors and one test example (1 / n_test),
otherwise a tie (or "worse") is reported. It is not a check: the seeds' claim is measured, not
assumed.

Learning-rate axis. Full-batch GD from the main initialization at each of ``lrs`` to the same
target loss, lambda_max tracked during training (``train(sharpness_every=...)``). For GD on a
quadratic, iterates diverge along any direction of curvature > 2/lr, so a run that converges
ends with lambda_max <= 2/lr (Cohen et al. 2021: during training lambda_max rises to ~2/lr and
hovers there); a larger lr can therefore only settle in a flatter region.

Why epsilon-sharpness can disagree with lambda_max and tr H: its box |z_i| <= eps (|theta_i| + 1)
is axis-aligned and scaled by each weight's magnitude, so it is not invariant to
reparametrization (Dinh et al. 2017) and depends on the weight scale; it measures the largest
rise in a box, which at small eps is first order in the gradient (nonzero at a point reached by
stopping at a loss level), and at larger eps mixes many directions; lambda_max is one direction.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from ..figures import Figure, Series
from .base import ExperimentResult, measured, register

TITLE = "Flat vs sharp minima: small vs large batches and learning rates"
CLAIM = ("at the same learning rate and train loss, small-batch SGD reaches minima with lower lambda_max and Hessian "
         "trace than full-batch GD, and full-batch GD with a larger learning rate reaches a flatter minimum "
         "(it must end with lambda_max <= 2/lr, GD's stability bound); whether the flatter minima generalize better "
         "(paired over seeds) and epsilon-sharpness are measured and reported, not assumed")


def _at_target(tr, target: float):
    """(step, flat params) at the first evaluation with train loss <= target, or None."""
    hit = np.nonzero(tr.train_eval_loss <= target)[0]
    if not len(hit):
        return None
    step = int(tr.eval_steps[hit[0]])
    j = np.nonzero(tr.snapshot_steps == step)[0]
    if not len(j):
        raise RuntimeError(f"no snapshot at step {step}; eval_every and snapshot_every must match")
    return step, tr.snapshots[j[0]]


def paired_verdict(diff: np.ndarray, *, margin: float, higher_is_better: bool = True) -> tuple[float, float, int]:
    """(mean, standard error, verdict) of paired differences small - large; verdict +1 when
    small batch is better by more than t_{0.975, n-1} SE (a two-sided 5 % paired t-test: with 5
    pairs 2.78 SE, not 2) and ``margin``, -1 when worse by as much, else 0."""
    from scipy.stats import t as student_t

    diff = np.asarray(diff, dtype=np.float64)
    if diff.size < 2:
        raise ValueError(f"need at least 2 paired differences for a standard error, got {diff.size}")
    mean, se = float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(diff.size))
    signed = mean if higher_is_better else -mean
    thr = max(float(student_t.ppf(0.975, diff.size - 1)) * se, margin)
    return mean, se, (1 if signed > thr else (-1 if signed < -thr else 0))


def first_order_epsilon(model, data, loss, epsilon: float) -> tuple[float, float]:
    """(100 eps sum_i |g_i| (|theta_i| + 1) / (1 + L), ||g||): the first-order part of
    epsilon-sharpness (the rise of the linearized loss over the box) and the gradient norm."""
    params = [p for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in params]).double()
    L = loss(model(data.X), data.y)
    g = torch.cat([gi.reshape(-1) for gi in torch.autograd.grad(L, params)]).double()
    return (100.0 * epsilon * float((g.abs() * (theta.abs() + 1)).sum()) / (1.0 + float(L.detach())),
            float(g.norm()))


_VERDICT = {1: "small batch better", 0: "tie (paired t-test at 5 % / one test example)", -1: "small batch worse"}


@register("flat_vs_sharp", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, n: int | None = None, hidden: int = 32, lr: float = 0.5,
        small_batch: int = 16, target_loss: float = 0.02, max_steps: int | None = None, eval_every: int = 10,
        epsilon: float = 1e-3, resolution: int | None = None, n_seeds: int | None = None,
        first_steps: int | None = None, lrs: tuple[float, ...] | list[float] | None = None,
        sharpness_every: int | None = None, slq_probes: int | None = None, slq_steps: int = 60,
        n_slices: int | None = None, slice_span: float = 1.0) -> ExperimentResult:
    """Batch axis (n_seeds paired SGD/GD runs), learning-rate axis (GD at ``lrs``) and the curvature
    of the main pair's minima. Quick: 400 training digits, 5 seeds, lrs 0.5/1/2; full: 1257 digits,
    8 seeds, lrs 0.5/1/2/2.5. See the module docstring for every measurement."""
    from ..data import load
    from ..hessian import ConvergenceWarning, epsilon_sharpness, hessian_operator, hessian_trace, lambda_max, slq
    from ..landscape import interpolate, random_curves
    from ..losses import accuracy, get_loss
    from ..models import build
    from ..params import load_flat
    from ..train import train
    from .curves import single_thread

    n = n or (400 if quick else None)
    max_steps = max_steps or (1500 if quick else 5000)
    first_steps = first_steps or (700 if quick else 1500)
    resolution = resolution or (21 if quick else 41)
    n_seeds = n_seeds or (5 if quick else 8)
    lrs = tuple(float(x) for x in (lrs or ((0.5, 1.0, 2.0) if quick else (0.5, 1.0, 2.0, 2.5))))
    slq_probes = slq_probes or (4 if quick else 10)
    sharpness_every = sharpness_every or (20 if quick else 50)
    n_slices = n_slices or (10 if quick else 30)
    if n_seeds < 2:
        raise ValueError(f"n_seeds must be >= 2 for a paired comparison, got {n_seeds}")
    if len(lrs) < 2 or any(not (x > 0 and math.isfinite(x)) for x in lrs):
        raise ValueError(f"lrs must hold at least two positive learning rates, got {lrs}")
    settings = dict(quick=quick, seed=seed, n=n, hidden=hidden, lr=lr, small_batch=small_batch,
                    target_loss=target_loss, max_steps=max_steps, first_steps=first_steps, eval_every=eval_every,
                    epsilon=epsilon,
                    resolution=resolution, n_seeds=n_seeds, lrs=list(lrs), sharpness_every=sharpness_every,
                    slq_probes=slq_probes, slq_steps=slq_steps, n_slices=n_slices, slice_span=slice_span,
                    data="digits", loss="cross_entropy", model=f"mlp 64-{hidden}-10 tanh")
    sp = load("digits", seed=seed)
    train_d = sp.train if n is None else sp.train.subset(torch.arange(min(n, sp.train.n)))
    test_d = sp.test
    settings["n_train"], settings["n_test"] = train_d.n, test_d.n
    loss = get_loss("cross_entropy")
    sols, summary, arrays = {}, {}, {}

    def fit(init_seed, opt, bs, rate, track=False):
        # train() has no stop-at-target, so try a short budget first and rerun with max_steps only if the target
        # was not reached (same seed: the first steps are identical, so the result does not depend on the budget)
        net = build("mlp", in_dim=64, hidden=[hidden], out_dim=10, activation="tanh", seed=init_seed)
        budgets = [min(first_steps, max_steps)]
        while budgets[-1] < max_steps:  # doubling: a miss costs at most ~3x the steps it needed
            budgets.append(min(2 * budgets[-1], max_steps))
        for budget in budgets:
            with warnings.catch_warnings():
                # a tracked measurement whose Lanczos check did not finish is recorded per measurement
                # (lambda_max_certified) and counted in the lr_sharpness figure, not printed mid-experiment
                warnings.simplefilter("ignore", ConvergenceWarning)
                tr = train(net, (train_d.X, train_d.y), loss=loss, optimizer=opt, lr=rate, steps=budget, batch_size=bs,
                           seed=init_seed, eval_every=eval_every, snapshot_every=eval_every, max_snapshots=budget,
                           sharpness_every=sharpness_every if track else None)
            hit = _at_target(tr, target_loss)
            if hit is not None:
                break
        return net, tr, hit

    def evaluate(m):
        with torch.no_grad():
            out = m(test_d.X)
            return float(accuracy(out, test_d.y, loss).float().mean()), float(loss(out, test_d.y))

    per_seed = {k: np.zeros((n_seeds, 2)) for k in ("lambda_max", "test_acc", "test_loss", "steps")}
    lr_runs = {}
    with single_thread():  # tiny nets on a shared CPU: one intra-op thread is faster and reproducible
        # --- batch axis: n_seeds paired runs -------------------------------------------------------------------
        for k in range(n_seeds):
            for j, (name, opt, bs) in enumerate((("small_batch", "sgd", small_batch), ("large_batch", "gd", None))):
                track = k == 0 and name == "large_batch" and lr in lrs
                net, tr, hit = fit(seed + k, opt, bs, lr, track=track)
                if hit is None:
                    raise RuntimeError(f"{name} training (seed {seed + k}) did not reach train loss {target_loss} "
                                       f"within {max_steps} steps (final {tr.final_loss:.4g}); raise max_steps or "
                                       f"target_loss")
                step, vec = hit
                m = load_flat(net, torch.as_tensor(vec))
                lam = float(lambda_max(m, train_d, loss, tol=1e-4, seed=seed).eigenvalues[0])
                acc, tl = evaluate(m)
                for key, v in (("lambda_max", lam), ("test_acc", acc), ("test_loss", tl), ("steps", step)):
                    per_seed[key][k, j] = v
                if track:
                    lr_runs[lr] = (tr, hit, lam, acc, tl)
                if k:
                    continue
                trace = hessian_trace(m, train_d, loss, seed=seed, rtol=0.02)
                eps = epsilon_sharpness(m, train_d, loss, epsilon=epsilon, seed=seed)
                eps1, gnorm = first_order_epsilon(m, train_d, loss, epsilon)
                # SLQ's probes from their own seed: with the same seed its trace would be the mean of
                # Hutchinson's first probes (z^T H z), not an independent estimate
                dens = slq(hessian_operator(m, train_d, loss), n_probes=slq_probes, n_steps=slq_steps,
                           seed=seed + 10_007)
                curves = random_curves(m, train_d, loss=loss, n=n_slices, kind="filter", resolution=resolution,
                                       span=slice_span, seed=seed)
                with torch.no_grad():
                    train_loss = float(loss(m(train_d.X), train_d.y))
                sols[name] = dict(model=m, density=dens, curves=curves, trace=trace)
                a_half = int(np.argmin(np.abs(curves.alphas - 0.5 * slice_span)))
                summary.update({f"{name}_steps": step, f"{name}_epochs": step * (bs or train_d.n) / train_d.n,
                                f"{name}_train_loss": train_loss, f"{name}_lambda_max": lam,
                                f"{name}_trace": float(trace.estimate), f"{name}_trace_stderr": float(trace.stderr),
                                f"{name}_epsilon_sharpness": eps.value,
                                f"{name}_epsilon_first_order": eps1, f"{name}_grad_norm": gnorm,
                                f"{name}_param_norm": float(np.linalg.norm(vec)),
                                f"{name}_test_acc": acc, f"{name}_test_loss": tl,
                                f"{name}_slq_top_node": float(dens.nodes.max()),
                                f"{name}_slq_trace": dens.trace[0], f"{name}_slq_trace_stderr": dens.trace[1],
                                f"{name}_slq_outliers": dens.count(0.1 * lam)[0],
                                f"{name}_slice_rise_half_span": float(curves.mean[a_half] - curves.mean[len(curves.alphas) // 2]),
                                f"{name}_slice_rise_half_span_std": float(curves.std[a_half])})
        alphas = np.linspace(-0.5, 1.5, resolution)
        it = interpolate(sols["small_batch"]["model"], sols["large_batch"]["model"], train_d, loss=loss, alphas=alphas)
        ie = interpolate(sols["small_batch"]["model"], sols["large_batch"]["model"], test_d, loss=loss, alphas=alphas)
        # --- learning-rate axis: full-batch GD from the main initialization ---------------------------------------
        for rate in lrs:
            if rate in lr_runs:
                continue
            net, tr, hit = fit(seed, "gd", None, rate, track=True)
            if hit is None:
                lr_runs[rate] = (tr, None, float("nan"), float("nan"), float("nan"))
                continue
            m = load_flat(net, torch.as_tensor(hit[1]))
            lam = float(lambda_max(m, train_d, loss, tol=1e-4, seed=seed).eigenvalues[0])
            lr_runs[rate] = (tr, hit, lam, *evaluate(m))
    s, l = "small_batch", "large_batch"
    # --- batch axis over seeds ---
    lam_ratio = per_seed["lambda_max"][:, 0] / per_seed["lambda_max"][:, 1]
    acc_d, acc_se, acc_v = paired_verdict(per_seed["test_acc"][:, 0] - per_seed["test_acc"][:, 1],
                                          margin=1.0 / test_d.n)
    tl_d, tl_se, tl_v = paired_verdict(per_seed["test_loss"][:, 0] - per_seed["test_loss"][:, 1], margin=0.0,
                                       higher_is_better=False)
    summary.update({"interp_train_barrier": it.barrier.height, "n_seeds": n_seeds,
                    "seeds_lambda_max_ratio_mean": float(lam_ratio.mean()),
                    "seeds_lambda_max_ratio_max": float(lam_ratio.max()),
                    "seeds_small_batch_test_acc_mean": float(per_seed["test_acc"][:, 0].mean()),
                    "seeds_large_batch_test_acc_mean": float(per_seed["test_acc"][:, 1].mean()),
                    "test_acc_diff_mean": acc_d, "test_acc_diff_se": acc_se, "test_acc_verdict": acc_v,
                    "test_loss_diff_mean": tl_d, "test_loss_diff_se": tl_se, "test_loss_verdict": tl_v})
    for key, v in per_seed.items():
        arrays[f"seeds/{key}"] = v  # (n_seeds, 2): columns small batch, large batch
    # --- learning-rate axis ---
    lr_lam = np.array([lr_runs[r][2] for r in lrs])
    lr_acc = np.array([lr_runs[r][3] for r in lrs])
    reached = np.isfinite(lr_lam)
    for r, lam_r, acc_r in zip(lrs, lr_lam, lr_acc):
        summary[f"lr_{r:g}_lambda_max"] = float(lam_r)
        summary[f"lr_{r:g}_lambda_max_times_lr_over_2"] = float(lam_r * r / 2)
        summary[f"lr_{r:g}_test_acc"] = float(acc_r)
        summary[f"lr_{r:g}_steps"] = float(lr_runs[r][1][0]) if lr_runs[r][1] is not None else float("nan")
    arrays.update({"lr/lrs": np.array(lrs), "lr/lambda_max": lr_lam, "lr/test_acc": lr_acc})
    for r in lrs:
        st, v = lr_runs[r][0].metrics["lambda_max"]
        arrays[f"lr/{r:g}/track_steps"], arrays[f"lr/{r:g}/track_lambda_max"] = st, v
        cert = np.asarray(lr_runs[r][0].metrics["lambda_max_certified"][1], dtype=float)
        arrays[f"lr/{r:g}/track_certified"] = cert
        summary[f"lr_{r:g}_measurements"], summary[f"lr_{r:g}_certified"] = float(cert.size), float(cert.sum())
    lo_lr, hi_lr = min(lrs), max(lrs)
    lam_lo, lam_hi = lr_runs[lo_lr][2], lr_runs[hi_lr][2]
    summary["lr_flatness_ratio"] = float(lam_hi / lam_lo)
    arrays.update({"alphas": it.alphas, "interp_train_loss": it.loss, "interp_test_loss": ie.loss})
    if it.accuracy is not None:
        arrays["interp_train_acc"], arrays["interp_test_acc"] = it.accuracy, ie.accuracy
    for name in (s, l):
        d, c = sols[name]["density"], sols[name]["curves"]
        arrays[f"{name}/slq_nodes"], arrays[f"{name}/slq_weights"] = d.nodes.numpy(), d.weights.numpy()
        arrays[f"{name}/slice_alphas"], arrays[f"{name}/slice_curves"] = c.alphas, c.curves
    # --- checks: each against a stated margin or an independent reference ---
    tr_gap = summary[f"{l}_trace"] - summary[f"{s}_trace"]
    tr_se = math.hypot(summary[f"{s}_trace_stderr"], summary[f"{l}_trace_stderr"])
    slq_top_err = max(abs(summary[f"{x}_slq_top_node"] - summary[f"{x}_lambda_max"]) / summary[f"{x}_lambda_max"]
                      for x in (s, l))
    slq_tr_z = max(abs(summary[f"{x}_slq_trace"] - summary[f"{x}_trace"])
                   / math.hypot(summary[f"{x}_slq_trace_stderr"], summary[f"{x}_trace_stderr"]) for x in (s, l))
    eos_ratio = float(np.nanmax(lr_lam * np.array(lrs) / 2)) if reached.any() else float("nan")
    checks = {
        f"small batch: lower lambda_max at every one of {n_seeds} seeds (ratio small/large mean "
        f"{lam_ratio.mean():.2f}, max {lam_ratio.max():.2f} <= 0.9)": bool(lam_ratio.max() <= 0.9),
        f"small batch: lower Hessian trace (main pair {summary[f'{s}_trace']:.3g} vs {summary[f'{l}_trace']:.3g}, "
        f"gap {tr_gap:.3g} > 3 combined Hutchinson standard errors {3 * tr_se:.3g})": tr_gap > 3 * tr_se,
        f"SLQ density agrees with Lanczos: top node = lambda_max within 2% (max rel. error {slq_top_err:.1e})":
            slq_top_err <= 0.02,
        f"SLQ trace agrees with Hutchinson within 3 combined standard errors (max {slq_tr_z:.2f} SE)": slq_tr_z <= 3,
        f"every GD learning rate {list(lrs)} reached train loss {target_loss}": bool(reached.all()),
        f"stability bound: every converged GD run ends with lambda_max <= 2/lr (max lambda_max * lr / 2 = "
        f"{eos_ratio:.2f} <= 1.05; GD cannot settle where lambda_max > 2/lr)": bool(reached.any() and eos_ratio <= 1.05),
        f"the largest learning rate ({hi_lr:g}) reaches a flatter minimum than the smallest ({lo_lr:g}): lambda_max "
        f"{lam_hi:.3g} <= 0.8 x {lam_lo:.3g}": bool(lam_hi <= 0.8 * lam_lo),
    }
    names = ("lambda_max", "trace", "epsilon_sharpness", "epsilon_first_order", "test_acc")
    interp_tab = {k: summary[k] for k in summary if k.endswith(("_lambda_max", "_test_acc")) and k.startswith(("small", "large"))}
    lo_g = min(float(sols[x]["density"].grid[0]) for x in (s, l))
    hi_g = max(float(sols[x]["density"].grid[-1]) for x in (s, l))
    grid = torch.linspace(lo_g, hi_g, 600, dtype=torch.float64)
    sigma = 0.01 * (hi_g - lo_g)
    dens_y = {x: np.maximum(sols[x]["density"].smoothed(grid, sigma).numpy(), 1e-12) for x in (s, l)}
    arrays["density_grid"] = grid.numpy()
    for x in (s, l):
        arrays[f"{x}/density"] = dens_y[x]
    cs, cl = sols[s]["curves"], sols[l]["curves"]
    palette = ("small batch", "large batch")
    lr_series = tuple(Series(f"lr {r:g} (2/lr = {2 / r:.3g})", arrays[f"lr/{r:g}/track_steps"].astype(float),
                             arrays[f"lr/{r:g}/track_lambda_max"]) for r in lrs)
    gen_line = (f"Generalization over {n_seeds} paired seeds: test accuracy small - large = {acc_d:+.4f} +- {acc_se:.4f} "
                f"(SE; one test example = {1 / test_d.n:.4f}): {_VERDICT[acc_v]}; test loss small - large = "
                f"{tl_d:+.4f} +- {tl_se:.4f}: {_VERDICT[tl_v]}.")
    figs = (
        Figure(key="interpolation", title="Loss between the small-batch (a=0) and large-batch (a=1) solutions",
               kind="lines", x_label="a", y_label="cross-entropy",
               series=(Series("train", it.alphas, it.loss), Series("test", ie.alphas, ie.loss)), log_y=True,
               caption=(f"theta(a) = (1-a) theta_small + a theta_large; both trained from the same init with lr {lr} "
                        f"to train loss <= {target_loss} (SGD batch {small_batch} vs full-batch GD, n = {train_d.n}). "
                        f"A flat minimum shows as a wide basin around a=0, a sharp one as a narrow basin around a=1; "
                        f"barrier on the train loss {it.barrier.height:.3g}."),
               table=interp_tab),
        Figure(key="sharpness", title="Sharpness measures at the two solutions", kind="bars", x_label="measure",
               y_label="value", facets=True,  # one panel per measure: their units differ
               series=tuple(Series(lab, np.asarray(["lambda_max (Lanczos)", "trace of H (Hutchinson)", "epsilon-sharpness",
                                                  "its first-order part", "test accuracy"]), np.asarray([summary[f"{x}_{k}"] for k in names]))
                            for lab, x in zip(palette, (s, l))),
               caption="Measured lambda_max (Lanczos), tr H (Hutchinson), epsilon-sharpness (eps = "
                       f"{epsilon:g}, Keskar Metric 2.1), its first-order part 100 eps sum |g_i|(|theta_i|+1)/(1+L) and "
                       "test accuracy, one panel (own y axis) each. epsilon-sharpness is reported, not "
                       "checked: its box scales with |theta_i| + 1 (not reparametrization-invariant) and at this eps "
                       "it is dominated by the gradient left at a point stopped at a loss level.",
               table={f"{a}_{k}": summary[f"{a}_{k}"] for a in (s, l) for k in names + ("grad_norm", "param_norm")}),
        Figure(key="density", title="Hessian spectral density (SLQ) at the two solutions", kind="lines",
               x_label="eigenvalue", y_label="density (integrates to 1)", log_y=True,
               series=tuple(Series(lab, grid.numpy(), dens_y[x]) for lab, x in zip(palette, (s, l))),
               caption=(f"Stochastic Lanczos quadrature ({slq_probes} probes x {slq_steps} steps), Gaussian smoothing "
                        f"sigma = {sigma:.3g} on a shared grid, floored at 1e-12 for the log axis. A bulk near 0 and a few "
                        f"outliers; eigenvalues above 0.1 lambda_max: {summary[f'{s}_slq_outliers']:.1f} (small batch) "
                        f"vs {summary[f'{l}_slq_outliers']:.1f} (large batch); top node {summary[f'{s}_slq_top_node']:.3g} "
                        f"vs {summary[f'{l}_slq_top_node']:.3g}."),
               table={f"{x}_{k}": summary[f"{x}_{k}"] for x in (s, l) for k in ("slq_top_node", "slq_trace", "slq_outliers")}),
        Figure(key="random_slices", title="Random filter-normalized slices through the two solutions", kind="lines",
               x_label="a (filter-normalized units)", y_label="train cross-entropy",
               series=(Series("small batch: mean", cs.alphas, cs.mean, band_lo=cs.lo, band_hi=cs.hi),
                       Series("large batch: mean", cl.alphas, cl.mean, band_lo=cl.lo, band_hi=cl.hi)),
               caption=(f"{n_slices} directions d_i (Li et al. 2018 filter normalization: each neuron's row of d scaled "
                        f"to the norm of its row of theta, biases 0) per solution; mean and 10-90% band of "
                        f"L(theta + a d_i). Mean rise at a = {0.5 * slice_span:g}: "
                        f"{summary[f'{s}_slice_rise_half_span']:.3g} (small batch) vs "
                        f"{summary[f'{l}_slice_rise_half_span']:.3g} (large batch), spread (std over directions) "
                        f"{summary[f'{s}_slice_rise_half_span_std']:.2g} / {summary[f'{l}_slice_rise_half_span_std']:.2g}: "
                        f"random directions mostly see the flat bulk of the spectrum, not the top eigenvector."),
               table={f"{x}_{k}": summary[f"{x}_{k}"] for x in (s, l)
                      for k in ("slice_rise_half_span", "slice_rise_half_span_std")}),
        Figure(key="lr_sharpness", title="Full-batch GD: lambda_max during training at several learning rates",
               kind="lines", x_label="step", y_label="lambda_max", log_y=True, series=lr_series,
               hlines=tuple((f"2/lr, lr {r:g}", 2 / r) for r in lrs), hline_series=tuple(ser.name for ser in lr_series),
               caption=(f"lambda_max (Lanczos) every {sharpness_every} steps; dashed lines 2/lr, the largest curvature "
                        f"GD at lr is stable on (Cohen et al. 2021). At train loss {target_loss}: " +
                        ", ".join(f"lr {r:g}: lambda_max {v:.3g} (2/lr {2 / r:.3g}), test acc {a:.3f}"
                                  for r, v, a in zip(lrs, lr_lam, lr_acc)) + ". Certified measurements (Lanczos's "
                        "check from a second start vector finished; the others met the residual tolerance only): " +
                        ", ".join(f"lr {r:g}: {summary[f'lr_{r:g}_certified']:.0f} of "
                                  f"{summary[f'lr_{r:g}_measurements']:.0f}" for r in lrs) + "."),
               table={f"lr_{r:g}_{k}": summary[f"lr_{r:g}_{k}"] for r in lrs
                      for k in ("lambda_max", "test_acc", "measurements", "certified")}),
        Figure(key="seeds", title="Sharpness vs test accuracy over paired seeds", kind="scatter",
               x_label="lambda_max", y_label="test accuracy",
               series=(Series("small batch", per_seed["lambda_max"][:, 0], per_seed["test_acc"][:, 0], mode="markers"),
                       Series("large batch", per_seed["lambda_max"][:, 1], per_seed["test_acc"][:, 1], mode="markers")),
               caption=gen_line,
               table={k: summary[k] for k in ("test_acc_diff_mean", "test_acc_diff_se", "test_acc_verdict",
                                              "test_loss_diff_mean", "test_loss_diff_se", "test_loss_verdict")}),
    )
    text = (f"At train loss <= {target_loss} (lr {lr}): small batch lambda_max {summary[f'{s}_lambda_max']:.3g}, trace "
            f"{summary[f'{s}_trace']:.3g}, eps-sharpness {summary[f'{s}_epsilon_sharpness']:.3g}, test acc "
            f"{summary[f'{s}_test_acc']:.3f}; large batch {summary[f'{l}_lambda_max']:.3g}, "
            f"{summary[f'{l}_trace']:.3g}, {summary[f'{l}_epsilon_sharpness']:.3g}, {summary[f'{l}_test_acc']:.3f}. "
            f"Over {n_seeds} seeds the small-batch lambda_max is {lam_ratio.mean():.2f}x the large-batch one. "
            f"{gen_line} epsilon-sharpness orders the pair "
            f"{'the same way' if summary[f'{s}_epsilon_sharpness'] < summary[f'{l}_epsilon_sharpness'] else 'the other way'}: "
            f"its first-order part 100 eps sum|g_i|(|theta_i|+1)/(1+L) is {summary[f'{s}_epsilon_first_order']:.3g} vs "
            f"{summary[f'{l}_epsilon_first_order']:.3g} (full-batch gradient norm {summary[f'{s}_grad_norm']:.3g} vs "
            f"{summary[f'{l}_grad_norm']:.3g}), i.e. at eps = {epsilon:g} it mostly measures the gradient left where "
            f"training stopped, in a box scaled by |theta_i| + 1. Random filter-normalized slices rise by "
            f"{summary[f'{s}_slice_rise_half_span']:.3g} vs {summary[f'{l}_slice_rise_half_span']:.3g} at a = "
            f"{0.5 * slice_span:g}. Learning rates (full-batch GD): " +
            ", ".join(f"lr {r:g}: lambda_max {v:.3g} {'<=' if v <= 2 / r else '>'} 2/lr {2 / r:.3g}, test acc {a:.3f}"
                      for r, v, a in zip(lrs, lr_lam, lr_acc)) + ".")
    return measured("flat_vs_sharp", summary=summary, checks=checks,
                    figures=figs, arrays=arrays, settings=settings, text=text)
