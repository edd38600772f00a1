"""Experiment ``schedules_and_momentum``: momentum's sqrt(kappa) speed-up, and schedules below the noise floor.

Part 1 -- momentum on an ill-conditioned bowl (Polyak 1964, "Some methods of speeding up the
convergence of iteration methods"; Goh 2017, "Why momentum really works", Distill). The
seven-point regression (``seven_points``, model ``linear``, loss ``mse``) is the quadratic
L(theta) = L* + 1/2 (theta - theta*)^T H (theta - theta*), H = (2/N) X^T X, eigenvalues
lmin < lmax, kappa = lmax / lmin (~316). Per eigen-direction of H with eigenvalue l:

* gradient descent multiplies the error by (1 - lr l); at lr = 2 / (lmin + lmax) the worst
  mode contracts by (kappa - 1) / (kappa + 1) per step (both extreme modes equally);
* heavy ball in torch's form (v <- beta v + g, theta <- theta - lr v; identical to Polyak's
  theta_{t+1} = theta_t - lr g_t + beta (theta_t - theta_{t-1})) has the 2x2 iteration
  matrix [[1 + beta - lr l, -beta], [1, 0]] on (e_t, e_{t-1}); its roots solve
  z^2 - (1 + beta - lr l) z + beta = 0, and the asymptotic rate is the largest |z| over the
  eigenvalues. Polyak's choice lr = 4 / (sqrt(lmax) + sqrt(lmin))^2,
  beta = ((sqrt(kappa) - 1) / (sqrt(kappa) + 1))^2 makes both extreme modes' roots double,
  with modulus sqrt(beta) = (sqrt(kappa) - 1) / (sqrt(kappa) + 1).

Steps to a tolerance scale as 1 / -ln(rate): ~kappa/2 for GD, ~sqrt(kappa)/2 for heavy
ball, a speed-up of ~sqrt(kappa). The runs are ordinary ``losslab.train`` runs ("gd",
"momentum" with ``optimizer_options={"momentum": beta}``) in float64; the rate is measured
from ||theta_t - theta*|| (theta* by OLS) over a late window, and the closed forms are the
root moduli above (checked in the tests against the eigenvalues of the explicit 2n x 2n
iteration matrix).

Part 2 -- learning-rate schedules with gradient noise. SGD on a diagonal quadratic
f(x) = 1/2 sum_i l_i x_i^2 with additive noise: g_t = l x_t + s xi_t, xi ~ N(0, 1). Per mode
x_{t+1} = (1 - lr_t l) x_t - lr_t s xi_t, so the mean m and variance v follow

    m_{t+1} = (1 - lr_t l) m_t,   v_{t+1} = (1 - lr_t l)^2 v_t + lr_t^2 s^2,

and at constant lr (0 < lr l < 2) the iterates settle at the stationary variance
v* = lr s^2 / (l (2 - lr l)), an expected loss floor sum_i lr s^2 / (2 (2 - lr l_i)). A
decaying learning rate goes below that floor. Many independent walkers (one (W, d) tensor)
are stepped by ``losslab.optim.make_optimizer("sgd")`` under ``losslab.optim.make_schedule``
schedules; the measured mean loss is compared with the exact recursion above.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..figures import Figure, Series
from .base import ExperimentResult, measured, register

TITLE = "Momentum's sqrt(kappa) speed-up and learning-rate schedules below the noise floor"
CLAIM = ("on a quadratic with condition number kappa, heavy ball at Polyak's parameters contracts by "
         "(sqrt(kappa)-1)/(sqrt(kappa)+1) per step vs (kappa-1)/(kappa+1) for tuned GD, ~sqrt(kappa) fewer steps; "
         "with gradient noise constant-lr SGD settles at the variance lr s^2/(l(2-lr l)) and decaying schedules "
         "go below it")


# --- closed forms ---------------------------------------------------------------------------------
def heavy_ball_radius(eigenvalues, lr: float, beta: float) -> np.ndarray:
    """Per-eigenvalue spectral radius of heavy ball: max |z| over the roots of
    z^2 - (1 + beta - lr l) z + beta = 0 (beta = 0: |1 - lr l|, plain gradient descent)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if not (0.0 <= beta < 1.0):
        raise ValueError(f"beta must lie in [0, 1), got {beta!r}")
    c = 1.0 + beta - lr * lam
    disc = np.sqrt((c * c - 4.0 * beta).astype(np.complex128))
    return np.maximum(np.abs((c + disc) / 2), np.abs((c - disc) / 2))


def heavy_ball_matrix(H, lr: float, beta: float) -> np.ndarray:
    """The explicit (2n, 2n) iteration matrix on (e_t, e_{t-1}), e = theta - theta*:
    e_{t+1} = ((1 + beta) I - lr H) e_t - beta e_{t-1}."""
    H = np.asarray(H, dtype=np.float64)
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"H must be a square matrix, got shape {H.shape}")
    n = H.shape[0]
    eye = np.eye(n)
    return np.block([[(1 + beta) * eye - lr * H, -beta * eye], [eye, np.zeros((n, n))]])


def polyak_parameters(lmin: float, lmax: float) -> tuple[float, float, float]:
    """Polyak's optimal heavy ball for eigenvalues in [lmin, lmax]: (lr, beta, rate) with
    lr = 4/(sqrt(lmax)+sqrt(lmin))^2, beta = rate^2, rate = (sqrt(k)-1)/(sqrt(k)+1)."""
    if not (0 < lmin <= lmax and math.isfinite(lmax)):
        raise ValueError(f"need 0 < lmin <= lmax, got lmin={lmin!r}, lmax={lmax!r}")
    rk = math.sqrt(lmax / lmin)
    rate = (rk - 1) / (rk + 1)
    return 4.0 / (math.sqrt(lmax) + math.sqrt(lmin)) ** 2, rate ** 2, rate


def stationary_variance(l, lr: float, noise: float) -> np.ndarray:
    """v* = lr s^2 / (l (2 - lr l)): the stationary variance of x <- x - lr (l x + s xi) (needs 0 < lr l < 2)."""
    l = np.asarray(l, dtype=np.float64)
    if np.any(l <= 0) or np.any(lr * l >= 2) or lr <= 0:
        raise ValueError(f"the stationary variance needs 0 < lr*l < 2; got lr={lr!r}, l={l.tolist()}")
    return lr * noise ** 2 / (l * (2.0 - lr * l))


def expected_loss_curve(eigenvalues, lrs, noise: float, x0) -> np.ndarray:
    """E f(x_t), t = 0..T, for SGD with additive N(0, s^2) gradient noise under the learning rates
    ``lrs`` (T,), from the deterministic start x0, by the exact mean/variance recursion
    (m <- (1 - lr l) m, v <- (1 - lr l)^2 v + lr^2 s^2; E f = 1/2 sum l (m^2 + v))."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    m = np.asarray(x0, dtype=np.float64).copy()
    v = np.zeros_like(m)
    out = [0.5 * float(np.sum(lam * (m * m + v)))]
    for lr in np.asarray(lrs, dtype=np.float64):
        a = 1.0 - lr * lam
        m, v = a * m, a * a * v + lr * lr * noise ** 2
        out.append(0.5 * float(np.sum(lam * (m * m + v))))
    return np.asarray(out)


# --- measurements ---------------------------------------------------------------------------------
def late_rate(errors, *, floor: float = 1e-11, ceiling: float = 1e8) -> tuple[float, int]:
    """Asymptotic per-step rate of an error sequence: (S_B / S_A)^(1 / (2 D)) with S the sum of
    squared errors over two adjacent windows A, B of length D covering the second half of the
    usable prefix (errors between floor and ceiling times e_0: above round-off, below overflow).
    Sums of squares over windows average out the oscillation of complex-root modes.
    Returns (rate, usable length)."""
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 1 or len(e) < 8 or not e[0] > 0:
        raise ValueError("late_rate needs a 1-D error sequence of length >= 8 starting above zero")
    ok = np.isfinite(e) & (e > floor * e[0]) & (e < ceiling * e[0])
    T = int(np.argmin(ok)) if not ok.all() else len(e)
    if T < 8:
        raise ValueError(f"only {T} usable errors (between {floor:g} and {ceiling:g} x e_0); need >= 8")
    D = T // 4
    A, B = e[T - 2 * D : T - D], e[T - D : T]
    return float((np.sum(B ** 2) / np.sum(A ** 2)) ** (1.0 / (2 * D))), T


def _bowl():
    """The seven-point bowl: H, its eigenvalues, theta* = (w*, b*) and the data."""
    from ..closed_form import ols
    from ..data import load
    from .learning_rate import seven_point_hessian

    data = load("seven_points")
    H, eig = seven_point_hessian()
    o = ols(data.train.X.double(), data.train.y.double())
    theta_star = np.array([float(o.weight.reshape(-1)[0]), float(o.bias.reshape(-1)[0])])  # (weight, bias)
    return data, H.numpy(), eig.numpy(), theta_star


def bowl_errors(*, optimizer: str, lr: float, beta: float | None = None, steps: int, seed: int = 0,
                divergence_factor: float = 1e16) -> tuple[np.ndarray, str, np.ndarray]:
    """||theta_t - theta*||, t = 0..T, for a ``losslab.train`` run on the seven points (float64,
    snapshot every step); the run's status; theta_0 - theta*. A diverging run stops early (its
    prefix is returned)."""
    from ..models import build
    from ..train import train

    data, _, _, theta_star = _bowl()
    model = build("linear", in_dim=1, out_dim=1, seed=seed, dtype=torch.float64)
    opts = {"momentum": beta} if beta is not None else None
    tr = train(model, data, optimizer=optimizer, lr=lr, steps=steps, optimizer_options=opts, eval_every=steps,
               snapshot_every=1, max_snapshots=steps + 2, divergence_factor=divergence_factor, seed=seed)
    assert tr.param_names == ("weight", "bias")
    return np.linalg.norm(tr.snapshots - theta_star, axis=1), tr.status, tr.snapshots[0] - theta_star


def iterate_errors(H, lr: float, beta: float, e0, steps: int) -> np.ndarray:
    """||e_t||, t = 0..steps, by powers of the explicit iteration matrix (numpy; an independent
    reference for the training loop): (e_{t+1}, e_t) = M (e_t, e_{t-1}), e_{-1} = e_0 (torch's
    momentum buffer starts at the first gradient, i.e. no velocity before step 0)."""
    M = heavy_ball_matrix(H, lr, beta)
    e0 = np.asarray(e0, dtype=np.float64)
    s = np.concatenate([e0, e0])
    out = [np.linalg.norm(e0)]
    for _ in range(steps):
        s = M @ s
        out.append(np.linalg.norm(s[: len(e0)]))
    return np.asarray(out)


def steps_to(errors: np.ndarray, tol: float) -> int | None:
    """First t with e_t <= tol * e_0 (None if never)."""
    hit = np.flatnonzero(errors <= tol * errors[0])
    return int(hit[0]) if len(hit) else None


SCHEDULE_NAMES = ("constant", "step", "exponential", "cosine", "warmup", "warmup+cosine")


def build_schedule(name: str, optimizer, steps: int, *, warmup_frac: float = 0.1):
    """A registry schedule (``losslab.optim.make_schedule``), or ``"a+b"``: schedule a for the first
    warmup_frac * steps steps, then b over the rest (torch's SequentialLR), e.g. warmup+cosine."""
    from ..optim import make_schedule

    if "+" not in name:
        return make_schedule(name, optimizer, steps=steps)
    a, b = name.split("+", 1)
    w = max(1, int(round(warmup_frac * steps)))
    if w >= steps:
        raise ValueError(f"warmup of {w} steps leaves nothing of a {steps}-step run; lower warmup_frac")
    first = make_schedule(a, optimizer, steps=w, **({"warmup_steps": w} if a == "warmup" else {}))
    second = make_schedule(b, optimizer, steps=steps - w)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [first, second], milestones=[w])


def noisy_quadratic_sgd(eigenvalues, *, lr: float, noise: float, steps: int, walkers: int, x0=None,
                        schedule: str = "constant", window: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """SGD ("sgd" from the optimizer registry) on f(x) = 1/2 sum l_i x_i^2 with gradients l x + s xi,
    xi ~ N(0, I), for ``walkers`` independent copies (one (W, d) float64 tensor; SGD acts elementwise,
    so the walkers do not interact) under a schedule from :func:`build_schedule`.

    Returns ``lr`` (T,) the rate each step used, ``loss_mean``/``loss_se`` (T+1,) the walkers' mean
    f(x_t) and its standard error, ``final`` (W, d) the last iterates, and, if ``window`` is given,
    ``window_sq`` (W, d): each walker's time-average of x_i^2 over the last ``window`` steps.
    """
    from ..optim import make_optimizer

    lam = torch.as_tensor(np.asarray(eigenvalues, dtype=np.float64))
    if lam.ndim != 1 or len(lam) == 0 or bool((lam <= 0).any()):
        raise ValueError(f"eigenvalues must be a non-empty 1-D list of positive numbers, got {eigenvalues!r}")
    if walkers < 2 or steps < 1:
        raise ValueError(f"need walkers >= 2 and steps >= 1, got walkers={walkers}, steps={steps}")
    if window is not None and not (1 <= window <= steps):
        raise ValueError(f"window must lie in [1, steps={steps}], got {window}")
    if not (noise >= 0 and math.isfinite(noise)):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    d = len(lam)
    start = torch.ones(d, dtype=torch.float64) if x0 is None else torch.as_tensor(np.asarray(x0, dtype=np.float64))
    if start.shape != (d,):
        raise ValueError(f"x0 must have one entry per eigenvalue ({d}), got shape {tuple(start.shape)}")
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.nn.Parameter(start.repeat(walkers, 1))  # (W, d)
    opt = make_optimizer("sgd", [x], lr=lr)
    sched = build_schedule(schedule, opt, steps)

    def loss(v):  # (W,)
        return 0.5 * (lam * v * v).sum(dim=1)

    lrs, means, ses = [], [], []
    sq = torch.zeros(walkers, d, dtype=torch.float64)
    with torch.no_grad():
        for t in range(steps + 1):
            f = loss(x)
            means.append(float(f.mean()))
            ses.append(float(f.std() / math.sqrt(walkers)))
            if window is not None and t > steps - window:
                sq += x * x
            if t == steps:
                break
            x.grad = lam * x + noise * torch.randn(walkers, d, generator=gen, dtype=torch.float64)
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    out = {"lr": np.asarray(lrs), "loss_mean": np.asarray(means), "loss_se": np.asarray(ses),
           "final": x.detach().numpy().copy()}
    if window is not None:
        out["window_sq"] = (sq / window).numpy()
    return out


# --- the experiment ---------------------------------------------------------------------------------
@register("schedules_and_momentum", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, tol: float | None = None, sweep_betas: list[float] | None = None,
        sweep_steps: int | None = None, noise_eigenvalues: tuple[float, ...] = (1.0, 0.1), noise_lr: float = 0.5,
        noise: float = 0.1, walkers: int | None = None, noise_steps: int | None = None,
        schedules: tuple[str, ...] = SCHEDULE_NAMES) -> ExperimentResult:
    """Part 1: GD vs heavy ball on the seven-point bowl and a beta sweep; part 2: SGD with additive
    gradient noise on a diagonal quadratic under schedules.

    Quick: tolerance 1e-6, 6 betas x 400 steps, 2000 walkers x 600 steps. Full: tolerance 1e-10,
    12 betas x 800 steps, 10000 walkers x 1500 steps.
    """
    tol = tol if tol is not None else (1e-6 if quick else 1e-10)
    sweep_steps = sweep_steps or (400 if quick else 800)
    walkers = walkers or (2000 if quick else 10000)
    noise_steps = noise_steps or (600 if quick else 1500)
    for s in schedules:
        for part in s.split("+"):
            from ..optim import SCHEDULES

            SCHEDULES.get(part)  # unknown names raise, listing the valid ones
    if "constant" not in schedules:
        raise ValueError("schedules must include 'constant' (the noise-floor reference)")
    if not (0 < tol < 1):
        raise ValueError(f"tol must lie in (0, 1), got {tol!r}")

    # ============ part 1: momentum on the seven-point bowl ============
    _, H, eig, theta_star = _bowl()
    lmin, lmax = float(eig[0]), float(eig[-1])
    kappa = lmax / lmin
    lr_gd = 2.0 / (lmin + lmax)
    rate_gd = (kappa - 1) / (kappa + 1)
    lr_hb, beta_hb, rate_hb = polyak_parameters(lmin, lmax)
    # independent closed form: spectral radius of the explicit 4x4 iteration matrix
    rho_matrix_gd = float(np.max(np.abs(np.linalg.eigvals(np.eye(2) - lr_gd * H))))
    rho_matrix_hb = float(np.max(np.abs(np.linalg.eigvals(heavy_ball_matrix(H, lr_hb, beta_hb)))))
    # run lengths: long enough to reach tol and leave a late window above round-off
    steps_gd = int(math.ceil(math.log(min(tol, 1e-6) / 10) / math.log(rate_gd)))
    # (heavy ball: to below the 1e-11 window floor at any tol, 1.5x since the double root's factor t delays it)
    steps_hb = int(math.ceil(1.5 * math.log(min(tol, 1e-12) / 10) / math.log(rate_hb)))
    e_gd, st_gd, e0 = bowl_errors(optimizer="gd", lr=lr_gd, steps=steps_gd, seed=seed)
    e_hb, st_hb, _ = bowl_errors(optimizer="momentum", lr=lr_hb, beta=beta_hb, steps=steps_hb, seed=seed)
    meas_gd, T_gd = late_rate(e_gd)
    meas_hb, T_hb = late_rate(e_hb)
    n_gd, n_hb = steps_to(e_gd, tol), steps_to(e_hb, tol)
    # reference: the same iterations by powers of the explicit iteration matrices (numpy)
    ref_gd, ref_hb = iterate_errors(H, lr_gd, 0.0, e0, steps_gd), iterate_errors(H, lr_hb, beta_hb, e0, steps_hb)
    nref_gd, nref_hb = steps_to(ref_gd, tol), steps_to(ref_hb, tol)
    speedup = (n_gd / n_hb) if (n_gd and n_hb) else float("nan")
    speedup_pred = math.log(rate_hb) / math.log(rate_gd)
    # marginal speed-up: steps for the last factor 100 of the tolerance. The total ratio n_gd/n_hb
    # approaches sqrt(kappa) only slowly: at Polyak's point the roots are double, the error is
    # ~ (a + b t) rate^t, and the factor t costs heavy ball extra steps early on.
    m_gd, m_hb = steps_to(e_gd, tol * 100), steps_to(e_hb, tol * 100)
    marginal = ((n_gd - m_gd) / (n_hb - m_hb)) if (n_gd and n_hb and m_gd is not None and m_hb is not None
                                                     and n_hb > m_hb) else float("nan")
    # finite-window bias of heavy ball at Polyak's point: both extreme roots are double, so the
    # error behaves like (a + b t) rate^t and a window ratio overestimates the rate by ~ (t_B / t_A)^(1/D)
    D = T_hb // 4
    jordan_bias = ((T_hb - D / 2) / (T_hb - 1.5 * D)) ** (1.0 / D)
    rel_gd = abs(meas_gd / rate_gd - 1)
    rel_hb = abs(meas_hb / rate_hb - 1)

    # beta sweep at Polyak's lr
    if sweep_betas is None:
        base = np.linspace(0.6, 0.97, 6 if quick else 12)
        sweep_betas = sorted(set(np.round(base, 4).tolist()) | {round(beta_hb, 6)})
    betas = np.asarray(sweep_betas, dtype=np.float64)
    meas_sweep, pred_sweep, T_sweep = [], [], []
    for b in betas:
        e, _, _ = bowl_errors(optimizer="momentum", lr=lr_hb, beta=float(b), steps=sweep_steps, seed=seed)
        r, T = late_rate(e)
        meas_sweep.append(r)
        T_sweep.append(T)
        pred_sweep.append(float(heavy_ball_radius(eig, lr_hb, float(b)).max()))
    meas_sweep, pred_sweep = np.asarray(meas_sweep), np.asarray(pred_sweep)
    sweep_rel = np.abs(meas_sweep / pred_sweep - 1)
    fine_b = np.linspace(0.0 if betas.min() <= 0 else betas.min(), min(0.995, betas.max()), 400)
    fine_r = np.array([heavy_ball_radius(eig, lr_hb, float(b)).max() for b in fine_b])

    # ============ part 2: schedules with gradient noise ============
    lam2 = np.asarray(noise_eigenvalues, dtype=np.float64)
    v_star = stationary_variance(lam2, noise_lr, noise)  # raises unless 0 < lr l < 2
    floor_loss = float(0.5 * np.sum(lam2 * v_star))
    x0 = np.ones_like(lam2)
    window = noise_steps // 2
    runs = {}
    for i, name in enumerate(schedules):
        runs[name] = noisy_quadratic_sgd(lam2, lr=noise_lr, noise=noise, steps=noise_steps, walkers=walkers, x0=x0,
                                         schedule=name, window=window if name == "constant" else None,
                                         seed=seed * 1000 + i)
    const = runs["constant"]
    # burn-in check: the exact mean recursion says how much of the start is left at the window's start
    t_w = noise_steps - window + 1
    bias_sq = (x0 * (1 - noise_lr * lam2) ** t_w) ** 2
    per_walker = const["window_sq"]  # (W, d)
    floor_meas = per_walker.mean(axis=0)
    floor_se = per_walker.std(axis=0, ddof=1) / math.sqrt(walkers)
    floor_z = np.abs(floor_meas - v_star - bias_sq) / floor_se
    exp_final = {n: float(expected_loss_curve(lam2, r["lr"], noise, x0)[-1]) for n, r in runs.items()}
    final_z = {n: abs(r["loss_mean"][-1] - exp_final[n]) / r["loss_se"][-1] for n, r in runs.items()}
    decaying = [n for n in runs if float(runs[n]["lr"][-1]) < 0.5 * noise_lr]
    below = {n: runs[n]["loss_mean"][-1] + 4 * runs[n]["loss_se"][-1] < floor_loss for n in decaying}

    checks = {
        f"GD at lr = 2/(lmin+lmax): measured rate {meas_gd:.6f} within 1e-4 (rel) of (kappa-1)/(kappa+1) = "
        f"{rate_gd:.6f} (no Jordan block, so the window ratio is exact up to round-off)": rel_gd <= 1e-4,
        f"heavy ball at Polyak's (lr, beta): measured rate {meas_hb:.5f} within 1% (rel) of "
        f"(sqrt(kappa)-1)/(sqrt(kappa)+1) = {rate_hb:.5f} (double roots bias a finite window up by "
        f"~{jordan_bias - 1:.2%})": rel_hb <= 0.01,
        f"closed forms agree with the explicit iteration matrices' spectral radii (GD {rho_matrix_gd:.6f}, "
        f"HB {rho_matrix_hb:.6f}) within 1e-6": abs(rho_matrix_gd - rate_gd) <= 1e-6 and abs(rho_matrix_hb - rate_hb)
        <= 1e-6,
        f"steps to {tol:g} x initial error from the training runs (GD {n_gd}, heavy ball {n_hb}) equal the "
        f"iteration-matrix powers' ({nref_gd}, {nref_hb}) within 1 step": n_gd is not None and n_hb is not None
        and nref_gd is not None and nref_hb is not None and abs(n_gd - nref_gd) <= 1 and abs(n_hb - nref_hb) <= 1,
        f"sqrt(kappa) speed-up: steps for the last factor 100 (to {tol:g}) GD {(n_gd or 0) - (m_gd or 0)} vs "
        f"heavy ball {(n_hb or 0) - (m_hb or 0)}, ratio {marginal:.2f} within 10% of sqrt(kappa) = {math.sqrt(kappa):.2f} (total "
        f"ratio {speedup:.2f}: the double root's factor t costs heavy ball extra steps early)":
            bool(math.isfinite(marginal)) and abs(marginal / math.sqrt(kappa) - 1) <= 0.10,
        f"beta sweep at Polyak's lr: every measured rate within 1% of the closed-form spectral radius "
        f"(max deviation {sweep_rel.max():.2%})": bool(sweep_rel.max() <= 0.01),
        f"constant lr {noise_lr}: measured stationary variance per mode {np.round(floor_meas, 6).tolist()} matches "
        f"lr s^2/(l(2-lr l)) = {np.round(v_star, 6).tolist()} within 4 standard errors (max {floor_z.max():.2f})":
            bool(floor_z.max() <= 4),
        f"every schedule's final mean loss matches the exact mean/variance recursion within 4 standard errors "
        f"(max {max(final_z.values()):.2f})": max(final_z.values()) <= 4,
        f"decaying schedules ({', '.join(decaying)}) end below the constant-lr floor {floor_loss:.4g} "
        f"(mean + 4 SE)": bool(decaying) and all(below.values()),
    }

    summary = {"lambda_min": lmin, "lambda_max": lmax, "kappa": kappa, "sqrt_kappa": math.sqrt(kappa),
               "lr_gd": lr_gd, "rate_gd_closed_form": rate_gd, "rate_gd_measured": meas_gd,
               "lr_hb": lr_hb, "beta_hb": beta_hb, "rate_hb_closed_form": rate_hb, "rate_hb_measured": meas_hb,
               "rate_hb_window_bias": jordan_bias, "rho_matrix_gd": rho_matrix_gd, "rho_matrix_hb": rho_matrix_hb,
               "tol": tol, "steps_to_tol_gd": n_gd, "steps_to_tol_hb": n_hb, "speedup_measured": speedup,
               "steps_to_tol_gd_matrix": nref_gd, "steps_to_tol_hb_matrix": nref_hb, "speedup_marginal": marginal,
               "speedup_predicted_log_ratio": speedup_pred, "sweep_max_rel_error": float(sweep_rel.max()),
               "status_gd": st_gd, "status_hb": st_hb,
               "noise_lr": noise_lr, "noise": noise, "walkers": walkers, "noise_steps": noise_steps,
               "floor_loss_closed_form": floor_loss, "floor_max_z": float(floor_z.max()),
               "schedule_final_max_z": float(max(final_z.values()))}
    for i, l in enumerate(lam2):
        summary[f"stationary_var_closed_form_l{l:g}"] = float(v_star[i])
        summary[f"stationary_var_measured_l{l:g}"] = float(floor_meas[i])
        summary[f"stationary_var_se_l{l:g}"] = float(floor_se[i])
    for n, r in runs.items():
        summary[f"final_loss_{n}"] = float(r["loss_mean"][-1])
        summary[f"final_loss_se_{n}"] = float(r["loss_se"][-1])
        summary[f"final_loss_expected_{n}"] = exp_final[n]

    arrays = {"hessian": H, "eigenvalues": eig, "theta_star": theta_star, "errors/gd": e_gd, "errors/hb": e_hb,
              "sweep/beta": betas, "sweep/measured": meas_sweep, "sweep/closed_form": pred_sweep,
              "sweep/usable_steps": np.asarray(T_sweep), "sweep/fine_beta": fine_b, "sweep/fine_rate": fine_r,
              "noise/eigenvalues": lam2, "noise/stationary_var": v_star, "noise/measured_var": floor_meas,
              "noise/measured_var_se": floor_se}
    for n, r in runs.items():
        arrays[f"schedule/{n}/lr"] = r["lr"]
        arrays[f"schedule/{n}/loss_mean"] = r["loss_mean"]
        arrays[f"schedule/{n}/loss_se"] = r["loss_se"]
        arrays[f"schedule/{n}/expected"] = expected_loss_curve(lam2, r["lr"], noise, x0)

    t_gd, t_hb = np.arange(len(e_gd), dtype=float), np.arange(len(e_hb), dtype=float)
    figs = (
        Figure(key="momentum_vs_gd", title="Seven-point bowl: ||theta_t - theta*|| for tuned GD and Polyak's heavy ball",
               kind="lines", x_label="step", y_label="||theta_t - theta*||", log_y=True,
               series=(Series(f"GD lr={lr_gd:.4g}", t_gd, e_gd),
                       Series(f"heavy ball lr={lr_hb:.4g}, beta={beta_hb:.4f}", t_hb, e_hb),
                       Series("e_0 ((kappa-1)/(kappa+1))^t", t_gd, e_gd[0] * rate_gd ** t_gd, dash=True),
                       Series("e_0 ((sqrt k-1)/(sqrt k+1))^t", t_hb, e_hb[0] * rate_hb ** t_hb, dash=True)),
               hlines=((f"tol {tol:g} x e_0", tol * e_gd[0]),),
               caption=(f"losslab.train runs (float64) on seven_points; kappa = {kappa:.1f}. Measured late-window "
                        f"rates: GD {meas_gd:.6f} (closed form {rate_gd:.6f}), heavy ball {meas_hb:.5f} "
                        f"({rate_hb:.5f}). Steps to {tol:g}: GD {n_gd}, heavy ball {n_hb} (x{speedup:.1f}; the last "
                        f"factor 100 x{marginal:.1f}; sqrt(kappa) = {math.sqrt(kappa):.1f})."),
               settings={"seed": seed, "tol": tol}),
        Figure(key="beta_sweep", title=f"Heavy-ball rate vs beta at lr = {lr_hb:.4g} (Polyak's lr)", kind="lines",
               x_label="beta", y_label="per-step contraction rate",
               series=(Series("closed form: max |root| of z^2-(1+beta-lr l)z+beta", fine_b, fine_r, dash=True),
                       Series("measured (late window of ||theta_t - theta*||)", betas, meas_sweep, mode="markers")),
               hlines=(("1 (stability edge)", 1.0), ("Polyak rate", rate_hb)),
               caption=(f"{len(betas)} momentum runs of {sweep_steps} steps. Below beta ~ lr lmax/2 - 1 = "
                        f"{lr_hb * lmax / 2 - 1:.4f} the stiff mode diverges (rate > 1); above Polyak's beta* = "
                        f"{beta_hb:.4f} all roots are complex with modulus sqrt(beta). Max deviation "
                        f"{sweep_rel.max():.2%}."),
               table={f"beta={b:.4f}": {"measured": m, "closed_form": p} for b, m, p in zip(betas, meas_sweep, pred_sweep)}),
        Figure(key="schedule_loss", title="SGD with gradient noise: mean loss under learning-rate schedules",
               kind="lines", x_label="step", y_label="mean f(x_t) over walkers", log_y=True,
               series=tuple(Series(n, np.arange(noise_steps + 1, dtype=float), r["loss_mean"],
                                   band_lo=r["loss_mean"] - 2 * r["loss_se"], band_hi=r["loss_mean"] + 2 * r["loss_se"])
                            for n, r in runs.items())
               + tuple(Series(f"{n} (exact recursion)", np.arange(noise_steps + 1, dtype=float),
                              arrays[f"schedule/{n}/expected"], dash=True) for n in runs),
               hlines=((f"constant-lr floor {floor_loss:.3g}", floor_loss),),
               caption=(f"{walkers} walkers on f = 1/2 sum l x^2, l = {lam2.tolist()}, gradient noise s = {noise}, "
                        f"base lr {noise_lr}, from x0 = 1. Constant lr settles at the floor "
                        f"sum lr s^2/(2(2-lr l)) = {floor_loss:.4g}; decaying schedules go below it. Dashed: exact "
                        f"mean/variance recursion under each run's lr sequence."),
               table={n: {"final_mean_loss": float(r["loss_mean"][-1]), "se": float(r["loss_se"][-1]),
                          "expected": exp_final[n]} for n, r in runs.items()}),
        Figure(key="schedule_lr", title="The learning-rate schedules (losslab.optim SCHEDULES)", kind="lines",
               x_label="step", y_label="learning rate",
               series=tuple(Series(n, np.arange(noise_steps, dtype=float), r["lr"]) for n, r in runs.items())),
    )
    text = (f"On the seven-point bowl (kappa = {kappa:.0f}) tuned gradient descent contracts by {meas_gd:.5f} per step "
            f"(closed form {rate_gd:.5f}) and Polyak's heavy ball by {meas_hb:.4f} ({rate_hb:.4f}); reaching "
            f"{tol:g} of the initial error takes {n_gd} vs {n_hb} steps, {speedup:.1f}x, and the last factor 100 "
            f"{marginal:.1f}x (sqrt(kappa) = {math.sqrt(kappa):.1f}; the total lags because Polyak's double root "
            f"makes the error ~ t rate^t). With additive gradient noise, constant-lr SGD settles at the variance "
            f"lr s^2/(l(2-lr l)) (measured {np.round(floor_meas, 5).tolist()} vs {np.round(v_star, 5).tolist()}); "
            f"decaying schedules end below the floor {floor_loss:.3g}: "
            + ", ".join(f"{n} {runs[n]['loss_mean'][-1]:.3g}" for n in decaying) + ".")
    return measured("schedules_and_momentum", summary=summary, checks=checks,
                    figures=figs, arrays=arrays,
                    settings={"quick": quick, "seed": seed, "tol": tol, "sweep_betas": betas.tolist(),
                              "sweep_steps": sweep_steps, "noise_eigenvalues": lam2.tolist(),
                              "noise_lr": noise_lr, "noise": noise, "walkers": walkers,
                              "noise_steps": noise_steps, "schedules": list(schedules)},
                    text=text)
