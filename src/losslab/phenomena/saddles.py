"""Saddle points rule high-dimensional landscapes; saddle-free Newton escapes them.

Dauphin, Pascanu, Gulcehre, Cho, Ganguli, Bengio (2014), "Identifying and attacking the saddle
point problem in high-dimensional non-convex optimization":

1. The toy f(x, y) = x^2/2 - y^2/2 + y^4/4 has a saddle at (0, 0) (f = 0, eigenvalues 1, -1)
   and minima at (0, +-1) (f = -1/4). From (0.5, 0.01), Newton's method converges to the
   saddle (it divides the negative-curvature component of the gradient by a negative
   eigenvalue, i.e. moves *towards* the saddle), gradient descent leaves it slowly (the
   y-component grows by a factor (1 + lr) per step), and saddle-free Newton
   d = -|H|^{-1} g (exact |H| by eigendecomposition) reaches f = -1/4 in a few steps.
2. On a small tanh network (regression, mse), critical points are found by minimizing
   ||grad L||^2 (Levenberg-Marquardt, :func:`losslab.optim.second_order.find_critical_points`)
   from random starts of several scales and from saddle-free-Newton minima; at each, the
   exact Hessian (``losslab.hessian.exact_spectrum``) gives the index alpha = fraction of
   negative eigenvalues. Dauphin et al. (Fig. 1; after Bray & Dean 2007) report that the loss
   of critical points rises with alpha: minima (alpha = 0) have the lowest loss.
3. From the network's highest-loss saddle (slightly perturbed), gradient descent, Newton,
   exact saddle-free Newton and Krylov saddle-free Newton (k Lanczos vectors, damping) are run
   for the same number of steps.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..figures import Figure, Grid, Path, Series
from .base import ExperimentResult, measured, register

TITLE = "Saddle points and saddle-free Newton"
CLAIM = ("Newton is attracted to saddles, gradient descent is slow to leave them, saddle-free Newton escapes; "
         "the loss of critical points rises with their index")


def toy_saddle(w: torch.Tensor) -> torch.Tensor:
    """f(x, y) = x^2/2 - y^2/2 + y^4/4 (saddle at 0, minima (0, +-1) with f = -1/4)."""
    return w[..., 0] ** 2 / 2 - w[..., 1] ** 2 / 2 + w[..., 1] ** 4 / 4


def _net_problem(seed: int, n: int, hidden: int, noise: float):
    """A small regression problem: targets from a wider random tanh teacher plus noise, so the
    student's minima have positive loss."""
    from ..models import build

    g = torch.Generator().manual_seed(1000 + seed)
    X = torch.randn(n, 2, generator=g, dtype=torch.float64)
    teacher = build("mlp", in_dim=2, hidden=[2 * hidden], out_dim=1, seed=2000 + seed, init_scale=2.0,
                    dtype=torch.float64)
    with torch.no_grad():
        y = teacher(X) + noise * torch.randn(n, 1, generator=g, dtype=torch.float64)
    student = build("mlp", in_dim=2, hidden=[hidden], out_dim=1, seed=seed, dtype=torch.float64)
    return student, X, y


# ---- critical points of the small net: symmetry-aware dedup ------------------------------------
def _unit_blocks(theta: np.ndarray, in_dim: int, hidden: int) -> tuple[np.ndarray, float]:
    """Split a flat 2-layer MLP vector (W1 (h, d) row-major, b1 (h,), W2 (1, h), b2) into per-hidden-unit
    rows [w_j, b_j, v_j] (h, d + 2) and the output bias."""
    h, d = hidden, in_dim
    if theta.shape[-1] != h * d + 2 * h + 1:
        raise ValueError(f"expected {h * d + 2 * h + 1} parameters for a {d}-{h}-1 MLP, got {theta.shape[-1]}")
    W1 = theta[: h * d].reshape(h, d)
    b1 = theta[h * d: h * d + h]
    v = theta[h * d + h: h * d + 2 * h]
    return np.concatenate([W1, b1[:, None], v[:, None]], 1), float(theta[-1])


def symmetry_distance(a: np.ndarray, b: np.ndarray, *, in_dim: int, hidden: int) -> float:
    """Euclidean distance between two parameter vectors of a d-h-1 tanh MLP after the best hidden-unit
    permutation and sign flips of b. tanh is odd, so (w_j, b_j, v_j) -> -(w_j, b_j, v_j) leaves the
    function unchanged, and so does any permutation of the hidden units: the 2^h h! copies of a
    critical point are one critical point. Exact minimum over all 2^h h! symmetries (h <= 6)."""
    from itertools import permutations

    if hidden > 6:
        raise ValueError("symmetry_distance enumerates 2^h h! symmetries; hidden must be <= 6")
    A, ca = _unit_blocks(np.asarray(a, np.float64), in_dim, hidden)
    B, cb = _unit_blocks(np.asarray(b, np.float64), in_dim, hidden)
    # per-pair squared costs with the better sign: sign flips act unit by unit, so for a fixed
    # permutation the best signs are chosen independently per unit.
    plus = ((A[:, None, :] - B[None, :, :]) ** 2).sum(-1)
    minus = ((A[:, None, :] + B[None, :, :]) ** 2).sum(-1)
    cost = np.minimum(plus, minus)
    best = min(sum(cost[i, p[i]] for i in range(hidden)) for p in permutations(range(hidden)))
    return float(np.sqrt(best + (ca - cb) ** 2))


def _groups(n: int, same) -> np.ndarray:
    """Label 0..n-1 by connected components of the relation same(i, j) (single linkage)."""
    lab = -np.ones(n, dtype=np.int64)
    k = 0
    for i in range(n):
        if lab[i] >= 0:
            continue
        lab[i], stack = k, [i]
        while stack:
            u = stack.pop()
            for j in range(n):
                if lab[j] < 0 and same(u, j):
                    lab[j] = k
                    stack.append(j)
        k += 1
    return lab


def binomial_sign_p(k: int, n: int) -> float:
    """One-sided sign-test p-value P(X >= k), X ~ Binomial(n, 1/2)."""
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, 0.5)) if n > 0 else float("nan")


# ---- the optimizers' race at a saddle --------------------------------------------------------------
def race_saddle(w: torch.Tensor) -> torch.Tensor:
    """f(x, y) = x^2 - y^2 + y^4/4: saddle at 0 (Hessian diag(2, -2)), minima (0, +-sqrt 2) with f = -1."""
    return w[..., 0] ** 2 - w[..., 1] ** 2 + w[..., 1] ** 4 / 4


def gd_escape_steps(y0: float, r: float, lr: float) -> int:
    """Gradient descent on -y^2 (the linear regime of race_saddle): y_t = y0 (1 + 2 lr)^t, so the first
    t with |y_t| >= r is ceil(log(r/|y0|) / log(1 + 2 lr))."""
    _check_escape(y0, r, lr)
    return max(0, math.ceil(math.log(r / abs(y0)) / math.log1p(2 * lr)))


def momentum_roots(lr: float, beta: float) -> tuple[float, float]:
    """Heavy-ball momentum on -y^2: with torch's buffer b_{t+1} = beta b_t + g_t and y_{t+1} = y_t - lr b_{t+1},
    g = -2y gives y_{t+1} = (1 + beta + 2 lr) y_t - beta y_{t-1}; the roots of
    z^2 - (1 + beta + 2 lr) z + beta = 0 (real, z1 > 1 > z2 > 0 for lr > 0, 0 <= beta < 1)."""
    if not (0 <= beta < 1) or not lr > 0:
        raise ValueError(f"need lr > 0 and 0 <= beta < 1, got lr={lr!r}, beta={beta!r}")
    s = 1 + beta + 2 * lr
    disc = math.sqrt(s * s - 4 * beta)
    return (s + disc) / 2, (s - disc) / 2


def momentum_linear_path(y0: float, lr: float, beta: float, steps: int) -> np.ndarray:
    """Closed form of the recursion: y_t = A z1^t + B z2^t with y_0 = y0 and y_1 = (1 + 2 lr) y0 (the first
    step has an empty buffer), so A = y0 (z1 - beta)/(z1 - z2), B = y0 - A."""
    z1, z2 = momentum_roots(lr, beta)
    A = y0 * (z1 - beta) / (z1 - z2)
    t = np.arange(steps + 1, dtype=np.float64)
    return A * z1 ** t + (y0 - A) * z2 ** t


def momentum_escape_steps(y0: float, r: float, lr: float, beta: float) -> int:
    """First t with |y_t| >= r for the closed form above (B > 0, so |y_t| is increasing)."""
    _check_escape(y0, r, lr)
    z1, z2 = momentum_roots(lr, beta)
    A = abs(y0) * (z1 - beta) / (z1 - z2)
    t = max(0, math.floor(math.log(r / A) / math.log(z1)) - 1)  # A z1^t alone stays below r before this
    while abs(momentum_linear_path(abs(y0), lr, beta, t)[-1]) < r:
        t += 1
    return t


def _check_escape(y0, r, lr):
    if not (y0 != 0 and math.isfinite(y0) and r > abs(y0) and lr > 0):
        raise ValueError(f"need 0 < |y0| < r and lr > 0, got y0={y0!r}, r={r!r}, lr={lr!r}")


def newton_step_on_race(x: float, y: float) -> tuple[float, float]:
    """One exact Newton step on race_saddle: x -> 0 and y -> y - (y^3 - 2y)/(3y^2 - 2) = 2 y^3/(3 y^2 - 2),
    i.e. from |y| << 1 it lands within |y|^3 of the saddle."""
    return 0.0, 2 * y ** 3 / (3 * y ** 2 - 2)


def run_torch_optimizer(name: str, f, x0, *, lr: float, steps: int, **options) -> np.ndarray:
    """Run a losslab-registered torch optimizer (``losslab.optim.make_optimizer``) on f of a flat float64
    vector from x0 for ``steps`` steps; returns the (steps + 1, P) path including the start."""
    from ..optim import make_optimizer

    p = torch.nn.Parameter(torch.as_tensor(x0, dtype=torch.float64).clone())
    opt = make_optimizer(name, [p], lr=lr, **options)
    pts = [p.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        f(p).backward()
        opt.step()
        pts.append(p.detach().clone())
    return torch.stack(pts).numpy()


def first_reach(path_y: np.ndarray, r: float) -> int:
    """First index t with |y_t| >= r (-1 if never)."""
    i = np.nonzero(np.abs(path_y) >= r)[0]
    return int(i[0]) if len(i) else -1


def adam_step_bound(t: int, beta1: float = 0.9, beta2: float = 0.999) -> float:
    """Cauchy-Schwarz bound on Adam's step/lr at step t (1-based): m_hat = sum_s w_s g_s, v_hat = sum_s u_s g_s^2
    with w_s = (1-b1) b1^(t-s)/(1-b1^t), u_s = (1-b2) b2^(t-s)/(1-b2^t), so
    |m_hat|/(sqrt(v_hat) + eps) <= sqrt(sum_s w_s^2/u_s) for any gradients (eps >= 0 only shrinks it)."""
    s = np.arange(1, t + 1)
    w = (1 - beta1) * beta1 ** (t - s) / (1 - beta1 ** t)
    u = (1 - beta2) * beta2 ** (t - s) / (1 - beta2 ** t)
    return float(np.sqrt((w * w / u).sum()))


@register("saddles", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, toy_steps: int | None = None, gd_lr: float = 0.1,
        hidden: int | None = None, n: int | None = None, noise: float = 0.3, n_starts: int | None = None,
        lm_steps: int | None = None, escape_steps: int | None = None, krylov_dim: int = 6,
        krylov_damping: float = 1e-3, grad_tol: float = 1e-12, value_tol: float = 1e-6, param_tol: float = 1e-4,
        race_lr: float = 0.01, race_beta: float = 0.9, race_y0: float = 1e-6, race_x0: float = 1.0,
        race_r: float = 0.1, race_steps: int | None = None) -> ExperimentResult:
    from ..hessian.exact import exact_spectrum
    from ..optim.second_order import find_critical_points, minimize, model_loss_fn
    from ..params import load_flat
    from .curves import single_thread

    toy_steps = toy_steps or (30 if quick else 50)
    hidden = hidden or (3 if quick else 4)
    n = n or (48 if quick else 96)
    n_starts = n_starts or (40 if quick else 120)
    lm_steps = lm_steps or (150 if quick else 400)
    escape_steps = escape_steps or (30 if quick else 60)
    race_steps = race_steps or (800 if quick else 1000)
    if not (0 < race_y0 < race_r < math.sqrt(2 / 3)):
        raise ValueError(f"need 0 < race_y0 < race_r < sqrt(2/3) (the linear escape regime), got {race_y0!r}, {race_r!r}")
    settings = dict(quick=quick, seed=seed, toy_steps=toy_steps, gd_lr=gd_lr, hidden=hidden, n=n, noise=noise,
                    n_starts=n_starts, lm_steps=lm_steps, escape_steps=escape_steps, krylov_dim=krylov_dim, grad_tol=grad_tol,
                    krylov_damping=krylov_damping, value_tol=value_tol, param_tol=param_tol, race_lr=race_lr,
                    race_beta=race_beta, race_y0=race_y0, race_x0=race_x0, race_r=race_r, race_steps=race_steps)
    figs, arrays, summary, checks = [], {}, {}, {}
    with single_thread():
        # ---- 1. the toy saddle ------------------------------------------------------------
        x0 = torch.tensor([0.5, 0.01], dtype=torch.float64)
        gd_steps = toy_steps * 4  # give gradient descent 4x the steps
        paths = {
            "newton": minimize(toy_saddle, x0, method="newton", steps=toy_steps),
            "gd": minimize(toy_saddle, x0, method="gd", lr=gd_lr, steps=gd_steps),
            "saddle_free": minimize(toy_saddle, x0, method="saddle_free", steps=toy_steps),
            "saddle_free_krylov": minimize(toy_saddle, x0, method="saddle_free_krylov", steps=toy_steps,
                                           krylov_dim=2, damping=0.0),
        }
        for k, p in paths.items():
            arrays[f"toy/{k}/values"] = p.values
            arrays[f"toy/{k}/points"] = p.points
            summary[f"toy_{k}_final_f"] = p.final_value
            s = p.steps_to(-0.24)
            summary[f"toy_{k}_steps_to_f_below_-0.24"] = -1 if s is None else s
        checks["toy: Newton stays at the saddle (final f > -0.01)"] = paths["newton"].final_value > -0.01
        checks["toy: saddle-free Newton reaches f < -0.24"] = paths["saddle_free"].final_value < -0.24
        sg, ss = paths["gd"].steps_to(-0.24), paths["saddle_free"].steps_to(-0.24)
        checks["toy: gradient descent needs >= 3x the steps of saddle-free Newton to reach f < -0.24"] = (
            ss is not None and (sg is None or sg >= 3 * max(ss, 1)))
        figs.append(Figure(
            key="toy_values", title="f = x^2/2 - y^2/2 + y^4/4 from (0.5, 0.01)", kind="lines", x_label="step",
            y_label="f", series=tuple(Series(k, np.arange(len(p.values)), p.values, mode="lines+markers")
                                      for k, p in paths.items()),
            hlines=(("saddle f = 0", 0.0), ("minimum f = -1/4", -0.25)),
            caption=(f"Measured f per step. Newton converges to the saddle (final f = {paths['newton'].final_value:.3g}); "
                     f"gradient descent (lr {gd_lr}) needs {sg} steps to reach f < -0.24, saddle-free Newton {ss}."),
            table={k: paths[k].final_value for k in paths}))

        # ---- 2. critical points of a small network -----------------------------------------
        student, X, y = _net_problem(seed, n, hidden, noise)
        f, th0 = model_loss_fn(student, (X, y), "mse")
        P = th0.numel()
        g = torch.Generator().manual_seed(seed)
        scales = torch.linspace(0.2, 2.0, n_starts, dtype=torch.float64)
        starts = torch.randn(n_starts, P, generator=g, dtype=torch.float64) * scales[:, None]
        # minima via saddle-free Newton from a few random starts (it escapes the saddles)
        n_sfn = max(2, n_starts // 10)
        sfn_ends = [torch.as_tensor(minimize(f, starts[i], method="saddle_free", steps=60, damping=1e-6).final_point)
                    for i in range(n_sfn)]
        starts = torch.cat([starts, torch.stack(sfn_ends)])
        cps = find_critical_points(f, starts, steps=lm_steps, tol=grad_tol)
        idx_list, nneg_list, loss_list, minev, keep_pts = [], [], [], [], []
        for k in np.nonzero(cps.converged)[0]:
            spec = exact_spectrum(load_flat(student, torch.as_tensor(cps.points[k])), (X, y), "mse")
            w = spec.eigenvalues
            thr = 1e-6 * float(w.abs().max())  # eigenvalues within 1e-6 relative of 0 count as zero (symmetries)
            nneg_list.append(int((w < -thr).sum()))
            idx_list.append(nneg_list[-1] / w.numel())
            loss_list.append(float(cps.values[k]))
            minev.append(float(w[0]))
            keep_pts.append(cps.points[k])
        idx_a, loss_a, nneg_a = np.asarray(idx_list), np.asarray(loss_list), np.asarray(nneg_list, dtype=np.int64)
        pts_a = np.asarray(keep_pts).reshape(len(keep_pts), P)
        nc = len(loss_a)
        # Distinct critical points, three ways (each a coarser quotient of the previous):
        # (a) parameter distance <= param_tol (1 + |theta|): counts the 2^h h! sign/permutation copies of one
        #     critical point as different;
        # (b) symmetry orbits: distance after the best hidden-unit permutation and sign flips (tanh is odd);
        # (c) critical values: relative loss difference <= value_tol (1e-6: points with a saturated unit, tanh ~ +-1
        #     acting as a bias, are near-copies whose loss differs by ~1e-7 relative; the gap between the distinct
        #     values is reported as net_min_relative_value_gap). f is constant on a connected set of critical points, and the
        #     small net has whole *manifolds* of them (reducible nets: a dead unit v_j = 0, or two units with equal
        #     (w, b) whose output weights can be traded; Fukumizu & Amari 2000), along which the index can change.
        #     (a) and (b) count such a manifold once per point found on it, so the counts below use (c): a lower
        #     bound on the distinct critical sets found. A value is a minimum if any point found at it has index 0
        #     (generous to minima), else a saddle with index = the smallest found at it.
        scale = 1 + np.linalg.norm(pts_a, axis=1) if nc else np.ones(0)
        lab_par = _groups(nc, lambda i, j: np.linalg.norm(pts_a[i] - pts_a[j]) <= param_tol * max(scale[i], scale[j]))
        lab_orb = _groups(nc, lambda i, j: symmetry_distance(pts_a[i], pts_a[j], in_dim=2, hidden=hidden)
                          <= param_tol * max(scale[i], scale[j]))
        lab_val = _groups(nc, lambda i, j: abs(loss_a[i] - loss_a[j]) <= value_tol * max(abs(loss_a[i]), abs(loss_a[j])))
        uniq = np.array(sorted(int(np.flatnonzero(lab_val == c)[np.argmin(nneg_a[lab_val == c])])
                               for c in range(lab_val.max() + 1 if nc else 0)), dtype=np.int64)
        varying = int(sum(np.ptp(nneg_a[lab_val == c]) > 0 for c in range(lab_val.max() + 1 if nc else 0)))
        arrays.update({"net/index": idx_a, "net/n_negative": nneg_a, "net/loss": loss_a, "net/min_eig": np.asarray(minev),
                       "net/distinct": uniq, "net/points": pts_a, "net/label_param": lab_par,
                       "net/label_orbit": lab_orb, "net/label_value": lab_val})
        from scipy.stats import spearmanr

        di, dl, dk = idx_a[uniq], loss_a[uniq], nneg_a[uniq]
        rho = float(spearmanr(di, dl).statistic) if len(uniq) > 2 and np.ptp(di) > 0 else float("nan")
        mins, saddles_ = dl[di == 0], dl[di > 0]
        n_min, n_sad = int(len(mins)), int(len(saddles_))
        hist = np.bincount(dk, minlength=P + 1)
        arrays["net/index_histogram"] = hist
        # sign tests (one-sided, Binomial(n, 1/2)): (i) a distinct critical value is as likely a minimum as a
        # saddle; (ii) a saddle's index fraction is as likely above as below 1/2 -- what a GOE-like random Hessian
        # gives (its semicircle spectrum is symmetric about 0), against seed 003's "very few downward directions".
        p_outnumber = binomial_sign_p(n_sad, n_sad + n_min)
        few = int((dk[di > 0] < P / 2).sum())
        sv = np.sort(dl)
        gap = float((np.diff(sv) / sv[1:]).min()) if len(sv) > 1 else float("nan")
        p_few = binomial_sign_p(few, n_sad)
        summary.update({"net_params": P, "net_starts": int(len(starts)), "net_converged": int(cps.converged.sum()),
                        "net_distinct_critical_points": int(len(uniq)), "net_minima": n_min, "net_saddles": n_sad,
                        "net_distinct_by_parameter_distance": int(lab_par.max() + 1) if nc else 0,
                        "net_distinct_symmetry_orbits": int(lab_orb.max() + 1) if nc else 0,
                        "net_values_with_varying_index": varying, "net_min_relative_value_gap": gap,
                        "net_saddles_vs_minima_sign_test_p": p_outnumber,
                        "net_saddle_mean_index_fraction": float(di[di > 0].mean()) if n_sad else float("nan"),
                        "net_saddles_below_half_index": few, "net_few_downward_sign_test_p": p_few,
                        "net_spearman_index_loss": rho,
                        "net_best_minimum_loss": float(mins.min()) if len(mins) else float("nan"),
                        "net_lowest_saddle_loss": float(saddles_.min()) if len(saddles_) else float("nan")})
        for kk in range(P + 1):
            if hist[kk]:
                summary[f"net_distinct_with_{kk}_negative_eigenvalues"] = int(hist[kk])
        checks["net: loss rises with the index (Spearman rho > 0 over distinct critical points)"] = bool(rho > 0)
        checks["net: the lowest minimum lies below every saddle found"] = bool(
            len(mins) and len(saddles_) and mins.min() < saddles_.min())
        checks["net: saddles outnumber minima among distinct critical values (count; sign-test p reported)"] = bool(
            n_sad > n_min)
        checks["net: saddles have few downward directions (index < P/2 more often than 1/2; sign test p < 0.05)"] = bool(
            p_few < 0.05)
        figs.append(Figure(
            key="index_vs_loss", title="Critical points of a small tanh network: loss vs index", kind="scatter",
            x_label="index alpha (fraction of negative Hessian eigenvalues)", y_label="training loss (mse)",
            series=(Series("critical points (distinct)", di, dl, mode="markers"),),
            caption=(f"{len(uniq)} distinct critical values (||grad||^2 <= {grad_tol:g}) of a 2-{hidden}-1 tanh net "
                     f"(P = {P}) found by Levenberg-Marquardt minimization of ||grad L||^2 from {len(starts)} starts; "
                     f"index from the exact Hessian. Spearman rank correlation of index and loss: {rho:.3f}."),
            table={"spearman": rho, "minima": n_min, "saddles": n_sad}))
        figs.append(Figure(
            key="index_histogram", title="How many downward directions? Index histogram of distinct critical points",
            kind="bars", x_label="number of negative Hessian eigenvalues k", y_label="distinct critical values",
            series=(Series("distinct critical values", np.arange(P + 1), hist.astype(np.float64)),),
            caption=(f"{nc} converged critical points = {int(lab_par.max() + 1) if nc else 0} distinct by parameter "
                     f"distance = {int(lab_orb.max() + 1) if nc else 0} up to hidden-unit permutation and sign = "
                     f"{len(uniq)} distinct loss values ({varying} of them reached at points of different index: "
                     f"manifolds of critical points). {n_sad} saddles (k >= 1) vs {n_min} minima (sign test "
                     f"p = {p_outnumber:.3g}); {few} of {n_sad} saddles have k < P/2 = {P / 2:g} "
                     f"(sign test against a GOE-like index 1/2: p = {p_few:.3g})."),
            table={"histogram": {int(k): int(hist[k]) for k in range(P + 1) if hist[k]}, "minima": n_min,
                   "saddles": n_sad, "p_outnumber": p_outnumber, "p_few_downward": p_few}))

        # ---- 3. escaping a network saddle ------------------------------------------------
        if len(saddles_):
            hi = uniq[int(np.argmax(np.where(di > 0, dl, -np.inf)))]
            s0 = torch.as_tensor(keep_pts[hi])
            s0 = s0 + 1e-4 * torch.randn(P, generator=g, dtype=torch.float64)
            esc = {
                "gd": minimize(f, s0, method="gd", lr=gd_lr, steps=escape_steps),
                "newton": minimize(f, s0, method="newton", steps=escape_steps, damping=1e-6),
                "saddle_free": minimize(f, s0, method="saddle_free", steps=escape_steps, damping=1e-6),
                "saddle_free_krylov": minimize(f, s0, method="saddle_free_krylov", steps=escape_steps,
                                               krylov_dim=min(krylov_dim, P), damping=krylov_damping, seed=seed),
            }
            start_loss = float(f(s0))
            for k, p in esc.items():
                arrays[f"escape/{k}/values"] = p.values
                summary[f"escape_{k}_final_loss"] = p.final_value
            summary["escape_start_loss"] = start_loss
            checks["net: saddle-free Newton (exact and Krylov) end below gradient descent and Newton from a saddle"] = bool(
                max(esc["saddle_free"].final_value, esc["saddle_free_krylov"].final_value)
                < min(esc["gd"].final_value, esc["newton"].final_value))
            figs.append(Figure(
                key="escape", title="Leaving a saddle of the network", kind="lines", x_label="step",
                y_label="training loss", series=tuple(Series(k, np.arange(len(p.values)), p.values)
                                                      for k, p in esc.items()), log_y=True,
                caption=(f"Start: the highest-loss saddle found (loss {start_loss:.4g}, index "
                         f"{idx_a[hi]:.3f}) plus 1e-4 Gaussian noise. Krylov saddle-free Newton uses "
                         f"k = {min(krylov_dim, P)} Lanczos vectors and damping {krylov_damping:g}; "
                         f"gradient descent lr {gd_lr}. Measured final losses: "
                         + ", ".join(f"{k} {p.final_value:.4g}" for k, p in esc.items()) + "."),
                table={k: p.final_value for k, p in esc.items()}))
        # ---- 4. the optimizers' race at a saddle ------------------------------------------
        # f = x^2 - y^2 + y^4/4 from (x0, y0), y0 tiny: who leaves the saddle first? Separable, so each
        # coordinate-wise method moves y independently of x; |g_y| = 2y - y^3 grows with y on (0, sqrt(2/3)).
        lr, beta, y0, r = race_lr, race_beta, race_y0, race_r
        z0 = torch.tensor([race_x0, y0], dtype=torch.float64)
        quad = lambda w: w[..., 0] ** 2 - w[..., 1] ** 2  # noqa: E731  (the exactly linear regime)
        race = {
            "gd": run_torch_optimizer("gd", race_saddle, z0, lr=lr, steps=race_steps),
            "momentum": run_torch_optimizer("momentum", race_saddle, z0, lr=lr, steps=race_steps, momentum=beta),
            "adam": run_torch_optimizer("adam", race_saddle, z0, lr=lr, steps=race_steps),
            "rmsprop": run_torch_optimizer("rmsprop", race_saddle, z0, lr=lr, steps=race_steps),
            "newton": minimize(race_saddle, z0, method="newton", steps=100, tol=0.0).points,
            "saddle_free": minimize(race_saddle, z0, method="saddle_free", steps=60).points,
        }
        esc_r = {k: first_reach(v[:, 1], r) for k, v in race.items()}
        for k, v in race.items():
            arrays[f"race/{k}/points"] = v
            summary[f"race_{k}_escape_steps"] = esc_r[k]
            summary[f"race_{k}_final_f"] = float(race_saddle(torch.as_tensor(v[-1])))
        # closed forms (linear regime)
        gd_cf, mom_cf = gd_escape_steps(y0, r, lr), momentum_escape_steps(y0, r, lr, beta)
        z1, z2 = momentum_roots(lr, beta)
        sfn_cf = math.ceil(math.log(r / y0) / math.log(2))  # |H|^{-1} g at the saddle: y -> y + 2y/2 = 2y
        summary.update({"race_gd_escape_closed_form": gd_cf, "race_momentum_escape_closed_form": mom_cf,
                        "race_momentum_growth_rate": z1, "race_gd_growth_rate": 1 + 2 * lr,
                        "race_saddle_free_escape_closed_form": sfn_cf, "race_r_over_lr": r / lr})
        # exact linear regime: the same optimizers on x^2 - y^2 for a few steps past the escape
        lin_gd = run_torch_optimizer("gd", quad, z0, lr=lr, steps=gd_cf + 2)[:, 1]
        lin_mom = run_torch_optimizer("momentum", quad, z0, lr=lr, steps=mom_cf + 2, momentum=beta)[:, 1]
        err_gd = float(np.max(np.abs(lin_gd / (y0 * (1 + 2 * lr) ** np.arange(len(lin_gd))) - 1)))
        err_mom = float(np.max(np.abs(lin_mom / momentum_linear_path(y0, lr, beta, len(lin_mom) - 1) - 1)))
        summary.update({"race_linear_gd_max_rel_err": err_gd, "race_linear_momentum_max_rel_err": err_mom})
        checks["race: on x^2 - y^2, GD and momentum follow y0 (1+2lr)^t and A z1^t + B z2^t (rel. err <= 1e-9)"] = bool(
            max(err_gd, err_mom) <= 1e-9)
        checks["race: on x^2 - y^2, GD and momentum reach |y| >= r exactly at the closed-form steps"] = bool(
            first_reach(lin_gd, r) == gd_cf and first_reach(lin_mom, r) == mom_cf)
        # with the quartic, -y^3 only slows growth near r (relative y^2/2 <= r^2/2): allow one extra step
        checks["race: with the quartic, GD and momentum escape within 0..+1 steps of the closed forms"] = bool(
            0 <= esc_r["gd"] - gd_cf <= 1 and 0 <= esc_r["momentum"] - mom_cf <= 1)
        # Newton: one step lands on the saddle (x -> 0, y -> 2 y^3/(3y^2 - 2) ~ -y0^3), and stays
        nx, ny = newton_step_on_race(race_x0, y0)
        n1 = race["newton"][1]
        summary.update({"race_newton_step1_y": float(n1[1]), "race_newton_step1_y_closed_form": ny,
                        "race_newton_final_dist": float(np.linalg.norm(race["newton"][-1]))})
        # y - g/h cancels (g/h ~ y), so the computed y_1 is exact only to a few ulp of y0
        checks["race: Newton's first step lands on the saddle as the closed form says (|dx| <= 1e-15, |dy| <= 4 ulp(y0))"] = bool(
            abs(n1[0] - nx) <= 1e-15 and abs(n1[1] - ny) <= 4 * np.finfo(np.float64).eps * y0)
        checks["race: Newton never escapes (|y_t| < r for 100 steps)"] = esc_r["newton"] == -1
        checks["race: saddle-free Newton escapes within 0..1 steps of ceil(log2(r/y0)) and reaches f < -0.99"] = bool(
            0 <= sfn_cf - esc_r["saddle_free"] <= 1 and summary["race_saddle_free_final_f"] < -0.99)
        # Adam: |step_t| <= lr sqrt(sum w_s^2/u_s) (Cauchy-Schwarz over its moment weights) -> a derived lower bound
        dy_adam = np.abs(np.diff(race["adam"][:, 1]))
        bnd = np.array([adam_step_bound(t) for t in range(1, len(dy_adam) + 1)])
        adam_ok = bool(np.all(dy_adam <= lr * bnd * (1 + 1e-12)))
        g1 = 2 * y0 - y0 ** 3  # |g_y| at the start
        a1 = lr * g1 / (g1 + 1e-8)  # Adam's first step: m_hat = g, sqrt(v_hat) = |g| (eps = 1e-8)
        rm1 = lr * g1 / (math.sqrt(0.01) * g1 + 1e-8)  # RMSprop's: v_1 = (1 - 0.99) g^2, no bias correction
        summary.update({"race_adam_first_step": float(dy_adam[0]), "race_adam_first_step_closed_form": a1,
                        "race_rmsprop_first_step": float(abs(race["rmsprop"][1, 1] - y0)),
                        "race_rmsprop_first_step_closed_form": rm1})
        checks["race: Adam's and RMSprop's first steps match lr|g|/(|g|+eps) and lr|g|/(0.1|g|+eps) (rel 1e-9)"] = bool(
            abs(dy_adam[0] - a1) <= 1e-9 * a1 and abs(summary["race_rmsprop_first_step"] - rm1) <= 1e-9 * rm1)
        checks["race: every Adam step obeys the Cauchy-Schwarz bound lr sqrt(sum w^2/u)"] = adam_ok
        # RMSprop with |g_s| <= |g_t| (true while y rises below sqrt(2/3)): v_t <= (1 - 0.99^t) g_t^2, so each step is
        # >= lr |g_t|/(|g_t| + eps) >= lr g1/(g1 + eps): it escapes within ceil((r - y0)/that) steps, whatever y0
        rms_bound = math.ceil((r - y0) / (lr * g1 / (g1 + 1e-8)))
        summary["race_rmsprop_escape_upper_bound"] = rms_bound
        checks["race: RMSprop escapes within its derived bound ceil((r - y0)(|g0|+eps)/(lr |g0|)) steps"] = bool(
            0 < esc_r["rmsprop"] <= rms_bound)
        # report only: the normalised methods hardly care about y0 (GD's count grows like log(1/y0))
        for yy in (1e-3,):
            zz = torch.tensor([race_x0, yy], dtype=torch.float64)
            for k in ("adam", "rmsprop"):
                summary[f"race_{k}_escape_steps_y0_{yy:g}"] = first_reach(
                    run_torch_optimizer(k, race_saddle, zz, lr=lr, steps=4 * int(r / lr) + 10)[:, 1], r)
            summary[f"race_gd_escape_closed_form_y0_{yy:g}"] = gd_escape_steps(yy, r, lr)
        # figures: paths on the contour, |y_t| on a log scale with the closed forms
        gx, gy = np.linspace(-1.2, 1.2, 61), np.linspace(-0.6, 2.0, 66)
        GX, GY = np.meshgrid(gx, gy)
        Z = race_saddle(torch.as_tensor(np.stack([GX, GY], -1))).numpy()
        figs.append(Figure(
            key="race_paths", title="The optimizers' race at the saddle of x^2 - y^2 + y^4/4", kind="contour",
            x_label="x", y_label="y", grid=Grid(gx, gy, Z, "f"),
            paths=tuple(Path(k, v[:, 0], v[:, 1]) for k, v in race.items()),
            caption=(f"All start at ({race_x0:g}, {y0:g}) with lr {lr:g} (momentum beta {beta:g}; Adam, RMSprop torch "
                     f"defaults). Steps to |y| >= {r:g}: " + ", ".join(f"{k} {esc_r[k]}" for k in race)
                     + " (-1: never). Minima at (0, +-sqrt 2), f = -1; Newton lands on the saddle in one step."),
            table={k: esc_r[k] for k in race}))
        T = max(v for v in esc_r.values()) + 20
        tt = np.arange(T + 1)
        ser = [Series(k, tt[: min(T + 1, len(v))], np.maximum(np.abs(v[: T + 1, 1]), 1e-300)) for k, v in race.items()
               if k != "newton"]
        # the closed forms hold in the linear regime only: drawn while |y| <= 10 r, so they do not set the axis
        gd_line, mom_line = y0 * (1 + 2 * lr) ** tt, momentum_linear_path(y0, lr, beta, T)
        keep_gd, keep_mom = np.abs(gd_line) <= 10 * r, np.abs(mom_line) <= 10 * r
        ser += [Series("GD closed form y0 (1+2lr)^t", tt[keep_gd], gd_line[keep_gd], dash=True),
                Series("momentum closed form A z1^t + B z2^t", tt[keep_mom], mom_line[keep_mom], dash=True)]
        figs.append(Figure(
            key="race_escape", title="|y_t| leaving the saddle (log scale)", kind="lines", x_label="step",
            y_label="|y_t|", series=tuple(ser), log_y=True, hlines=((f"r = {r:g}", r),),
            caption=(f"GD grows by 1 + 2 lr = {1 + 2 * lr:g} per step (closed form: {gd_cf} steps to r, measured "
                     f"{esc_r['gd']}); heavy-ball momentum by z1 = {z1:.4f}, the largest root of "
                     f"z^2 - (1 + beta + 2 lr) z + beta (closed form {mom_cf}, measured {esc_r['momentum']}); "
                     f"saddle-free Newton doubles y (closed form {sfn_cf}, measured {esc_r['saddle_free']}); Adam and "
                     f"RMSprop take steps of about lr whatever |g| is: {esc_r['adam']} and {esc_r['rmsprop']} steps "
                     f"(r/lr = {r / lr:g}). Newton is not shown: its first step puts y at {float(n1[1]):.2g}."),
            table={"gd": [gd_cf, esc_r["gd"]], "momentum": [mom_cf, esc_r["momentum"]],
                   "saddle_free": [sfn_cf, esc_r["saddle_free"]], "adam": esc_r["adam"], "rmsprop": esc_r["rmsprop"]}))
    text = (f"Toy: Newton final f {paths['newton'].final_value:.3g}, saddle-free Newton "
            f"{paths['saddle_free'].final_value:.4g} (f < -0.24 at step {ss}), gradient descent reaches f < -0.24 at "
            f"step {sg}. Network: {len(uniq)} distinct critical values ({n_sad} saddles, {n_min} minima), "
            f"Spearman(index, loss) = {rho:.3f}. Race from y0 = {race_y0:g} to |y| >= {race_r:g}: "
            + ", ".join(f"{k} {v}" for k, v in esc_r.items()) + " steps (-1: never).")
    return measured("saddles", summary=summary, checks=checks,
                    figures=tuple(figs), arrays=arrays, settings=settings, text=text)
