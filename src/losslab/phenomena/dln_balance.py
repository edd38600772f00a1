"""Experiment ``dln_balance``: balanced vs unbalanced deep linear networks with the same X(0) (seed 000,
"when the network is well-balanced, learning is more stable and efficient").

A depth-N linear network X = W_N ... W_1 (square widths d) fits a target Phi under the energy
E(X) = 0.5 ||X - Phi||_F^2 (``losslab.dln.core.Frobenius``). Two starts share the end-to-end matrix X(0):

- balanced: ``balanced_factorization(X0, widths, rotate=True)``, all G_p = W_{p+1}^T W_{p+1} - W_p W_p^T = 0;
- unbalanced: the same weights with W_1 -> c W_1 and W_N -> W_N / c (X unchanged, G_p != 0).

Gradient flow conserves every G_p (Arora, Cohen, Hazan 2018, Thm. 1), and gradient descent
changes them by O(lr^2) per step, so each start stays on its own fibre: the unbalanced network
reaches a minimum with one large and one small layer. What the invariants predict:

- stability: the top Hessian eigenvalue lambda_max of L(W) at the minimum reached grows with ||G||.
  (For N = 2 and scalars, w_2 w_1 = phi and w_2^2 - w_1^2 = G give lambda_max = w_1^2 + w_2^2 =
  sqrt(G^2 + 4 phi^2).) Gradient descent stays at a minimum only if lr < 2 / lambda_max, so the range of
  learning rates that converge shrinks for the unbalanced start;
- speed: the end-to-end velocity is preconditioned by the weights' sizes, which grow with ||G||, so
  at the same lr the unbalanced start is *faster* per step. Measured (default c = 4, depth 3): it needs
  fewer steps at most (seed, lr) pairs and at each start's best lr too, so the seed's "more
  efficient" is not supported in steps; "more stable" (a wider range of learning rates) is.
  Above 2/lambda_max of its flow minimum, the unbalanced start can still converge: large steps move it
  along the fibre (G is only conserved to O(lr^2)) to a flatter minimum with lambda_max <= 2/lr.

Measured over seeds with batched gradient descent (all learning rates and seeds at once, using
``losslab.dln.core.weight_gradients``); lambda_max from the exact Hessian of L (torch.func.hessian,
float64) at the end of the smallest-lr run.
"""
from __future__ import annotations

import math

import numpy as np

from ..figures import Figure, Series
from .base import ExperimentResult, measured, register

TITLE = "Balanced vs unbalanced deep linear networks from the same X(0): speed and stable learning rates"
CLAIM = ("a balanced start converges over a wider range of learning rates than an unbalanced start with the same "
         "end-to-end matrix, because the invariants G_p, conserved by the flow, make the unbalanced start's minimum "
         "sharper; measured, balance buys stability, not fewer steps")


def unbalance(weights: list[np.ndarray], c: float) -> list[np.ndarray]:
    """W_1 -> c W_1, W_N -> W_N / c: the same product, ||G_1|| and ||G_{N-1}|| grow like c^2."""
    ws = [w.copy() for w in weights]
    ws[0] = ws[0] * c
    ws[-1] = ws[-1] / c
    return ws


def batched_gd(weights: list[np.ndarray], energy, lrs: np.ndarray, steps: int, tol: float, blowup: float = 1e6):
    """Gradient descent on L(W) = E(W_N...W_1) for every learning rate at once.

    ``weights``: W_p of shape (S, d_p, d_{p-1}) (S seeds); ``lrs`` (L,). Returns
    (first step with loss <= tol (S, L), -1 where never; final loss (S, L), NaN where diverged;
    final weights, each (S, L, d_p, d_{p-1}); max over steps of the drift of ||G_p|| (S, L))."""
    from ..dln.core import end_to_end, invariants, weight_gradients

    S, L = weights[0].shape[0], len(lrs)
    W = [np.broadcast_to(w[:, None], (S, L) + w.shape[1:]).copy() for w in weights]
    lr = np.asarray(lrs, dtype=np.float64)[None, :, None, None]  # (1, L, 1, 1)
    first = np.full((S, L), -1, dtype=np.int64)
    alive = np.ones((S, L), dtype=bool)
    G0 = [np.linalg.norm(g, axis=(-2, -1)) for g in invariants(W)]
    drift = np.zeros((S, L))
    loss0 = energy(end_to_end(W))
    for k in range(steps + 1):
        with np.errstate(over="ignore", invalid="ignore"):
            X = end_to_end(W)
            loss = energy(X)
        bad = ~np.isfinite(loss) | (loss > blowup * np.maximum(loss0, 1e-300))
        alive &= ~bad
        hit = alive & (loss <= tol) & (first < 0)
        first[hit] = k
        if k == steps or not alive.any():
            break
        with np.errstate(over="ignore", invalid="ignore"):
            g = weight_gradients(W, energy.grad(X))
            W = [np.where(alive[..., None, None], w - lr * gw, w) for w, gw in zip(W, g)]
        if k % 25 == 0:
            with np.errstate(over="ignore", invalid="ignore"):
                Gk = [np.linalg.norm(gg, axis=(-2, -1)) for gg in invariants(W)]
            for a, b in zip(Gk, G0):
                drift = np.where(alive, np.maximum(drift, np.abs(a - b)), drift)
    final = np.where(alive, loss, np.nan)
    first[~alive] = -1
    return first, final, W, drift


def hessian_lambda_max(weights: list[np.ndarray], target: np.ndarray) -> float:
    """Top eigenvalue of the exact Hessian of L(W) = 0.5 ||W_N...W_1 - Phi||^2 at one point (float64)."""
    import torch
    from torch.func import hessian

    shapes = [w.shape for w in weights]
    sizes = [int(np.prod(s)) for s in shapes]
    Phi = torch.tensor(target, dtype=torch.float64)

    def L(theta):
        parts = torch.split(theta, sizes)
        X = parts[0].reshape(shapes[0])
        for p, s in zip(parts[1:], shapes[1:]):
            X = p.reshape(s) @ X
        return 0.5 * ((X - Phi) ** 2).sum()

    theta = torch.tensor(np.concatenate([w.reshape(-1) for w in weights]), dtype=torch.float64)
    H = hessian(L)(theta)
    return float(torch.linalg.eigvalsh(H).max())


def scalar_lambda_max(G: float, phi: float) -> float:
    """N = 2, scalar weights: at the minimum w_2 w_1 = phi with w_2^2 - w_1^2 = G, lambda_max = w_1^2 + w_2^2."""
    return math.sqrt(G * G + 4 * phi * phi)


@register("dln_balance", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, depth: int = 3, width: int = 4, c: float = 4.0, x0_scale: float = 0.5,
        n_seeds: int | None = None, steps: int | None = None, tol: float = 1e-6, n_lrs: int | None = None
        ) -> ExperimentResult:
    """Quick: 4 seeds, 400 steps, 20 learning rates in [0.005, 1.5]. Full: 12 seeds, 1,500 steps, 40 rates.
    ``c``: the unbalancing factor (W_1 * c, W_N / c); ``x0_scale``: X(0) = x0_scale * Gaussian / sqrt(d);
    ``tol``: the loss that counts as reached. The target Phi = U diag(s) V^T with s evenly in [1, 2]."""
    from ..dln.core import balanced_factorization, end_to_end, invariants, random_orthogonal

    n_seeds = int(n_seeds or (4 if quick else 12))
    steps = int(steps or (400 if quick else 1500))
    n_lrs = int(n_lrs or (20 if quick else 40))
    if depth < 2 or width < 1 or not c > 0 or c == 1:
        raise ValueError(f"need depth >= 2, width >= 1 and c > 0, c != 1; got depth={depth}, width={width}, c={c}")
    widths = [width] * (depth + 1)
    lrs = np.geomspace(0.005, 1.5, n_lrs)
    Wb_all, Wu_all, targets, same_X = [], [], [], []
    for s in range(n_seeds):
        rng = np.random.default_rng(seed * 1000 + s)
        Phi = random_orthogonal(width, rng) @ np.diag(np.linspace(1, 2, width)) @ random_orthogonal(width, rng)
        X0 = x0_scale * rng.standard_normal((width, width)) / math.sqrt(width)
        Wb = balanced_factorization(X0, widths, rotate=True, seed=seed * 1000 + s)
        Wu = unbalance(Wb, c)
        same_X.append(float(np.abs(end_to_end(Wb) - end_to_end(Wu)).max()))
        Wb_all.append(Wb)
        Wu_all.append(Wu)
        targets.append(Phi)
    # one energy per seed: stack the targets into a batched Frobenius energy via broadcasting
    Phi_b = np.stack(targets)[:, None]  # (S, 1, d, d)

    class _Batched:
        def __call__(self, X):
            R = X - Phi_b
            return 0.5 * np.sum(R * R, axis=(-2, -1))

        def grad(self, X):
            return X - Phi_b

    energy = _Batched()
    out = {}
    for name, Ws in (("balanced", Wb_all), ("unbalanced", Wu_all)):
        W = [np.stack([ws[p] for ws in Ws]) for p in range(depth)]  # (S, d, d)
        G = [np.linalg.norm(g, axis=(-2, -1)).max() for g in invariants(W)]
        first, final, Wend, drift = batched_gd(W, energy, lrs, steps, tol)
        conv = first >= 0  # (S, L)
        lr_max = np.array([lrs[conv[s]].max() if conv[s].any() else np.nan for s in range(n_seeds)])
        # contiguous: every lr below the largest converging one converges too (no islands)
        contiguous = all(conv[s, : int(np.searchsorted(lrs, lr_max[s])) + 1].all() for s in range(n_seeds)
                         if np.isfinite(lr_max[s]))
        best_steps = np.array([first[s][conv[s]].min() if conv[s].any() else np.nan for s in range(n_seeds)], float)
        # the minimum the (nearly-)flow reaches: the smallest-lr run that converged, per seed
        lam = []
        for s in range(n_seeds):
            j = int(np.argmax(conv[s])) if conv[s].any() else None
            lam.append(hessian_lambda_max([w[s, j] for w in Wend], targets[s]) if j is not None else np.nan)
        lam = np.array(lam)
        # ||G|| at the end of the largest-lr run that converged, against its start (large steps move G)
        Gend, lam_end = [], []
        for s in range(n_seeds):
            if conv[s].any():
                j = int(np.nonzero(conv[s])[0].max())
                Gend.append(max([np.linalg.norm(g) for g in invariants([w[s, j] for w in Wend])], default=0.0))
                lam_end.append(hessian_lambda_max([w[s, j] for w in Wend], targets[s]))
            else:
                Gend.append(np.nan)
                lam_end.append(np.nan)
        out[name] = dict(G_end_at_lr_max=np.array(Gend), lam_end_at_lr_max=np.array(lam_end), G_start=np.array(
                             [max([np.linalg.norm(g) for g in invariants([w[s] for w in W])], default=0.0)
                              for s in range(n_seeds)]),
                         drift_small_lr=drift[:, 0],
                         first=first, final=final, conv=conv, lr_max=lr_max, best_steps=best_steps, lam=lam,
                         G=max(G) if G else 0.0, drift=drift, contiguous=contiguous,
                         ws_norms=[float(np.linalg.norm(w, axis=(-2, -1)).mean()) for w in W])
    b, u = out["balanced"], out["unbalanced"]
    # speed where both converge: every (seed, lr) pair at which both starts reach tol
    both = b["conv"] & u["conv"]
    step_ratio = (u["first"][both] / np.maximum(b["first"][both], 1)).astype(float)  # unbalanced / balanced
    share_unb_faster = float(np.mean(u["first"][both] < b["first"][both])) if both.any() else float("nan")
    pred = {k: 2 / out[k]["lam"] for k in out}
    # the lr grid's spacing: 2/lambda_max is located to within one grid ratio
    ratio = float(lrs[1] / lrs[0])
    # balanced: the largest converging lr is 2/lambda_max to within one grid step either way; unbalanced:
    # every lr up to 2/lambda_max converges (sufficient), and above it large steps first shrink ||G||
    pred_bal = bool(np.all((b["lr_max"] <= pred["balanced"] * ratio) & (b["lr_max"] * ratio >= pred["balanced"])))
    pred_unb = bool(np.all(u["lr_max"] * ratio >= pred["unbalanced"]))
    over = np.nanmedian(u["lr_max"] / pred["unbalanced"])
    g_shrink = np.nanmedian(u["G_end_at_lr_max"] / u["G_start"])
    # a minimum where GD at lr settles must satisfy lambda_max <= 2/lr (else it is unstable); 1% slack for
    # the run having stopped at loss tol, not exactly at the minimum
    stable_end = bool(np.all(u["lam_end_at_lr_max"] * u["lr_max"] <= 2 * 1.01))
    # the scalar N = 2 closed form for the same unbalancing (phi = 1, w_1 = w_2 = 1 scaled by c, 1/c)
    G_scalar = 1 / c ** 2 - c ** 2
    lam_scalar = hessian_lambda_max([np.array([[c]]), np.array([[1 / c]])], np.array([[1.0]]))
    summary = {"depth": depth, "width": width, "c": c, "seeds": n_seeds, "steps": steps, "tol": tol,
               "max |X_bal(0) - X_unbal(0)|": max(same_X),
               "max ||G_p|| balanced": b["G"], "max ||G_p|| unbalanced": u["G"],
               "max drift of ||G_p|| at the smallest lr, unbalanced": float(np.nanmax(u["drift_small_lr"])),
               "unbalanced: largest converging lr / (2/lambda_max) (median)": float(over),
               "unbalanced: ||G|| at the end / start of the largest-lr converging run (median)": float(g_shrink),
               "unbalanced: lambda_max at the end of the largest-lr converging run (median)":
                   float(np.nanmedian(u["lam_end_at_lr_max"])),
               "largest converging lr, balanced (median)": float(np.nanmedian(b["lr_max"])),
               "largest converging lr, unbalanced (median)": float(np.nanmedian(u["lr_max"])),
               "lambda_max at the minimum, balanced (median)": float(np.nanmedian(b["lam"])),
               "lambda_max at the minimum, unbalanced (median)": float(np.nanmedian(u["lam"])),
               "2/lambda_max, balanced (median)": float(np.nanmedian(pred["balanced"])),
               "2/lambda_max, unbalanced (median)": float(np.nanmedian(pred["unbalanced"])),
               "fewest steps to tol over lrs, balanced (median)": float(np.nanmedian(b["best_steps"])),
               "fewest steps to tol over lrs, unbalanced (median)": float(np.nanmedian(u["best_steps"])),
               "(seed, lr) pairs where both converge": int(both.sum()),
               "share of those pairs where the unbalanced start needs fewer steps": share_unb_faster,
               "steps unbalanced / balanced over those pairs (median)": float(np.median(step_ratio)) if both.any() else None,
               "scalar N=2: lambda_max (exact Hessian)": lam_scalar,
               "scalar N=2: sqrt(G^2 + 4 phi^2)": scalar_lambda_max(G_scalar, 1.0)}
    wins_range = int(np.sum(b["lr_max"] > u["lr_max"]))
    wins_best = int(np.sum(b["best_steps"] < u["best_steps"]))
    checks = {
        f"both starts have the same X(0) (max difference {max(same_X):.1e} <= 1e-12) and the balanced one has all "
        f"G_p = 0 (max ||G_p|| {b['G']:.1e}) while the unbalanced one does not ({u['G']:.2f})":
            bool(max(same_X) <= 1e-12 and b["G"] <= 1e-10 and u["G"] > 0.1),
        f"at the smallest lr ({lrs[0]:g}) gradient descent conserves G_p: drift of ||G_p|| <= 1% of ||G|| "
        f"(max {np.nanmax(u['drift_small_lr']):.1e})": bool(np.nanmax(u["drift_small_lr"]) <= 0.01 * u["G"]),
        f"the balanced start converges over a wider range of learning rates at every seed "
        f"({wins_range}/{n_seeds}; median largest lr {np.nanmedian(b['lr_max']):.3g} vs {np.nanmedian(u['lr_max']):.3g})":
            wins_range == n_seeds,
        f"the minimum the unbalanced start reaches is sharper at every seed (median lambda_max "
        f"{np.nanmedian(u['lam']):.3g} vs {np.nanmedian(b['lam']):.3g})": bool(np.all(u["lam"] > b["lam"])),
        f"balanced: the largest converging lr is 2/lambda_max of its minimum to within the lr grid's spacing "
        f"(x{ratio:.2f}) at every seed": pred_bal,
        f"unbalanced: every lr up to 2/lambda_max converges; above it (up to {over:.2f} x 2/lambda_max) large steps "
        f"move along the fibre (||G|| ends at {g_shrink:.2f} of its start at the largest converging lr) to a flatter "
        f"minimum with lambda_max <= 2/lr (median lambda_max there {np.nanmedian(u['lam_end_at_lr_max']):.3g})":
            bool(pred_unb and g_shrink < 1 and stable_end),
        f"speed is not balance's gift here: wherever both converge ({int(both.sum())} (seed, lr) pairs) the unbalanced "
        f"start needs fewer steps in {share_unb_faster:.0%} of them (median step ratio "
        f"{np.median(step_ratio) if both.any() else float('nan'):.2f}), its larger layers preconditioning the "
        f"end-to-end flow": bool(both.any() and share_unb_faster >= 0.5),
        f"scalar N=2 check: the exact Hessian's lambda_max at (c, 1/c) equals sqrt(G^2 + 4 phi^2) = "
        f"{scalar_lambda_max(G_scalar, 1.0):.6f} (to 1e-10)": abs(lam_scalar - scalar_lambda_max(G_scalar, 1.0)) <= 1e-10,
    }
    summary["balanced faster at its best lr (seeds)"] = wins_best
    med = lambda a: np.array([np.nanmedian(np.where(a[:, j] >= 0, a[:, j], np.nan)) if (a[:, j] >= 0).any() else np.nan  # noqa: E731
                              for j in range(a.shape[1])], float)
    figs = (
        Figure("steps_vs_lr", f"Steps to loss {tol:g} vs learning rate (median over {n_seeds} seeds; gaps = no convergence)",
               "lines", "learning rate", "steps to tol",
               (Series("balanced (G_p = 0)", lrs, med(b["first"]), mode="lines+markers"),
                Series(f"unbalanced (W_1 x {c:g}, W_N / {c:g}; max ||G_p|| = {u['G']:.2f})", lrs, med(u["first"]),
                       mode="lines+markers")),
               log_x=True, log_y=True,
               caption=(f"Depth {depth}, width {width}, E = 0.5 ||X - Phi||^2, both starts with the same X(0). Dashed "
                        f"lines: 2/lambda_max of the minimum each start reaches (median)."),
               table={k: v for k, v in summary.items() if "lr" in k or "lambda" in k or "steps" in k},
               hlines=()),
        Figure("converging_fraction", "Share of seeds that converge, per learning rate", "lines", "learning rate",
               "share of seeds reaching tol",
               (Series("balanced", lrs, b["conv"].mean(0), mode="lines+markers"),
                Series("unbalanced", lrs, u["conv"].mean(0), mode="lines+markers"),
                Series("2/lambda_max balanced (median)", np.full(2, np.nanmedian(pred["balanced"])), np.array([0.0, 1.0]), dash=True),
                Series("2/lambda_max unbalanced (median)", np.full(2, np.nanmedian(pred["unbalanced"])), np.array([0.0, 1.0]), dash=True)),
               log_x=True, caption="The vertical dashed lines are the stability thresholds predicted by the Hessian."),
    )
    text = (f"Same X(0), depth {depth}: the balanced start (G_p = 0) converges for learning rates up to "
            f"{np.nanmedian(b['lr_max']):.3g} (median), the unbalanced one (max ||G_p|| = {u['G']:.2f}) up to "
            f"{np.nanmedian(u['lr_max']):.3g}; the minima they reach have lambda_max {np.nanmedian(b['lam']):.3g} and "
            f"{np.nanmedian(u['lam']):.3g} (2/lambda_max = {np.nanmedian(pred['balanced']):.3g} and "
            f"{np.nanmedian(pred['unbalanced']):.3g}). Where both converge the unbalanced start needs fewer steps in "
            f"{share_unb_faster:.0%} of the (seed, lr) pairs; at their best rates {np.nanmedian(b['best_steps']):.0f} and {np.nanmedian(u['best_steps']):.0f} (balanced "
            f"faster at {wins_best}/{n_seeds} seeds): the seed's 'more stable' is measured, its 'more efficient' (in steps) "
            f"is not.")
    arrays = {"lrs": lrs, **{f"{k}/first": v["first"] for k, v in out.items()},
              **{f"{k}/final_loss": v["final"] for k, v in out.items()}, **{f"{k}/lambda_max": v["lam"] for k, v in out.items()},
              **{f"{k}/lr_max": v["lr_max"] for k, v in out.items()}}
    return measured("dln_balance", summary=summary, checks=checks, figures=figs,
                            arrays=arrays, settings={"quick": quick, "seed": seed, "depth": depth, "width": width, "c": c,
                                                     "x0_scale": x0_scale, "seeds": n_seeds, "steps": steps, "tol": tol,
                                                     "lrs": [float(lrs[0]), float(lrs[-1]), n_lrs]}, text=text)
