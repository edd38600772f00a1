"""Experiment ``perceptron``: from Rosenblatt's step-function perceptron to backpropagation and its
vanishing gradient (seed 002's history notes: "perceptron had step function, was non-differentiable,
backprop came later"; "backprop first applied to ANNs, Rumelhart et al. 86"; "backprop doesn't work well
from scratch (because of vanishing gradient?)").

1. The step perceptron f(x) = step(w.x + b), step(z) = (sign(z) + 1) / 2 (= ``torch.heaviside(z, 1/2)``, which
   has no autograd derivative at all; sign's derivative is defined as 0). Its mean squared error on 0/1
   labels is the misclassification rate: piecewise constant in (w, b). Measured at random parameter
   vectors: the autograd gradient is exactly 0, and so is every central finite difference
   (L(theta + h e_j) - L(theta - h e_j)) / 2h whenever no point's pre-activation z_n changes sign, i.e.
   |z_n| > h |x~_nj| for all n (x~ = (x, 1)). Next to the threshold the difference is 1/(N 2h) or more: a
   jump, not a slope. Gradient descent has nothing to follow.
2. Rosenblatt's rule still learns: w <- w + y_n x~_n on every mistake (y_n w.x~_n <= 0, y in {-1, +1}),
   from w = 0. On data separated by a known unit vector u with margin gamma = min_n y_n u.x~_n and radius
   R = max_n ||x~_n||, Novikoff (1962) bounds the number of updates by (R / gamma)^2; the proof's two
   invariants, u.w_k >= k gamma and ||w_k||^2 <= k R^2, are checked at every update. (The margin of the
   known separator is at most the best margin, so the bound with it is valid, if not the tightest.) On
   XOR, which no line separates, the rule never stops making mistakes (Minsky & Papert 1969).
3. A sigmoid neuron sigma(w.x + b) makes the same problem differentiable. Backpropagation (Rumelhart,
   Hinton & Williams 1986) for its squared error: dL/dz_n = (2/N)(p_n - y_n) p_n (1 - p_n),
   dL/dw = sum_n dL/dz_n x~_n. The autograd gradient is checked against this hand-written chain rule and
   against central finite differences (float64), and gradient descent on it reaches 100% training accuracy.
4. The vanishing gradient of deep sigmoid nets: in a 10-layer MLP at initialization the backpropagated
   error delta_l = sigma'(h_l) * W_{l+1}^T delta_{l+1} shrinks by about sqrt(chi_l) per layer,
   chi_l = fan_in Var(W) mean(sigma'(h_l)^2) (sigma' <= 1/4, so chi <= fan_in Var(W) / 16), which is checked
   layer by layer against chi computed from the measured pre-activations h_l. The per-layer weight-gradient
   norms ||dL/dW_l|| fall geometrically from output to input (a straight line in log scale, fitted); tanh
   (Xavier init) and ReLU (He init) are shown beside it, the ReLU gradients staying within a small factor.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..figures import Figure, Series
from .base import ExperimentResult, measured, register

TITLE = "The perceptron: a step function has no gradient, Rosenblatt's rule learns anyway, backprop needs a sigmoid"
CLAIM = ("the step-function perceptron has zero gradient almost everywhere (autograd and finite differences), yet "
         "Rosenblatt's rule learns linearly separable data within Novikoff's (R/gamma)^2 updates; a sigmoid neuron makes "
         "the problem differentiable and backpropagation trains it; in a deep sigmoid net the gradient vanishes "
         "geometrically from the output to the input, unlike tanh or ReLU with matched initializations")


def augment(X: np.ndarray) -> np.ndarray:
    """x~ = (x, 1): the bias as a weight on a constant input."""
    return np.concatenate([X, np.ones((len(X), 1))], axis=1)


def separable_data(n: int, margin: float, *, dim: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X (n, dim), y in {-1, +1}, u): Gaussian points kept only where |u.x~| >= margin for a random unit
    vector u in R^(dim+1) (a hyperplane that need not pass through 0), labelled y = sign(u.x~)."""
    if n < 2 or not margin > 0:
        raise ValueError(f"need n >= 2 and margin > 0, got n={n}, margin={margin}")
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(dim + 1)
    u[-1] *= 0.3  # an offset, but not one that puts every point on one side
    u /= np.linalg.norm(u)
    keep = []
    while sum(len(k) for k in keep) < n:
        X = rng.standard_normal((4 * n, dim))
        keep.append(X[np.abs(augment(X) @ u) >= margin])
    X = np.concatenate(keep)[:n]
    return X, np.sign(augment(X) @ u), u


def rosenblatt(X: np.ndarray, y: np.ndarray, *, max_epochs: int = 1000, seed: int = 0, u: np.ndarray | None = None):
    """Rosenblatt's perceptron rule from w = 0 on augmented inputs; each epoch visits the points in a fresh
    random order. Stops after the first epoch without a mistake. Returns a dict: w, updates, epochs,
    converged, mistakes per epoch, and (when ``u`` is given) u.w_k and ||w_k||^2 after every update."""
    Xa = augment(np.asarray(X, dtype=float))
    y = np.asarray(y, dtype=float)
    if set(np.unique(y)) - {-1.0, 1.0}:
        raise ValueError("labels must be -1 or +1")
    rng = np.random.default_rng(seed)
    w = np.zeros(Xa.shape[1])
    mistakes, proj, sq = [], [], []
    converged = False
    for _ in range(max_epochs):
        m = 0
        for n in rng.permutation(len(Xa)):
            if y[n] * (w @ Xa[n]) <= 0:  # a mistake (0 counts: from w = 0 every point is one)
                w = w + y[n] * Xa[n]
                m += 1
                if u is not None:
                    proj.append(float(u @ w))
                    sq.append(float(w @ w))
        mistakes.append(m)
        if m == 0:
            converged = True
            break
    return {"w": w, "updates": int(sum(mistakes)), "epochs": len(mistakes), "converged": converged,
            "mistakes": np.array(mistakes), "u_dot_w": np.array(proj), "w_sq": np.array(sq)}


def step(z: torch.Tensor) -> torch.Tensor:
    """The threshold unit, (sign(z) + 1) / 2: 0 below, 1 above, 1/2 at z = 0; autograd's derivative is 0."""
    return (torch.sign(z) + 1) / 2


def neuron_loss(theta: torch.Tensor, Xa: torch.Tensor, y01: torch.Tensor, unit: str) -> torch.Tensor:
    """Mean squared error of a single step or sigmoid unit on 0/1 labels; theta = (w, b)."""
    z = Xa @ theta
    p = step(z) if unit == "step" else torch.sigmoid(z)
    return ((p - y01) ** 2).mean()


def central_differences(f, theta: np.ndarray, h: float) -> np.ndarray:
    """(f(theta + h e_j) - f(theta - h e_j)) / 2h for every coordinate j."""
    e = np.eye(len(theta))
    return np.array([(f(theta + h * e[j]) - f(theta - h * e[j])) / (2 * h) for j in range(len(theta))])


def sigmoid_backprop(theta: np.ndarray, Xa: np.ndarray, y01: np.ndarray) -> np.ndarray:
    """The chain rule by hand (Rumelhart et al. 1986, eq. for output units): dL/dtheta of mean (p - y)^2."""
    p = 1 / (1 + np.exp(-(Xa @ theta)))
    dz = 2.0 / len(y01) * (p - y01) * p * (1 - p)
    return Xa.T @ dz


def layer_gradients(activation: str, init: str, *, depth: int, width: int, in_dim: int, n: int, seed: int):
    """A ``depth``-layer MLP (``depth - 1`` hidden layers of ``width``) at init on Gaussian inputs and targets,
    float64, mse. Returns (||dL/dW_l|| per layer l = 1..depth, ||delta_l|| per hidden layer (the error at its
    pre-activation), predicted sqrt(chi_l) per hidden layer l = 1..depth-2 from the measured pre-activations)."""
    from ..models import build

    model = build("mlp", in_dim=in_dim, hidden=[width] * (depth - 1), out_dim=1, activation=activation, init=init,
                  seed=seed, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed + 7)
    X = torch.randn(n, in_dim, generator=g, dtype=torch.float64)
    Y = torch.randn(n, 1, generator=g, dtype=torch.float64)
    h, pre, lins = X, [], []
    for mod in model.net:
        h = mod(h)
        if isinstance(mod, torch.nn.Linear):
            h.retain_grad()
            pre.append(h)
            lins.append(mod)
    ((h - Y) ** 2).mean().backward()
    wgrad = np.array([float(m.weight.grad.norm()) for m in lins])
    delta = np.array([float(p.grad.norm()) for p in pre[:-1]])  # hidden pre-activations 1..depth-1
    dact = {"sigmoid": lambda u: torch.sigmoid(u) * (1 - torch.sigmoid(u)), "tanh": lambda u: 1 - torch.tanh(u) ** 2,
            "relu": lambda u: (u > 0).double()}[activation]
    # delta_l = act'(h_l) * W_{l+1}^T delta_{l+1}: E||delta_l||^2 = fan_in Var(W_{l+1}) mean(act'(h_l)^2) ||delta_{l+1}||^2
    chi = []
    for l in range(len(pre) - 2):
        W = lins[l + 1].weight.detach()
        var = float(W.var(unbiased=False) + W.mean() ** 2)  # the second moment of the entries
        chi.append(W.shape[1] * var * float((dact(pre[l].detach()) ** 2).mean()))
    return wgrad, delta, np.sqrt(np.array(chi))


@register("perceptron", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, n: int | None = None, margins=(0.05, 0.1, 0.2, 0.4),
        h: float = 1e-4, lr: float = 2.0, steps: int | None = None, depth: int = 10, width: int = 64,
        n_probes: int | None = None, n_nets: int | None = None) -> ExperimentResult:
    """Quick: 100 points per margin, 200 random probes of the step loss, 1,500 GD steps on the sigmoid, 3 nets
    per activation. Full: 400 points, 1,000 probes, 5,000 steps, 10 nets. ``margins``: the separators' margins
    (data rejection-sampled to have at least these); ``h``: the finite-difference step; ``depth``/``width``: the
    deep net's layers (``depth`` linear layers) and width."""
    n = int(n or (100 if quick else 400))
    steps = int(steps or (1500 if quick else 5000))
    n_probes = int(n_probes or (200 if quick else 1000))
    n_nets = int(n_nets or (3 if quick else 10))
    margins = tuple(float(m) for m in margins)
    if not margins or min(margins) <= 0 or not h > 0 or not lr > 0 or depth < 4 or width < 2 or n < 4:
        raise ValueError(f"need positive margins, h > 0, lr > 0, depth >= 4, width >= 2, n >= 4; got margins={margins}, "
                         f"h={h}, lr={lr}, depth={depth}, width={width}, n={n}")

    # -- 2. Rosenblatt's rule against Novikoff's bound, one data set per margin
    nov = []
    for k, m in enumerate(margins):
        X, y, u = separable_data(n, m, seed=seed * 100 + k)
        Xa = augment(X)
        R = float(np.linalg.norm(Xa, axis=1).max())
        gamma = float((y * (Xa @ u)).min())
        r = rosenblatt(X, y, seed=seed * 100 + k, u=u)
        kk = np.arange(1, r["updates"] + 1)
        nov.append(dict(margin=m, R=R, gamma=gamma, bound=(R / gamma) ** 2, updates=r["updates"], epochs=r["epochs"],
                        converged=r["converged"], acc=float(np.mean(np.sign(Xa @ r["w"]) == y)),
                        inv1=bool(np.all(r["u_dot_w"] >= kk * gamma - 1e-9)),
                        inv2=bool(np.all(r["w_sq"] <= kk * R * R + 1e-9)), mistakes=r["mistakes"]))
    Xx = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    yx = np.array([-1.0, 1.0, 1.0, -1.0])
    xor = rosenblatt(Xx, yx, max_epochs=100 if quick else 1000, seed=seed)

    # -- 1. the step unit's gradient, on the widest-margin data set's points (autograd and finite differences)
    X, y, u = separable_data(n, margins[len(margins) // 2], seed=seed * 100 + len(margins) // 2)
    Xa = augment(X)
    y01 = (y > 0).astype(float)
    Xt, yt = torch.tensor(Xa), torch.tensor(y01)
    f_step = lambda t: float(neuron_loss(torch.tensor(t), Xt, yt, "step"))  # noqa: E731
    rng = np.random.default_rng(seed + 1)
    max_auto, max_fd, n_away, n_jump = 0.0, 0.0, 0, 0
    for _ in range(n_probes):
        th = rng.standard_normal(3)
        t = torch.tensor(th, requires_grad=True)
        neuron_loss(t, Xt, yt, "step").backward()
        max_auto = max(max_auto, float(t.grad.abs().max()))
        z = Xa @ th
        if np.all(np.abs(z)[:, None] > h * np.abs(Xa)):  # no sign can change within +-h along any axis
            n_away += 1
            max_fd = max(max_fd, float(np.abs(central_differences(f_step, th, h)).max()))
    # next to the threshold: move the bias so one point sits at z = h/4; the difference in b jumps
    th = u.copy()
    z = Xa @ th
    i0 = int(np.argmin(np.abs(z)))
    th[-1] += h / 4 - z[i0]
    fd_near = central_differences(f_step, th, h)
    jump_b = float(abs(fd_near[-1]))
    n_jump = int(np.sum(np.abs(Xa @ th) < h))  # points within h of the threshold (the jump counts each)

    # -- 3. the sigmoid neuron: backprop vs the hand chain rule vs finite differences; then train it by GD
    th0 = rng.standard_normal(3)
    t = torch.tensor(th0, requires_grad=True)
    neuron_loss(t, Xt, yt, "sigmoid").backward()
    g_auto = t.grad.numpy().copy()
    g_hand = sigmoid_backprop(th0, Xa, y01)
    g_fd = central_differences(lambda q: float(neuron_loss(torch.tensor(q), Xt, yt, "sigmoid")), th0, 1e-6)
    rel_hand = float(np.linalg.norm(g_auto - g_hand) / np.linalg.norm(g_hand))
    rel_fd = float(np.linalg.norm(g_auto - g_fd) / np.linalg.norm(g_fd))
    t = torch.tensor(th0, requires_grad=True)
    opt = torch.optim.SGD([t], lr=lr)
    sig_loss, sig_acc, first_100 = [], [], -1
    for k in range(steps + 1):
        opt.zero_grad()
        L = neuron_loss(t, Xt, yt, "sigmoid")
        acc = float(np.mean(((Xa @ t.detach().numpy()) > 0) == (y01 > 0)))
        sig_loss.append(float(L.detach()))
        sig_acc.append(acc)
        if acc == 1.0 and first_100 < 0:
            first_100 = k
        if k == steps:
            break
        L.backward()
        opt.step()
    # the two losses along one line in (w, b): from the start th0 toward the separator u
    alphas = np.linspace(-0.5, 2.0, 501)
    line = th0[None, :] + alphas[:, None] * (3 * u - th0)[None, :]
    step_line = np.array([f_step(q) for q in line])
    sig_line = np.array([float(neuron_loss(torch.tensor(q), Xt, yt, "sigmoid")) for q in line])

    # -- 4. vanishing gradients at init: sigmoid (default init) vs tanh (Xavier) vs ReLU (He)
    nets = {"sigmoid, default init": ("sigmoid", "default"), "sigmoid, Xavier init": ("sigmoid", "xavier"),
            "tanh, Xavier init": ("tanh", "xavier"), "ReLU, He init": ("relu", "kaiming")}
    deep = {}
    for label, (act, init) in nets.items():
        W, D, C = [], [], []
        for s in range(n_nets):
            wg, dl, ch = layer_gradients(act, init, depth=depth, width=width, in_dim=32, n=256, seed=seed * 100 + s)
            W.append(wg)
            D.append(dl)
            C.append(ch)
        W, D, C = np.array(W), np.array(D), np.array(C)
        gm = np.exp(np.log(W).mean(0))  # geometric mean over nets, per layer
        layers = np.arange(1, depth + 1)
        # the hidden-to-hidden layers 2..depth-1 (all width x width): the input layer's gradient also scales with
        # the inputs' size, the output layer's with the loss; neither is part of the per-layer recursion
        inner = slice(1, depth - 1)
        lg = np.log10(gm[inner])
        slope, icpt = np.polyfit(layers[inner], lg, 1)
        r2 = 1 - np.sum((lg - (slope * layers[inner] + icpt)) ** 2) / np.sum((lg - lg.mean()) ** 2)
        ratio = D[:, :-1] / D[:, 1:]  # ||delta_l|| / ||delta_{l+1}||, l = 1..depth-2
        deep[label] = dict(gm=gm, slope=float(slope), r2=float(r2), per_layer=float(10 ** -slope),
                           first_over_last=float(gm[1] / gm[depth - 2]), ratio=float(np.exp(np.log(ratio).mean())),
                           pred=float(np.exp(np.log(C).mean())),
                           worst=float(np.exp(np.abs(np.log(ratio) - np.log(C)).max())),
                           # per net: the geometric mean over layers of measured / predicted
                           worst_net=float(np.exp(np.abs((np.log(ratio) - np.log(C)).mean(1)).max())))
    sg, rl, th_ = deep["sigmoid, default init"], deep["ReLU, He init"], deep["tanh, Xavier init"]

    summary = {"points per data set": n, **{f"margin {v['margin']:g}: {k}": v[k] for v in nov
                                           for k in ("R", "gamma", "bound", "updates", "epochs")},
               "XOR: epochs run": xor["epochs"], "XOR: mistakes in the last epoch": int(xor["mistakes"][-1]),
               "step unit: random probes": n_probes, "step unit: max |autograd gradient|": max_auto,
               "step unit: probes away from the threshold (FD)": n_away, "step unit: max |central difference| there": max_fd,
               "step unit: |central difference in b| next to the threshold": jump_b,
               "sigmoid: rel. error autograd vs hand chain rule": rel_hand,
               "sigmoid: rel. error autograd vs central differences": rel_fd,
               "sigmoid: GD steps to 100% train accuracy": first_100, "sigmoid: final train accuracy": sig_acc[-1],
               "sigmoid: final mse": sig_loss[-1], "deep net: depth (linear layers)": depth, "deep net: width": width,
               **{f"{k}: gradient factor per layer toward the input (fit)": v["per_layer"] for k, v in deep.items()},
               **{f"{k}: ||dL/dW_2|| / ||dL/dW_{depth - 1}||": v["first_over_last"] for k, v in deep.items()},
               **{f"{k}: log-linear fit R^2": v["r2"] for k, v in deep.items()},
               **{f"{k}: measured ||delta_l|| / ||delta_l+1|| (geo. mean)": v["ratio"] for k, v in deep.items()},
               **{f"{k}: predicted sqrt(chi_l) (geo. mean)": v["pred"] for k, v in deep.items()}}
    worst_nov = max(v["updates"] / v["bound"] for v in nov)
    bounds_txt = ", ".join(f"{v['bound']:.0f}" for v in nov)
    checks = {
        f"the step unit's autograd gradient is exactly 0 at all {n_probes} random parameter vectors "
        f"(max |g| = {max_auto:g})": max_auto == 0.0,
        f"central differences (h = {h:g}) are exactly 0 at all {n_away} probes where no point is within h of the "
        f"threshold (max {max_fd:g})": bool(n_away >= n_probes // 2 and max_fd == 0.0),
        f"next to the threshold the difference in b is a jump, not a slope: {jump_b:.3g} >= 1/(N 2h) = "
        f"{1 / (n * 2 * h):.3g}": bool(jump_b >= 1 / (n * 2 * h) * (1 - 1e-9) and n_jump >= 1),
        f"Rosenblatt's rule reaches 100% training accuracy on every separable set "
        f"({', '.join(str(v['updates']) for v in nov)} updates for margins {', '.join(f'{m:g}' for m in margins)})":
            all(v["converged"] and v["acc"] == 1.0 for v in nov),
        f"within Novikoff's bound (R/gamma)^2 on every set ({bounds_txt}; largest "
        f"updates/bound {worst_nov:.3g})": all(v["updates"] <= v["bound"] for v in nov),
        "the proof's invariants hold after every update: u.w_k >= k gamma and ||w_k||^2 <= k R^2":
            all(v["inv1"] and v["inv2"] for v in nov),
        f"on XOR the rule never converges: mistakes in every one of its {xor['epochs']} epochs":
            bool(not xor["converged"] and np.all(xor["mistakes"] > 0)),
        f"the sigmoid neuron's autograd gradient equals the hand-written chain rule (rel. error {rel_hand:.1e} <= 1e-12) "
        f"and central differences (rel. error {rel_fd:.1e} <= 1e-7; h = 1e-6, O(h^2) truncation)":
            bool(rel_hand <= 1e-12 and rel_fd <= 1e-7),
        f"gradient descent through the sigmoid (backprop) reaches 100% training accuracy (at step {first_100})":
            bool(first_100 >= 0),
        f"in the {depth}-layer sigmoid net (default init) the weight gradient falls geometrically from output to input: "
        f"x{sg['per_layer']:.3g} per layer (log-linear fit over layers 2..{depth - 1}, R^2 {sg['r2']:.3f} >= 0.95), ||dL/dW_2|| / "
        f"||dL/dW_{depth - 1}|| = {sg['first_over_last']:.2e} <= 1e-3":
            bool(sg["per_layer"] < 0.5 and sg["r2"] >= 0.95 and sg["first_over_last"] <= 1e-3),
        f"the error shrinks per layer as the mean-field factor sqrt(chi_l) from the measured pre-activations predicts "
        f"(sigmoid: {sg['ratio']:.4f} vs {sg['pred']:.4f}): every net's geometric mean over layers within 10% (worst "
        f"{max(v['worst_net'] for v in deep.values()):.3f}x), every single layer within 50% (worst "
        f"{max(v['worst'] for v in deep.values()):.3f}x; the mean field is a wide-layer limit, one layer of width "
        f"{width} fluctuates by O(1/sqrt(width)))":
            all(v["worst_net"] <= 1.1 and v["worst"] <= 1.5 for v in deep.values()),
        f"ReLU with He init keeps the gradients within a factor 10 over the layers (||dL/dW_2|| / ||dL/dW_{depth - 1}|| = "
        f"{rl['first_over_last']:.3g}); tanh with Xavier loses less per layer than the sigmoid (a factor nearer 1: "
        f"x{th_['per_layer']:.3g} vs x{sg['per_layer']:.3g})":
            bool(0.1 <= rl["first_over_last"] <= 10 and th_["per_layer"] > sg["per_layer"]),
    }
    layers = np.arange(1, depth + 1, dtype=float)
    cats = np.array([f"gamma {v['gamma']:.3g}" for v in nov])
    figs = (
        Figure("step_vs_sigmoid_line", "The two losses along one line in (w1, w2, b)", "lines",
               "alpha (theta = theta0 + alpha (3u - theta0))", "mse on 0/1 labels",
               (Series("step unit (= error rate)", alphas, step_line), Series("sigmoid unit", alphas, sig_line)),
               caption="The step unit's loss is a staircase: flat (zero gradient) between jumps where a point crosses "
                       "the threshold. The sigmoid's is smooth and slopes toward the separator u.",
               table={k: v for k, v in summary.items() if k.startswith("step unit") or k.startswith("sigmoid")}),
        Figure("novikoff", "Perceptron updates until no mistakes vs Novikoff's bound (R/gamma)^2", "bars",
               "margin gamma of the known separator", "updates",
               (Series("updates made", cats, np.array([v["updates"] for v in nov], float)),
                Series("bound (R/gamma)^2", cats, np.array([v["bound"] for v in nov]))),
               log_y=True, caption=f"{n} points per set, Rosenblatt's rule from w = 0, random order per epoch.",
               table={k: v for k, v in summary.items() if k.startswith("margin")}),
        Figure("mistakes_per_epoch", "Mistakes per epoch: separable sets converge, XOR never does", "lines", "epoch",
               "mistakes", tuple(Series(f"margin {v['margin']:g}", np.arange(1, v["epochs"] + 1, dtype=float),
                                        v["mistakes"].astype(float), mode="lines+markers") for v in nov)
               + (Series("XOR", np.arange(1, xor["epochs"] + 1, dtype=float), xor["mistakes"].astype(float)),),
               caption="An epoch with zero mistakes ends the run."),
        Figure("sigmoid_training", "Gradient descent on the sigmoid neuron (backprop)", "lines", "step", "value",
               (Series("train mse", np.arange(steps + 1, dtype=float), np.array(sig_loss)),
                Series("train accuracy", np.arange(steps + 1, dtype=float), np.array(sig_acc))),
               caption=f"Full-batch gradient descent, lr {lr:g}, from a random start."),
        Figure("vanishing_gradient", f"||dL/dW_l|| per layer at init, {depth}-layer MLPs of width {width}", "lines",
               "layer l (1 = input side)", "weight-gradient norm (geometric mean over nets)",
               tuple(Series(k, layers, v["gm"], mode="lines+markers") for k, v in deep.items()), log_y=True,
               caption=(f"{n_nets} nets per activation, 256 Gaussian inputs of 32 features, mse to Gaussian targets. The "
                        f"sigmoid's gradient shrinks by x{sg['per_layer']:.3g} per layer toward the input; ReLU with He "
                        f"init keeps it level."),
               table={k: v for k, v in summary.items() if k.startswith(tuple(nets))}),
    )
    text = (f"Step unit: autograd gradient 0 at all {n_probes} probes, central differences 0 at the {n_away} away from the "
            f"threshold, a jump of {jump_b:.3g} next to it. Rosenblatt's rule: "
            + ", ".join(f"{v['updates']} updates (bound {v['bound']:.0f}) at margin {v['gamma']:.3g}" for v in nov)
            + f"; XOR: still {int(xor['mistakes'][-1])} mistakes in epoch {xor['epochs']}. Sigmoid neuron: backprop matches "
            f"the chain rule to {rel_hand:.0e} and finite differences to {rel_fd:.0e}; gradient descent reaches 100% train "
            f"accuracy at step {first_100}. {depth}-layer nets at init, gradient factor per layer toward the input: "
            + ", ".join(f"{k} x{v['per_layer']:.3g}" for k, v in deep.items()) + ".")
    arrays = {"line/alpha": alphas, "line/step": step_line, "line/sigmoid": sig_line, "sigmoid/loss": np.array(sig_loss),
              "sigmoid/accuracy": np.array(sig_acc), "xor/mistakes": xor["mistakes"],
              **{f"novikoff/margin{k}/mistakes": v["mistakes"] for k, v in enumerate(nov)},
              "novikoff/updates": np.array([v["updates"] for v in nov]), "novikoff/bound": np.array([v["bound"] for v in nov]),
              **{f"deep/{k}": v["gm"] for k, v in deep.items()}}
    return measured("perceptron", summary=summary, checks=checks, figures=figs, arrays=arrays,
                    settings={"quick": quick, "seed": seed, "n": n, "margins": list(margins), "h": h, "lr": lr,
                              "steps": steps, "depth": depth, "width": width, "probes": n_probes, "nets": n_nets},
                    text=text)
