"""Experiment ``gradient_scale``: conditioning, initialization scale and exploding gradients.

Three measurements of how the *scale* of inputs, weights and recurrent Jacobians sets the
scale of gradients (seed 002: vanishing gradients in deep feedforward nets, weight
initialization, normalising/standardising inputs; seed 003: exploding gradients in RNNs).

1. Preprocessing and conditioning. Linear regression with mse, f(x) = w.x + b, has the constant
   Hessian H = (2/N) A^T A with A = [X, 1] (N, d+1). Its condition number kappa =
   lambda_max / lambda_min is computed in closed form before and after standardising X
   (``losslab.data.Standardizer``), and checked against the eigenvalues of losslab's exact
   autodiff Hessian (``losslab.hessian.exact_spectrum``). Gradient descent at lr = 1/lambda_max
   (``losslab.train``, optimizer ``gd``, float64) is run until the relative excess loss
   (L_t - L*) / (L_0 - L*) falls below eps. On a quadratic the error in eigendirection i decays
   as (1 - lambda_i / lambda_max)^t, so the excess loss is exactly
   E(t) = sum_i (lambda_i / 2) c_i^2 (1 - lambda_i / lambda_max)^(2t), c = V^T (theta_0 - theta*)
   (the *modal prediction*), and E(t)/E(0) <= (1 - 1/kappa)^(2t), so
   t <= ceil(log(eps) / (2 log(1 - 1/kappa))) (the *kappa bound*).
2. Initialization scale in a deep tanh MLP (no biases, weights N(0, sigma_w^2 / fan_in) via
   ``init="xavier"`` x ``init_scale`` on square hidden layers). Backprop gives
   delta_l = tanh'(h_l) * W_{l+1}^T delta_{l+1}, so in the wide limit
   E||delta_l||^2 = chi_l E||delta_{l+1}||^2 with chi_l = sigma_w^2 E_z[tanh'(sqrt(q_l) z)^2] and
   q_{l+1} = sigma_w^2 E_z[tanh(sqrt(q_l) z)^2] + sigma_b^2 (Poole et al. 2016, eq. 3;
   Schoenholz et al. 2017, eq. 5 and 9), z ~ N(0, 1), evaluated by Gauss-Hermite quadrature.
   The per-example weight gradient is the rank-one delta_l x_{l-1}^T, so
   ||dL_n/dW_l|| = ||delta_{l,n}|| ||x_{l-1,n}||. Measured: the root-mean-square over examples of
   ||dL_n/dW_l|| per layer at init; reference: the mean-field profile from the recursion,
   anchored at the top hidden layer and at the measured input norm. Its log-slope per layer is
   compared with the measured one; also the training loss after K steps against sigma_w.
3. Exploding gradients in a tanh RNN, h_t = tanh(W_ih x_t + W_hh h_{t-1} + b). dL/dh_k =
   (prod_{i=k+1}^T diag(1 - h_i^2) W_hh)^T dL/dh_T (Pascanu et al. 2013, eq. 5-7). With
   W_hh = rho Q (Q orthogonal, ``init="orthogonal"`` x ``init_scale=rho``) every eigenvalue has
   modulus rho; in the linear regime (small inputs, tanh' ~ 1) ||dL/dh_k|| = rho^(T-k) ||dL/dh_T||.
   The autograd gradients are checked against the explicit Jacobian product in float64; the
   adding task is trained with and without ``grad_clip``.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..figures import Figure, Series
from .base import ExperimentResult, measured, register

TITLE = "Gradient scale: conditioning, initialization, exploding gradients"
CLAIM = ("standardising inputs shrinks the Hessian's condition number and with it the number of gradient-descent "
         "steps (as predicted by the Hessian's eigenvalues); in a deep tanh net the gradient scale changes by a "
         "factor sqrt(chi) per layer, chi from the mean-field recursion, so it vanishes for small and explodes for "
         "large init gains; a tanh RNN with recurrent spectral radius > 1 has gradients growing geometrically "
         "back in time, and gradient clipping keeps its training finite")

ACTIVATION_FUNCTIONS = {
    "tanh": (np.tanh, lambda u: 1.0 - np.tanh(u) ** 2),
    "linear": (lambda u: u, lambda u: np.ones_like(u)),
}


# ---- 1. conditioning of linear regression ------------------------------------------------------
def regression_hessian(X, *, bias: bool = True) -> np.ndarray:
    """The (constant) Hessian (2/N) A^T A of the mse of f(x) = w.x (+ b), A = [X, 1], float64.

    Parameter order: w_1..w_d then b, as in ``torch.nn.Linear``'s (weight, bias)."""
    A = np.asarray(X, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] < 1:
        raise ValueError(f"X must be a 2-D (N, d) array with N >= 1, got shape {A.shape}")
    if bias:
        A = np.concatenate([A, np.ones((A.shape[0], 1))], axis=1)
    return 2.0 / A.shape[0] * A.T @ A


def condition_number(H: np.ndarray) -> tuple[np.ndarray, float]:
    """(ascending eigenvalues, lambda_max / lambda_min) of a symmetric positive-definite matrix."""
    ev = np.linalg.eigvalsh(np.asarray(H, dtype=np.float64))
    if ev[0] <= 0:
        raise ValueError(f"the matrix is not positive definite (smallest eigenvalue {ev[0]:.3g}): kappa is infinite; "
                         "are features collinear or constant?")
    return ev, float(ev[-1] / ev[0])


RATIO_FLOOR = 1e-16  # relative excess losses are drawn from here up (float64 rounding below)


def kappa_2x2(x) -> float:
    """kappa of (2/N) [[sum x^2, sum x], [sum x, N]] for a scalar feature x: the 2x2 eigenvalues
    (tr +- sqrt(tr^2 - 4 det)) / 2 in closed form, det = 4 Var(x), tr = 2 (E[x^2] + 1)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    m2, var = float(np.mean(x ** 2)), float(np.var(x))
    tr, det = 2 * (m2 + 1), 4 * var
    if det <= 0:
        raise ValueError("x is constant: the Hessian is singular and kappa is infinite")
    disc = math.sqrt(max(tr * tr - 4 * det, 0.0))  # >= 0 in exact arithmetic: (E x^2 - 1)^2 + 4 (E x)^2
    return (tr + disc) / (tr - disc)


def kappa_bound_steps(kappa: float, eps: float) -> int:
    """Smallest t with (1 - 1/kappa)^(2t) <= eps: gradient descent at lr = 1/lambda_max reaches
    relative excess loss eps in at most this many steps on any quadratic with condition kappa."""
    if not 0 < eps < 1:
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    if kappa < 1:
        raise ValueError(f"kappa must be >= 1, got {kappa}")
    r = 1.0 - 1.0 / kappa
    if r <= 0:
        return 1
    return max(1, math.ceil(math.log(eps) / (2 * math.log(r)) - 1e-12))


def modal_excess(H: np.ndarray, d0: np.ndarray, lr: float, t: np.ndarray) -> np.ndarray:
    """Excess loss E(t) = 1/2 d_t^T H d_t of gradient descent x <- x - lr H d on a quadratic, from
    d_0 = theta_0 - theta*, summed over eigenmodes: sum_i lambda_i/2 c_i^2 (1 - lr lambda_i)^(2t)."""
    ev, V = np.linalg.eigh(H)
    c = V.T @ d0
    t = np.asarray(t, dtype=np.float64)[:, None]
    return (0.5 * ev * c ** 2 * (1 - lr * ev) ** (2 * t)).sum(axis=1)


def first_below(ratio: np.ndarray, eps: float) -> int | None:
    """First index t with ratio[t] <= eps (None if never)."""
    i = np.flatnonzero(ratio <= eps)
    return int(i[0]) if len(i) else None


def _conditioning_case(label: str, X: torch.Tensor, y: torch.Tensor, *, eps: float, seed: int, max_steps: int) -> dict:
    """Closed-form kappa, exact-Hessian check, GD steps vs modal prediction and kappa bound."""
    from ..data import Data
    from ..hessian import exact_spectrum
    from ..models import build
    from ..train import train

    Xd, yd = X.double(), y.double()
    H = regression_hessian(Xd.numpy())
    ev, kappa = condition_number(H)
    model = build("linear", in_dim=X.shape[1], out_dim=1, seed=seed, dtype=torch.float64)
    ev_exact = exact_spectrum(model, Data(Xd, yd), "mse").eigenvalues.numpy()
    A = np.concatenate([Xd.numpy(), np.ones((X.shape[0], 1))], axis=1)
    theta_star = np.linalg.lstsq(A, yd.numpy().ravel(), rcond=None)[0]
    L_star = float(np.mean((A @ theta_star - yd.numpy().ravel()) ** 2))
    theta0 = np.concatenate([model.weight.detach().numpy().ravel(), model.bias.detach().numpy()])
    lr = 1.0 / ev[-1]
    bound = kappa_bound_steps(kappa, eps)
    steps = int(min(max_steps, bound + 2))
    tr = train(model, Data(Xd, yd), loss="mse", optimizer="gd", lr=lr, steps=steps, seed=seed,
               eval_every=steps, snapshot_every=steps, max_snapshots=2, divergence_factor=1e12)
    excess = tr.train_loss - L_star  # loss before each update, t = 0..steps-1
    ratio = excess / excess[0]
    pred = modal_excess(H, theta0 - theta_star, lr, np.arange(steps))
    pred_ratio = pred / pred[0]
    return dict(label=label, kappa=kappa, eigenvalues=ev, eigenvalues_exact=ev_exact,
                eig_rel_err=float(np.max(np.abs(ev_exact - ev)) / ev[-1]), lr=lr, eps=eps, L_star=L_star,
                steps_measured=first_below(ratio, eps), steps_modal=first_below(pred_ratio, eps), steps_bound=bound,
                ratio=ratio, pred_ratio=pred_ratio, status=tr.status)


def conditioning(*, eps: float = 1e-6, seed: int = 0, max_steps: int = 20000, linear_n: int = 200,
                 scales=(1.0, 2.0, 0.5, 1.0), offsets=(3.0, 0.0, -2.0, 1.0)) -> list[dict]:
    """Part 1 for two datasets, each raw and standardised: the chapter's seven points (x offset
    by its mean 3.6) and ``linear`` (dim 4) with columns scaled by ``scales`` and offset by ``offsets``."""
    from ..data import Standardizer, load

    if len(scales) != len(offsets):
        raise ValueError(f"scales and offsets need the same length, got {len(scales)} and {len(offsets)}")
    cases = []
    sp = load("seven_points", seed=seed)
    lin = load("linear", seed=seed, n=linear_n, dim=len(scales), val_fraction=0.0, test_fraction=0.0)
    Xl = lin.train.X * torch.tensor(scales) + torch.tensor(offsets)  # badly scaled, offset features
    for name, X, y in (("seven_points", sp.train.X, sp.train.y), ("linear", Xl, lin.train.y)):
        Xs = Standardizer().fit(X.double()).transform(X.double())
        for kind, Z in (("raw", X), ("standardised", Xs)):
            cases.append(_conditioning_case(f"{name}/{kind}", Z, y, eps=eps, seed=seed, max_steps=max_steps))
    return cases


# ---- 2. initialization scale in a deep tanh MLP -------------------------------------------------
def gauss_hermite(order: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z and weights w with sum w f(z) ~ E_{z~N(0,1)}[f(z)] (probabilists' Hermite)."""
    z, w = np.polynomial.hermite_e.hermegauss(order)
    return z, w / math.sqrt(2 * math.pi)


def mean_field(sigma_w: float, q1: float, depth: int, *, sigma_b: float = 0.0, activation: str = "tanh",
               order: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """Pre-activation variances q_1..q_depth and chi_1..chi_depth of a wide random net.

    q_{l+1} = sigma_w^2 E[phi(sqrt(q_l) z)^2] + sigma_b^2, chi_l = sigma_w^2 E[phi'(sqrt(q_l) z)^2]
    (Poole et al. 2016 eq. 3; Schoenholz et al. 2017 eq. 9), by Gauss-Hermite quadrature.
    For phi(u) = u: q_{l+1} = sigma_w^2 q_l + sigma_b^2 and chi = sigma_w^2 exactly."""
    if activation not in ACTIVATION_FUNCTIONS:
        raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(sorted(ACTIVATION_FUNCTIONS))}")
    if sigma_w <= 0 or q1 < 0 or depth < 1:
        raise ValueError(f"need sigma_w > 0, q1 >= 0, depth >= 1; got {sigma_w}, {q1}, {depth}")
    phi, dphi = ACTIVATION_FUNCTIONS[activation]
    z, w = gauss_hermite(order)
    q, chi = np.empty(depth), np.empty(depth)
    q[0] = q1
    for l in range(depth):
        u = math.sqrt(q[l]) * z
        chi[l] = sigma_w ** 2 * float(w @ dphi(u) ** 2)
        if l + 1 < depth:
            q[l + 1] = sigma_w ** 2 * float(w @ phi(u) ** 2) + sigma_b ** 2
    return q, chi


def mlp_gradient_profile(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, loss: str = "mse") -> dict:
    """Per hidden layer of a bias-free ``losslab.models.MLP`` (Linear/activation pairs): the
    pre-activation second moment q_l = mean_n ||h_{l,n}||^2 / n_l, the mean squared backprop signal
    D_l = mean_n ||dL_n/dh_{l,n}||^2, and the RMS per-example weight-gradient norm
    G_l = sqrt(mean_n ||dL_n/dW_l||^2) (= sqrt(mean_n ||delta_{l,n}||^2 ||x_{l-1,n}||^2), rank one),
    with L_n the per-example loss. Also ||dL/dW_l|| of the mean loss. The model is not changed."""
    import copy

    from ..losses import get_loss

    net = copy.deepcopy(model).double().eval()
    mods = list(net.net) if hasattr(net, "net") else None
    if not mods or not all(isinstance(m, (torch.nn.Linear, torch.nn.Tanh)) for m in mods):
        raise TypeError("mlp_gradient_profile expects a losslab tanh MLP without dropout or batch norm "
                        "(models.build('mlp', activation='tanh'))")
    lf = get_loss(loss)
    x = X.double().reshape(X.shape[0], -1)
    inputs, pre = [], []
    for m in mods:
        if isinstance(m, torch.nn.Linear):
            inputs.append(x)
            x = m(x)
            if len(pre) < sum(isinstance(k, torch.nn.Linear) for k in mods) - 1:
                x.retain_grad()
                pre.append(x)
        else:
            x = m(x)
    per_example = lf.per_example(x, y.double() if y.is_floating_point() else y)  # (N,)
    per_example.sum().backward()  # row n of dL/dh is dL_n/dh_n: examples do not interact
    weights = [m.weight for m in mods if isinstance(m, torch.nn.Linear)]
    n = X.shape[0]
    D = np.array([float((h.grad ** 2).sum(1).mean()) for h in pre])
    # ||dL_n/dW_l||^2 = ||delta_{l,n}||^2 ||x_{l-1,n}||^2 (rank one)
    G = np.array([float(((h.grad ** 2).sum(1) * (a.detach() ** 2).sum(1)).mean()) ** 0.5 for h, a in zip(pre, inputs)])
    q = np.array([float((h.detach() ** 2).mean()) for h in pre])
    act2 = np.array([float((a.detach() ** 2).sum(1).mean()) for a in inputs[: len(pre)]])
    mean_grad = np.array([float(torch.linalg.vector_norm(w.grad)) / n for w in weights[: len(pre)]])
    return dict(q=q, D=D, G=G, input_sq=act2, batch_grad_norm=mean_grad, n_hidden=int(pre[0].shape[1]))


def predicted_profile(prof: dict, sigma_w: float, *, sigma_b: float = 0.0, order: int = 101) -> dict:
    """The mean-field G_l from the recursion: q from the measured q_1, D_l = D_L prod_{k=l}^{L-1} chi_k
    (anchored at the measured top layer D_L), ||x_{l-1}||^2 = n_{l-1} E[tanh(sqrt(q_{l-1}) z)^2] for
    l >= 2 (the measured input norm for l = 1)."""
    L = len(prof["q"])
    q, chi = mean_field(sigma_w, float(prof["q"][0]), L, sigma_b=sigma_b, order=order)
    z, w = gauss_hermite(order)
    D = np.empty(L)
    D[-1] = prof["D"][-1]
    for l in range(L - 2, -1, -1):
        D[l] = chi[l] * D[l + 1]
    xsq = np.empty(L)
    xsq[0] = prof["input_sq"][0]
    n_hidden = prof["n_hidden"]
    for l in range(1, L):
        xsq[l] = n_hidden * float(w @ np.tanh(math.sqrt(q[l - 1]) * z) ** 2)
    return dict(q=q, chi=chi, D=D, G=np.sqrt(D * xsq))


def gaussian_mlp(*, in_dim: int, width: int, depth: int, out_dim: int, sigma_w: float, sigma_b: float, seed: int):
    """A losslab tanh MLP with W_l ~ N(0, sigma_w^2 / fan_in) on square hidden layers (xavier normal
    x ``init_scale`` sigma_w; the first and last layers get 2 sigma_w^2 / (fan_in + fan_out)) and
    biases b ~ N(0, sigma_b^2) from a generator seeded with ``seed``."""
    from ..models import build

    m = build("mlp", in_dim=in_dim, hidden=[width] * depth, out_dim=out_dim, activation="tanh",
              init="xavier", init_scale=sigma_w, seed=seed)
    g = torch.Generator().manual_seed(int(seed) + 7919)
    with torch.no_grad():
        for mod in m.net:
            if isinstance(mod, torch.nn.Linear):
                mod.bias.copy_(sigma_b * torch.randn(mod.bias.shape, generator=g))
    return m


def critical_sigma_w(sigma_b: float, *, q_iters: int = 500, order: int = 61) -> float:
    """The order-to-chaos gain: sigma_w with chi(q*) = 1 at the fixed point q* of the variance map
    (Schoenholz et al. 2017, Fig. 1), by bisection on [0.5, 4]."""
    def chi_star(sw):
        q, chi = mean_field(sw, 1.0, q_iters, sigma_b=sigma_b, order=order)
        return chi[-1]

    lo, hi = 0.5, 4.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if chi_star(mid) < 1 else (lo, mid)
    return 0.5 * (lo + hi)


def log_slope(values: np.ndarray, layers: np.ndarray) -> float:
    """Least-squares slope of log(values) against layer index."""
    return float(np.polyfit(np.asarray(layers, dtype=float), np.log(values), 1)[0])


# ---- 3. exploding gradients in a tanh RNN -------------------------------------------------------
def scaled_orthogonal_rnn(*, rho: float, hidden: int, in_dim: int = 2, out_dim: int = 1, seed: int = 0):
    """A losslab tanh RNN with orthogonal weights times ``rho`` (so W_hh = rho Q has every eigenvalue
    of modulus rho and spectral norm rho) and zero biases (so h = 0 is a fixed point and small
    inputs keep the net in its linear regime)."""
    from ..models import build

    if rho <= 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    m = build("rnn", in_dim=in_dim, hidden=hidden, out_dim=out_dim, init="orthogonal", init_scale=rho, seed=seed)
    with torch.no_grad():
        m.cell.bias_ih.zero_()
        m.cell.bias_hh.zero_()
    return m


def rnn_jacobian_product_norms(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """||dL/dh_k||, k = 1..T, of the mean mse of a losslab tanh RNN, by the explicit product of
    Jacobians in float64 numpy: dL/dh_T = (2/N)(out - y) W_out, dL/dh_{k-1} = dL/dh_k diag(1 - h_k^2) W_hh
    (Pascanu et al. 2013, eq. 5-7): the reference for autograd. The model is not changed."""
    if getattr(model, "kind", None) != "rnn":
        raise TypeError(f"expected a losslab tanh RNN (models.build('rnn')), got {type(model).__name__}")
    with torch.no_grad():
        out, hs = model.forward_states(X.to(next(model.parameters()).dtype))
    H = np.stack([h.double().numpy() for h in hs], axis=1)  # (N, T, H)
    Whh = model.cell.weight_hh.detach().double().numpy()
    Wout = model.readout.weight.detach().double().numpy()  # (C, H)
    r = out.double().numpy() - y.double().numpy().reshape(out.shape)
    g = 2.0 / r.size * r @ Wout  # (N, H): mse is the mean over N and C
    T = H.shape[1]
    norms = np.empty(T)
    for k in range(T - 1, -1, -1):
        norms[k] = np.linalg.norm(g)
        g = (g * (1 - H[:, k] ** 2)) @ Whh  # through h_k = tanh(W_ih x_k + W_hh h_{k-1} + b)
    return norms


# ---- the experiment -----------------------------------------------------------------------------
SLOPE_TOL = 0.04  # nats per layer: finite width; the slope spread over nets is ~0.01-0.02 at width 128
RNN_LINEAR_TOL = 1e-4  # relative: tanh'(h) = 1 - h^2 with |h| <= ~1e-3 at probe scale 1e-8
EIG_TOL = 1e-10


@register("gradient_scale", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, eps: float | None = None, depth: int = 16, width: int = 128,
        train_width: int = 64, gains=(0.5, 1.0, 1.33, 2.0, 3.0), sigma_b2: float = 0.05, n_nets: int | None = None,
        train_steps: int | None = None, train_lr: float = 0.05, rho: float = 1.5, rnn_hidden: int = 32,
        length: int = 30, rnn_steps: int | None = None, rnn_lr: float = 0.1, grad_clip: float = 1.0) -> ExperimentResult:
    """Conditioning before/after standardisation; gradient profiles of a deep tanh MLP vs the mean-field
    recursion over init gains and the training loss after K steps; RNN gradients vs the Jacobian product
    and training with and without gradient clipping. Quick: eps 1e-4, 3 nets per gain, 250 training
    steps, 200 RNN steps; full: eps 1e-6, 6 nets, 400 steps, 1000 RNN steps."""
    from ..data import load
    from ..data.splits import preprocess
    from ..train import train
    from .curves import single_thread
    from .rnn_vs_lstm import state_gradient_norms

    eps = eps or (1e-4 if quick else 1e-6)
    n_nets = n_nets or (3 if quick else 6)
    train_steps = train_steps or (250 if quick else 400)
    rnn_steps = rnn_steps or (200 if quick else 1000)
    gains = tuple(float(g) for g in gains)
    if depth < 3 or len(gains) < 2 or any(g <= 0 for g in gains):
        raise ValueError(f"need depth >= 3 and at least two positive gains, got depth={depth}, gains={gains}")
    settings = dict(quick=quick, seed=seed, eps=eps, depth=depth, width=width, train_width=train_width, gains=list(gains),
                    sigma_b2=sigma_b2, n_nets=n_nets, train_steps=train_steps, train_lr=train_lr, rho=rho,
                    rnn_hidden=rnn_hidden, length=length, rnn_steps=rnn_steps, rnn_lr=rnn_lr, grad_clip=grad_clip)
    summary, checks, arrays, figs = {}, {}, {}, []
    with single_thread():
        # ---- part 1
        cases = conditioning(eps=eps, seed=seed)
        for c in cases:
            key = c["label"].replace("/", "_")
            summary.update({f"{key}_kappa": c["kappa"], f"{key}_gd_steps": c["steps_measured"],
                            f"{key}_modal_steps": c["steps_modal"], f"{key}_bound_steps": c["steps_bound"]})
            arrays[f"conditioning/{c['label']}/eigenvalues"] = c["eigenvalues"]
            arrays[f"conditioning/{c['label']}/excess_ratio"] = c["ratio"]
            arrays[f"conditioning/{c['label']}/modal_ratio"] = c["pred_ratio"]
        sp7 = load("seven_points", seed=seed).train.X.double().numpy().ravel()
        k7 = kappa_2x2(sp7)
        summary["seven_points_raw_kappa_2x2"] = k7
        worst = max(c["eig_rel_err"] for c in cases)
        summary["conditioning_max_eig_rel_err"] = worst
        checks[f"closed-form Hessian (2/N) A^T A eigenvalues match losslab's exact autodiff Hessian (rel {EIG_TOL:g})"] = \
            bool(worst <= EIG_TOL)
        checks["seven points: kappa from the 2x2 closed form matches eigvalsh (rel 1e-10)"] = \
            bool(abs(k7 - cases[0]["kappa"]) <= 1e-10 * k7)
        checks["gradient descent at lr 1/lambda_max reaches eps in the modal-prediction number of steps (+-1)"] = all(
            c["steps_measured"] is not None and c["steps_modal"] is not None
            and abs(c["steps_measured"] - c["steps_modal"]) <= 1 for c in cases)
        checks["gradient descent never needs more steps than the kappa bound ceil(log eps / 2 log(1 - 1/kappa))"] = all(
            c["steps_measured"] is not None and c["steps_measured"] <= c["steps_bound"] for c in cases)
        for name in ("seven_points", "linear"):
            raw, std = [c for c in cases if c["label"].startswith(name + "/")]
            checks[f"{name}: standardising cuts kappa >= 100x and GD steps >= 100x"] = bool(
                raw["kappa"] >= 100 * std["kappa"] and raw["steps_measured"] >= 100 * std["steps_measured"])
        for c in cases:
            # drawn floored at 1e-16: below that, L_t - L* is float64 rounding of the loss, and a value of
            # 1e-300 (or 0) would stretch the log axis over 300 decades; "a: measured" and "a: modal
            # prediction" share a colour (one meaning per case), the prediction dashed
            figs_series = (Series(f"{c['label']}: measured", np.arange(len(c["ratio"])), np.maximum(c["ratio"], RATIO_FLOOR)),
                           Series(f"{c['label']}: modal prediction", np.arange(len(c["pred_ratio"])),
                                  np.maximum(c["pred_ratio"], RATIO_FLOOR), dash=True))
            c["series"] = figs_series
        figs.append(Figure(
            key="conditioning", title="Gradient descent at lr = 1/lambda_max: relative excess loss", kind="lines",
            x_label="step t", y_label="(L_t - L*) / (L_0 - L*)", log_y=True,
            series=tuple(s for c in cases for s in c["series"]), hlines=(("eps", eps),),
            caption=("Linear regression (mse) on the seven points and on `linear` (dim 4, columns scaled and offset), "
                     "raw and standardised. kappa: " + ", ".join(f"{c['label']} {c['kappa']:.4g}" for c in cases)
                     + ". Steps to eps (measured / modal / bound): "
                     + ", ".join(f"{c['label']} {c['steps_measured']}/{c['steps_modal']}/{c['steps_bound']}" for c in cases)
                     + f". Values below {RATIO_FLOOR:g} (float64 rounding of L_t - L*) are drawn at {RATIO_FLOOR:g}."),
            table={c["label"]: {"kappa": c["kappa"], "steps": c["steps_measured"], "bound": c["steps_bound"]} for c in cases}))
        for c in cases:
            del c["series"]

        # ---- part 2
        sigma_b = math.sqrt(sigma_b2)
        sw_crit = critical_sigma_w(sigma_b)
        summary["critical_sigma_w"] = sw_crit
        sp = preprocess(load("spirals", seed=seed, n=400), "standardize")
        Xp, yp = sp.train.X, sp.train.y
        layers = np.arange(1, depth + 1)
        sel = layers >= 2  # layer 1's input is the data, not a tanh layer of the recursion
        slopes_m, slopes_p, chi_end, ratio_m, ratio_p, final_loss = [], [], [], [], [], []
        prof_fig = []
        for g in gains:
            sm, spd, G_all = [], [], []
            for j in range(n_nets):
                net = gaussian_mlp(in_dim=2, width=width, depth=depth, out_dim=2, sigma_w=g, sigma_b=sigma_b,
                                   seed=seed + 101 * j)
                pr = mlp_gradient_profile(net, Xp, yp, "cross_entropy")
                pp = predicted_profile(pr, g, sigma_b=sigma_b)
                sm.append(log_slope(pr["G"][sel], layers[sel]))
                spd.append(log_slope(pp["G"][sel], layers[sel]))
                G_all.append((pr["G"], pp["G"], pp["chi"], pr["q"], pp["q"]))
            slopes_m.append(float(np.mean(sm)))
            slopes_p.append(float(np.mean(spd)))
            chi_end.append(float(G_all[0][2][-1]))
            Gm = np.exp(np.mean([np.log(a[0]) for a in G_all], axis=0))  # geometric mean over nets
            Gp = np.exp(np.mean([np.log(a[1]) for a in G_all], axis=0))
            ratio_m.append(float(Gm[0] / Gm[-1]))
            ratio_p.append(float(Gp[0] / Gp[-1]))
            arrays[f"init/gain_{g:g}/G_measured"] = np.stack([a[0] for a in G_all])
            arrays[f"init/gain_{g:g}/G_meanfield"] = np.stack([a[1] for a in G_all])
            arrays[f"init/gain_{g:g}/chi"] = np.stack([a[2] for a in G_all])
            arrays[f"init/gain_{g:g}/q_measured"] = np.stack([a[3] for a in G_all])
            arrays[f"init/gain_{g:g}/q_meanfield"] = np.stack([a[4] for a in G_all])
            prof_fig += [Series(f"sigma_w {g:g}: measured", layers, Gm, mode="lines+markers"),  # one colour per gain
                         Series(f"sigma_w {g:g}: mean field", layers, Gp, dash=True)]
            # training loss after K steps at this gain (full-batch gradient descent)
            tnet = gaussian_mlp(in_dim=2, width=train_width, depth=depth, out_dim=2, sigma_w=g, sigma_b=sigma_b, seed=seed)
            tr = train(tnet, sp, optimizer="gd", lr=train_lr, steps=train_steps, seed=seed,
                       eval_every=max(1, train_steps // 10), snapshot_every=train_steps, max_snapshots=2)
            final_loss.append(tr.final_loss)
            arrays[f"train/gain_{g:g}/eval_steps"] = tr.eval_steps
            arrays[f"train/gain_{g:g}/train_loss"] = tr.train_eval_loss
            summary[f"gain_{g:g}_train_status"] = tr.status
        G = np.array(gains)
        arrays.update({"init/gains": G, "init/slope_measured": np.array(slopes_m), "init/slope_meanfield": np.array(slopes_p),
                       "init/minus_half_log_chi_star": -0.5 * np.log(chi_end), "train/final_loss": np.array(final_loss)})
        for g, a, b, c_, r, rp, fl in zip(gains, slopes_m, slopes_p, chi_end, ratio_m, ratio_p, final_loss):
            summary.update({f"gain_{g:g}_slope_measured": a, f"gain_{g:g}_slope_meanfield": b,
                            f"gain_{g:g}_chi_deep": c_, f"gain_{g:g}_G1_over_GL": r,
                            f"gain_{g:g}_G1_over_GL_meanfield": rp, f"gain_{g:g}_final_loss": fl})
        dev = np.abs(np.array(slopes_m) - np.array(slopes_p))
        summary["max_slope_deviation"] = float(dev.max())
        checks[f"per-layer log-slope of the weight-gradient norm matches the mean-field recursion within {SLOPE_TOL} "
               "nats/layer at every gain"] = bool(dev.max() <= SLOPE_TOL)
        below = [i for i, g in enumerate(gains) if g < sw_crit * 0.9]
        above = [i for i, g in enumerate(gains) if g > sw_crit * 1.1]
        if below:
            checks["below the critical gain gradients vanish toward the input (||dW_1|| < ||dW_L||, chi < 1)"] = all(
                ratio_m[i] < 1 and chi_end[i] < 1 for i in below)
        if above:
            checks["above the critical gain gradients explode toward the input (||dW_1|| > ||dW_L||, chi > 1)"] = all(
                ratio_m[i] > 1 and chi_end[i] > 1 for i in above)
        i_small, i_crit = int(np.argmin(G)), int(np.argmin(np.abs(G - sw_crit)))
        ln2 = math.log(2)
        checks["the smallest gain (vanishing gradients) stays near chance: loss after K steps > 0.9 ln 2"] = \
            bool(final_loss[i_small] > 0.9 * ln2)
        checks["the gain nearest the critical one trains: loss after K steps < 0.5 ln 2"] = bool(final_loss[i_crit] < 0.5 * ln2)
        figs.append(Figure(
            key="init_gradient_profile", title=f"Deep tanh MLP at init: RMS ||dL_n/dW_l|| per layer (depth {depth})",
            kind="lines", x_label="layer l", y_label="RMS per-example ||dL/dW_l||", log_y=True, series=tuple(prof_fig),
            caption=(f"Width {width}, sigma_b^2 = {sigma_b2}, geometric mean over {n_nets} nets, spirals (standardised). "
                     f"Critical gain (chi* = 1) {sw_crit:.4f}. Measured / mean-field slope per layer: "
                     + ", ".join(f"{g:g}: {a:.3f}/{b:.3f}" for g, a, b in zip(gains, slopes_m, slopes_p)))))
        figs.append(Figure(
            key="init_slope_vs_gain", title="Log-slope of the gradient norm per layer vs init gain", kind="lines",
            x_label="sigma_w", y_label="d log||dW_l|| / dl",
            series=(Series("measured", G, np.array(slopes_m), mode="markers"),
                    Series("mean-field profile", G, np.array(slopes_p), mode="lines+markers", dash=True),
                    Series("-1/2 log chi* (deep limit)", G, -0.5 * np.log(chi_end), dash=True)),
            hlines=(("0 (critical)", 0.0),),
            caption="Positive slope: gradients shrink toward the input (vanishing); negative: they grow (exploding)."))
        figs.append(Figure(
            key="init_train_loss", title=f"Training loss after {train_steps} GD steps vs init gain", kind="lines",
            x_label="sigma_w", y_label="cross-entropy", series=(Series("final train loss", G, np.array(final_loss),
                                                                        mode="lines+markers"),),
            hlines=(("chance ln 2", ln2),),
            caption=(f"Depth {depth}, width {train_width}, full-batch GD lr {train_lr}: "
                     + ", ".join(f"{g:g}: {fl:.4f}" for g, fl in zip(gains, final_loss)))))

        # ---- part 3
        spa = load("adding", seed=seed, n=2000, length=length)
        Xa, ya = spa.val.X[:128].double(), spa.val.y[:128].double()
        rnn = scaled_orthogonal_rnn(rho=rho, hidden=rnn_hidden, seed=seed)
        import copy

        r64 = copy.deepcopy(rnn).double()
        eig = np.abs(np.linalg.eigvals(r64.cell.weight_hh.detach().numpy()))
        ks = np.arange(1, length + 1)
        probe = 1e-8  # inputs and targets scaled down: the linear regime around h = 0
        lin_auto = state_gradient_norms(r64, Xa * probe, ya * probe)
        lin_ref = rnn_jacobian_product_norms(r64, Xa * probe, ya * probe)
        real_auto = state_gradient_norms(r64, Xa, ya)
        real_ref = rnn_jacobian_product_norms(r64, Xa, ya)
        lin_rate = float(np.exp(-log_slope(lin_auto, ks)))
        real_rate = float(np.exp(-log_slope(real_auto, ks)))
        bound = real_auto[-1] * rho ** (length - ks)
        summary.update({"rnn_spectral_radius": float(eig.max()), "rnn_linear_growth_rate": lin_rate,
                        "rnn_real_growth_rate": real_rate, "rnn_real_ratio_h1_over_hT": float(real_auto[0] / real_auto[-1]),
                        "rnn_linear_ratio_h1_over_hT": float(lin_auto[0] / lin_auto[-1])})
        rel = max(float(np.max(np.abs(lin_auto - lin_ref) / lin_ref)), float(np.max(np.abs(real_auto - real_ref) / real_ref)))
        summary["rnn_autograd_vs_jacobian_rel_err"] = rel
        checks["RNN: autograd ||dL/dh_k|| equals the explicit Jacobian product (float64, rel 1e-9)"] = bool(rel <= 1e-9)
        checks[f"RNN: in the linear regime the gradient grows by the spectral radius rho per step (rel {RNN_LINEAR_TOL:g})"] = \
            bool(abs(lin_rate - rho) <= RNN_LINEAR_TOL * rho and abs(eig.max() - rho) <= 1e-6 * rho)
        checks["RNN: on adding inputs the gradient grows back in time but never faster than rho^(T-k) (|tanh'| <= 1)"] = bool(
            real_auto[0] > real_auto[-1] and np.all(real_auto <= bound * (1 + 1e-9)))
        arrays.update({"rnn/k": ks, "rnn/linear_autograd": lin_auto, "rnn/linear_jacobian": lin_ref,
                       "rnn/adding_autograd": real_auto, "rnn/adding_jacobian": real_ref, "rnn/rho_bound": bound})
        figs.append(Figure(
            key="rnn_state_gradients", title=f"Tanh RNN, W_hh = {rho:g} x orthogonal: ||dL/dh_k||", kind="lines",
            x_label="k (time step)", y_label="||dL/dh_k|| / ||dL/dh_T||", log_y=True,
            series=(Series("linear regime (inputs x 1e-8), autograd", ks, lin_auto / lin_auto[-1], mode="markers"),
                    Series(f"rho^(T-k), rho = {rho:g}", ks, rho ** (length - ks), dash=True),
                    Series("adding inputs, autograd", ks, real_auto / real_auto[-1], mode="markers"),
                    Series("adding inputs, Jacobian product", ks, real_ref / real_ref[-1], dash=True)),
            caption=(f"T = {length}, hidden {rnn_hidden}, zero biases. Growth per step: linear regime {lin_rate:.6f} "
                     f"(rho = {rho:g}); adding inputs {real_rate:.4f} (tanh saturation), ||dL/dh_1||/||dL/dh_T|| = "
                     f"{real_auto[0] / real_auto[-1]:.3g}.")))
        runs = {}
        for label, clip in (("no_clip", None), ("clip", grad_clip)):
            tr = train(rnn, spa, loss="mse", optimizer="sgd", lr=rnn_lr, steps=rnn_steps, batch_size=64, seed=seed,
                       grad_clip=clip, eval_every=max(1, rnn_steps // 10), snapshot_every=rnn_steps, max_snapshots=2)
            runs[label] = tr
            summary.update({f"rnn_{label}_status": tr.status, f"rnn_{label}_status_step": tr.status_step,
                            f"rnn_{label}_max_batch_loss": float(np.nanmax(tr.train_loss)),
                            f"rnn_{label}_max_grad_norm": float(np.nanmax(tr.grad_norm)),
                            f"rnn_{label}_final_val_loss": float(tr.val_loss[-1]) if tr.status == "completed" else None})
            arrays.update({f"rnn/{label}/steps": tr.steps, f"rnn/{label}/train_loss": tr.train_loss,
                           f"rnn/{label}/grad_norm": tr.grad_norm})
        nc, cl = runs["no_clip"], runs["clip"]
        checks[f"RNN without clipping (SGD lr {rnn_lr}) diverges (losslab status 'diverged')"] = nc.status == "diverged"
        checks[f"RNN with grad_clip={grad_clip} completes with finite losses, none above 10x the first"] = bool(
            cl.status == "completed" and np.all(np.isfinite(cl.train_loss))
            and np.nanmax(cl.train_loss) <= 10 * cl.train_loss[0])
        figs.append(Figure(
            key="rnn_clipping", title="Adding task, SGD: batch loss with and without gradient clipping", kind="lines",
            x_label="step", y_label="batch mse", log_y=True,
            series=(Series("no clipping", nc.steps, nc.train_loss), Series(f"clip {grad_clip}", cl.steps, cl.train_loss)),
            hlines=(("trivial 1/6", 1 / 6),),
            caption=(f"rho = {rho:g}, T = {length}, SGD lr {rnn_lr}, batch 64. No clipping: {nc.status}"
                     f"{'' if nc.status_step is None else ' at step ' + str(nc.status_step)} ({nc.message}); max gradient "
                     f"norm {np.nanmax(nc.grad_norm):.3g}. Clipped: {cl.status}, max batch loss "
                     f"{np.nanmax(cl.train_loss):.3g}, final validation mse {cl.val_loss[-1]:.4f} (trivial 0.1667).")))
    c = {x["label"]: x for x in cases}
    text = (f"Conditioning: kappa {c['seven_points/raw']['kappa']:.4g} -> {c['seven_points/standardised']['kappa']:.4g} "
            f"(seven points) and {c['linear/raw']['kappa']:.4g} -> {c['linear/standardised']['kappa']:.4g} (linear) after "
            f"standardising; GD steps to eps={eps:g}: {c['seven_points/raw']['steps_measured']} -> "
            f"{c['seven_points/standardised']['steps_measured']} and {c['linear/raw']['steps_measured']} -> "
            f"{c['linear/standardised']['steps_measured']}, each equal to the modal prediction. Deep tanh MLP (depth {depth}): "
            f"gradient log-slope per layer measured vs mean field "
            + ", ".join(f"sigma_w {g:g}: {a:.3f}/{b:.3f}" for g, a, b in zip(gains, slopes_m, slopes_p))
            + f" (critical {sw_crit:.3f}); loss after {train_steps} GD steps "
            + ", ".join(f"{g:g}: {fl:.3f}" for g, fl in zip(gains, final_loss))
            + f". RNN with rho = {rho:g}: gradient growth per step {lin_rate:.5f} in the linear regime, {real_rate:.4f} on "
            f"adding inputs; SGD without clipping {nc.status}, with clip {grad_clip} {cl.status} "
            f"(final validation mse {cl.val_loss[-1]:.4f}).")
    return measured("gradient_scale", summary=summary, checks=checks,
                    figures=tuple(figs), arrays=arrays, settings=settings, text=text)
