"""The five deep-linear-network experiments of ``losslab.dln`` as registered phenomena.

Each ``run`` calls the DLN experiment (``dln_runs.py``; the numerics live there) and
converts its frozen result into an ``ExperimentResult``: flat scalar ``summary``, ``checks``
(each claim with the measured number in its text), ``figures`` (``losslab.figures``
descriptions with captions and tables), every array, the settings and a short text.

The converters are also registered (``CONVERTERS``, keyed by the DLN experiment's name) so
``save_result`` can store any DLN result as an experiment run.

Sources: Arora, Cohen, Hazan 2018 (invariants, end-to-end ODE, acceleration by depth);
Menon 2024, arXiv 2411.09004 (balanced manifold, entropy, Riemannian Langevin); Saxe,
McClelland, Ganguli 2014 (learning curves, Eq. (7)-(8)).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..figures import Figure, Series
from ..registry import Registry, call_with_options
from .base import ExperimentResult, register

#: DLN experiment name (``dln_runs.EXPERIMENTS``) -> converter(result) -> ExperimentResult
CONVERTERS: Registry = Registry("dln result converter")

#: registered phenomenon name -> DLN experiment name
PHENOMENON_OF = {"conservation": "dln_conservation", "end_to_end": "dln_end_to_end", "depth": "dln_depth",
                 "saxe": "dln_saxe", "langevin": "dln_langevin"}


def _pos(a) -> np.ndarray:
    """For log-scale axes: non-positive (and non-finite) values become NaN (drawn as gaps), so an
    exact 0 (e.g. a drift at t = 0) is not plotted as -inf. The stored arrays keep the raw values."""
    a = np.asarray(a, dtype=np.float64)
    return np.where(np.isfinite(a) & (a > 0), a, np.nan)


def _f(x) -> float:
    return float(x)


def _run_dln(name: str, quick: bool, seed: int, options: dict):
    from .dln_runs import EXPERIMENTS as DLN

    return call_with_options("dln experiment", name, DLN.get(name), {"quick": quick, "seed": seed, **options})


def to_experiment_result(dln_name: str, result) -> ExperimentResult:
    """Convert a ``losslab.dln`` experiment result (e.g. ``dln_runs.saxe(quick=True)``) to an
    ``ExperimentResult`` (``dln_name``: ``conservation``, ``end_to_end``, ``depth``, ``saxe``, ``langevin``)."""
    return CONVERTERS.get(dln_name)(result)


# -- 1. conservation --------------------------------------------------------------------------
CONSERVATION_TITLE = "Deep linear network: the invariants G_p are conserved by gradient flow, drift O(lr) under GD"
CONSERVATION_CLAIM = ("G_p = W_{p+1}^T W_{p+1} - W_p W_p^T is constant along gradient flow (Arora, Cohen, Hazan 2018, "
                      "Thm. 1); gradient descent changes it by lr^2 per step, so over a fixed time the drift halves "
                      "when the step is halved")


def _conservation(r) -> ExperimentResult:
    flow_max = _f(np.max(r.flow_drift))
    ratios = np.asarray(r.halving_ratios, dtype=float)
    last = _f(ratios[-1])
    lrs, final = r.lrs, r.gd_final_drift
    summary = {"flow_max_drift": flow_max, "final_loss_flow": _f(r.flow_loss[-1]),
               "halving_ratio_smallest_steps": last}
    for lr, d in zip(lrs, final):
        summary[f"gd_final_drift_lr{lr:g}"] = _f(d)
    for k, q in enumerate(ratios):
        summary[f"halving_ratio_lr{lrs[k]:g}"] = _f(q)
    checks = {
        f"max_p ||G_p(t) - G_p(0)||_F along the flow < 1e-9 (measured {flow_max:.2e})": flow_max < 1e-9,
        # the first-order argument (drift = sum of lr^2 terms over T/lr steps) is asymptotic in lr, so the ratio is
        # checked for the two smallest steps; the ratios at larger steps are reported in the table
        f"GD drift ratio for halved step within 20% of 2 (lr {lrs[-2]:g} -> {lrs[-1]:g}: {last:.3f})":
            bool(abs(last / 2 - 1) <= 0.2),
        f"GD drift shrinks every time the step is halved (ratios {', '.join(f'{q:.3g}' for q in ratios)})":
            bool(np.all(ratios > 1)),
        f"GD drift at the smallest step ({final[-1]:.2e}) is > 1e3 x the flow's ({flow_max:.2e})":
            bool(final[-1] > 1e3 * flow_max),
    }
    series = [Series("gradient flow (ODE, rtol 1e-10)", r.times[1:], _pos(r.flow_drift[1:]), mode="lines")]
    series += [Series(f"gradient descent, lr {lr:g}", r.gd_times[1:], _pos(r.gd_drift[i, 1:]), mode="lines+markers")
               for i, lr in enumerate(lrs)]
    s = r.settings
    fig1 = Figure(
        key="dln_invariant_drift", title="Drift of the invariants G_p along gradient flow and gradient descent",
        kind="lines", x_label="time t (GD: lr x step)", y_label="max_p ||G_p(t) - G_p(0)||_F", log_y=True,
        series=tuple(series),
        caption=(f"Widths {s.get('widths')}, random init scale {s.get('init_scale')}, E = 0.5||X - Phi||^2, time "
                 f"0..{s.get('T')}. Measured: the flow keeps G_p to {flow_max:.1e} (solver tolerance); gradient descent "
                 f"drifts by {final[0]:.2e} at lr {lrs[0]:g} down to {final[-1]:.2e} at lr {lrs[-1]:g}. "
                 f"The point t = 0 (drift exactly 0) is left out of the log axis."),
        table={f"lr {lr:g}": {"final drift": _f(final[i]),
                              "ratio to next halved lr": (_f(ratios[i]) if i < len(ratios) else None)}
               for i, lr in enumerate(lrs)} | {"flow": {"max drift": flow_max}},
        settings=dict(s))
    fig2 = Figure(
        key="dln_drift_vs_step", title="GD invariant drift at the final time vs step size",
        kind="lines", x_label="step size lr", y_label="final drift max_p ||G_p(T) - G_p(0)||_F", log_x=True, log_y=True,
        series=(Series("gradient descent (measured)", lrs, _pos(final), mode="lines+markers"),
                Series("slope 1 through the smallest lr (drift ~ lr)", lrs, final[-1] * lrs / lrs[-1], dash=True)),
        caption=(f"Drift at t = {s.get('T')} for each step size; halving ratios "
                 f"{', '.join(f'{q:.3g}' for q in ratios)} (2 = first order in lr)."),
        table={"halving ratios": [_f(q) for q in ratios]}, settings=dict(s))
    text = (f"Gradient flow on a depth-{len(s.get('widths', [])) - 1} linear network keeps every G_p to {flow_max:.1e}; "
            f"gradient descent to the same time drifts by {final[-1]:.2e} at lr {lrs[-1]:g}, and halving the step "
            f"divides the drift by {last:.3f} (first order in lr).")
    return _result("dln_conservation", CONSERVATION_TITLE, CONSERVATION_CLAIM, r, summary, checks, (fig1, fig2), text)


# -- 2. end-to-end ----------------------------------------------------------------------------
END_TO_END_TITLE = "Deep linear network: layer-wise gradient flow from a balanced start follows the end-to-end ODE"
END_TO_END_CLAIM = ("from a balanced start, the product X = W_N...W_1 of the weights' gradient flow solves "
                    "dX/dt = -sum_p (XX^T)^{(N-p)/N} grad E(X) (X^TX)^{(p-1)/N} (Arora, Cohen, Hazan 2018, Thm. 1; "
                    "Menon 2024, Sec. 4); an unbalanced start with the same X(0) does not")


def _end_to_end(r) -> ExperimentResult:
    from ..dln.entropy import entropy

    s = r.settings
    N = int(s.get("N", 0) or 0)
    gap, gap_u, bal = _f(np.max(r.rel_diff)), _f(np.max(r.rel_diff_unbalanced)), _f(np.max(r.balancedness))
    checks = {
        f"layer-wise and end-to-end trajectories agree to 1e-6 (max relative gap {gap:.2e})": gap < 1e-6,
        f"the unbalanced start (same X(0)) leaves the end-to-end ODE: max relative gap {gap_u:.3g} > 1e-2": gap_u > 1e-2,
        f"the balanced start stays balanced: max_p ||G_p(t)|| < 1e-8 (measured {bal:.2e})": bal < 1e-8,
    }
    summary = {"max_rel_diff_balanced": gap, "max_rel_diff_unbalanced": gap_u, "max_balancedness": bal,
               "initial_loss": _f(r.loss_layers[0]), "final_loss": _f(r.loss_layers[-1]),
               "final_loss_end_to_end": _f(r.loss_end_to_end[-1]), "final_loss_unbalanced": _f(r.loss_unbalanced[-1])}
    # the (at most) six entries of X that move most, layer-wise (solid) and by the ODE (dashed)
    T, m, n = r.X_end_to_end.shape
    flat = r.X_end_to_end.reshape(T, m * n)
    pick = np.argsort(-(flat.max(0) - flat.min(0)), kind="stable")[:6]
    series = []
    for k in pick:
        i, j = divmod(int(k), n)
        series.append(Series(f"X[{i},{j}] layer-wise flow", r.times, r.X_layers[:, i, j]))
        series.append(Series(f"X[{i},{j}] end-to-end ODE", r.times, r.X_end_to_end[:, i, j], dash=True))
    fig1 = Figure(
        key="dln_end_to_end_entries", title="Entries of X(t): layer-wise gradient flow vs the end-to-end ODE",
        kind="lines", x_label="time t", y_label="entry of X(t)", series=tuple(series),
        caption=(f"Widths {s.get('widths')}, E = 0.5||X - Phi||^2, balanced (rotated) factorization of X(0) = "
                 f"{s.get('x0_scale')} x N(0, 1). The {len(pick)} entries with the largest range are shown; solid: the "
                 f"product of the weights integrated layer by layer, dashed: the end-to-end ODE. Measured max relative gap "
                 f"||X_layers - X_e2e||_F / ||X_e2e||_F = {gap:.2e}."),
        table={"max relative gap (balanced start)": gap, "max relative gap (unbalanced start)": gap_u,
               "max balancedness": bal}, settings=dict(s))
    fig2 = Figure(
        key="dln_end_to_end_gap", title="Relative gap to the end-to-end ODE: balanced vs unbalanced start",
        kind="lines", x_label="time t", y_label="||X(t) - X_e2e(t)||_F / ||X_e2e(t)||_F", log_y=True,
        series=(Series("balanced start", r.times, _pos(r.rel_diff)),
                Series(f"unbalanced start (W_1 x {s.get('unbalance')}, W_2 / {s.get('unbalance')})", r.times,
                       _pos(r.rel_diff_unbalanced))),
        caption=(f"Balanced start: gap stays at the ODE solvers' tolerance (max {gap:.1e}); unbalanced start with the "
                 f"same X(0): up to {gap_u:.3g}. Exact zeros (t = 0) are gaps on the log axis."),
        table={"balanced": gap, "unbalanced": gap_u}, settings=dict(s))
    figs = [fig1, fig2]
    arrays_extra = {}
    if m == n and N >= 1:  # entropy of the fiber over X (square X only)
        S = np.array([entropy(X, N) for X in r.X_layers])
        arrays_extra["entropy_layers"] = S
        summary["initial_entropy"], summary["final_entropy"] = _f(S[0]), _f(S[-1])
        figs.append(Figure(
            key="dln_end_to_end_entropy", title="Loss and entropy of the fiber along the balanced flow",
            kind="lines", x_label="time t", y_label="value",
            series=(Series("loss E(X(t))", r.times, r.loss_layers),
                    Series("entropy S(X(t)) = 0.5 log[van(s^2)/van(s^{2/N})]", r.times,
                           np.where(np.isfinite(S), S, np.nan))),
            caption=(f"Along the layer-wise flow from the balanced start: the loss falls from {r.loss_layers[0]:.4g} to "
                     f"{r.loss_layers[-1]:.4g}; the entropy (Menon 2024, Sec. 5; additive constant 0) goes from "
                     f"{S[0]:.4g} to {S[-1]:.4g}."),
            table={"initial": {"loss": _f(r.loss_layers[0]), "entropy": _f(S[0])},
                   "final": {"loss": _f(r.loss_layers[-1]), "entropy": _f(S[-1])}}, settings=dict(s)))
    text = (f"From a balanced start of a depth-{N} network the layer-wise gradient flow and the end-to-end ODE agree to "
            f"{gap:.1e} (relative) over t in [0, {s.get('T')}]; starting unbalanced with the same X(0) they differ by "
            f"up to {gap_u:.3g}.")
    return _result("dln_end_to_end", END_TO_END_TITLE, END_TO_END_CLAIM, r, summary, checks, tuple(figs), text,
                   arrays_extra)


# -- 3. depth ---------------------------------------------------------------------------------
DEPTH_TITLE = "Deep linear network: depth accelerates gradient descent on lp regression (p = 4); p = 2 as a control"
DEPTH_CLAIM = ("overparametrizing w by a product w_N...w_2 W_1 acts as a preconditioner that speeds up gradient descent "
               "on lp regression with p > 2 (Arora, Cohen, Hazan 2018, Sec. 7-8), learning rates tuned per depth")


#: display floor for the relative excess loss: E* comes from BFGS (gtol 1e-12), so (E - E*)/E* below
#: ~1e-10 is rounding (it reaches ~1e-17 and small negative values once GD has converged)
DEPTH_FLOOR = 1e-10


def _depth(r) -> ExperimentResult:
    s = r.settings
    ps, depths, mst = r.ps, r.depths, r.mean_steps_to_target
    max_steps = int(s.get("max_steps", r.steps[-1]))
    summary: dict = {}
    for k, p in enumerate(ps):
        for i, N in enumerate(depths):
            summary[f"p{p:g}_depth{int(N)}_mean_steps_to_target"] = _f(mst[k, i])
            summary[f"p{p:g}_depth{int(N)}_best_lr"] = _f(r.best_lr[k, i])
        if len(depths) > 1:
            summary[f"p{p:g}_speedup_depth2_vs_1"] = _f(mst[k, 0] / mst[k, 1])
    checks = {}
    k4 = int(np.argmax(ps != 2)) if np.any(ps != 2) else 0
    p = ps[k4]
    if len(depths) > 1 and depths[0] == 1 and depths[1] == 2:
        checks[f"depth 2 reaches 1.01 x optimum in fewer steps than depth 1 (p={p:g}): mean {mst[k4, 1]:g} vs "
               f"{mst[k4, 0]:g} steps"] = bool(mst[k4, 1] < mst[k4, 0])
    reached = r.steps_to_target[k4] <= max_steps
    checks[f"every depth reaches the target in every seed (p={p:g}, <= {max_steps} steps)"] = bool(reached.all())
    figs = []
    for k, pk in enumerate(ps):
        figs.append(Figure(
            key=f"dln_depth_p{pk:g}", title=f"Relative excess loss vs steps per depth, p = {pk:g}",
            kind="lines", x_label="gradient descent step", y_label="(E - E*) / E* (mean over seeds)", log_y=True,
            series=tuple(Series(f"depth {int(N)} (lr {r.best_lr[k, i]:.3g})", r.steps,
                                _pos(np.maximum(r.curves[k, i], DEPTH_FLOOR))) for i, N in enumerate(depths)),
            hlines=(("target 1.01 E*", 0.01),),
            caption=(f"lp regression, d = {s.get('d')}, n = {s.get('n')}, noise {s.get('noise')}; widths (d, 1, ..., 1), "
                     f"balanced start from the same X(0); learning rate grid-searched per depth over {len(r.lr_grid)} "
                     f"values in [{r.lr_grid[0]:.3g}, {r.lr_grid[-1]:.3g}]; {s.get('n_seeds')} seeds. Mean steps to "
                     f"1.01 E*: " + ", ".join(f"depth {int(N)}: {mst[k, i]:g}" for i, N in enumerate(depths)) +
                     f" ({max_steps + 1} = never). Relative excess below {DEPTH_FLOOR:g} (the accuracy of E*, "
                     f"found by BFGS) is drawn at {DEPTH_FLOOR:g}; the stored curves are unclipped."),
            table={f"depth {int(N)}": {"mean steps to 1.01 E*": _f(mst[k, i]), "best lr": _f(r.best_lr[k, i]),
                                       "steps per seed": [int(v) for v in r.steps_to_target[k, i]]}
                   for i, N in enumerate(depths)},
            settings=dict(s)))
    figs.append(Figure(
        key="dln_depth_steps", title="Mean steps to 1.01 x optimum per depth", kind="bars",
        x_label="depth N", y_label="mean steps to 1.01 E*",
        series=tuple(Series(f"p = {pk:g}", depths.astype(float), mst[k]) for k, pk in enumerate(ps)),
        caption=f"Steps to reach 1.01 E* at each depth's best learning rate (mean over {s.get('n_seeds')} seeds).",
        table={f"p = {pk:g}": {f"depth {int(N)}": _f(mst[k, i]) for i, N in enumerate(depths)} for k, pk in enumerate(ps)},
        settings=dict(s)))
    text = (f"With learning rates tuned per depth, gradient descent on l{p:g} regression needs "
            + ", ".join(f"{mst[k4, i]:g} (depth {int(N)})" for i, N in enumerate(depths))
            + " steps on average to reach 1.01 x the optimum"
            + ("; for p = 2: " + ", ".join(f"{mst[k, i]:g}" for i in range(len(depths))) if len(ps) > 1 else "")
            + ".")
    return _result("dln_depth", DEPTH_TITLE, DEPTH_CLAIM, r, summary, checks, tuple(figs), text)


# -- 4. Saxe ----------------------------------------------------------------------------------
SAXE_TITLE = "Deep linear network: Saxe's learning curves, each mode a logistic curve learned in order of strength"
SAXE_CLAIM = ("with whitened inputs and aligned small init, each mode strength follows "
              "u(t) = s e^{2st/tau} / (e^{2st/tau} - 1 + s/u0) (Saxe, McClelland, Ganguli 2014, Eq. (7)); "
              "stronger modes are learned first (time ~ ln(s/u0)/(2s))")


def _saxe(r) -> ExperimentResult:
    s = r.settings
    err = _f(r.max_abs_error)
    th, thc = np.asarray(r.t_half_flow), np.asarray(r.t_half_closed_form)
    rel = _f(np.max(np.abs(th / thc - 1)))
    order = np.argsort(-r.s, kind="stable")
    summary = {"max_abs_error_aligned": err, "max_rel_error_t_half": rel,
               "max_abs_error_random_init": _f(np.max(np.abs(r.u_random_init - r.u_closed_form)))}
    for a, sv in enumerate(r.s):
        summary[f"t_half_s{sv:g}"] = _f(th[a])
        summary[f"t_half_closed_form_s{sv:g}"] = _f(thc[a])
    dt = _f(r.times[1] - r.times[0])
    checks = {
        f"Saxe u(t) matches closed form to 1e-6 (max |u_flow - u_closed_form| = {err:.2e})": err < 1e-6,
        # t_half is read off the sampled curve by linear interpolation: its error is O(dt^2 * u'') << 1e-3 here
        f"half-learning times match tau/(2s) ln(s/u0 - 1) to 1e-3 relative (max {rel:.1e})": rel < 1e-3,
        "stronger modes are learned first (t_half decreasing in s)": bool(np.all(np.diff(th[order]) > 0)),
    }
    fig1 = Figure(
        key="dln_saxe_modes", title="Mode strengths u_a(t): aligned small init vs Saxe's closed form",
        kind="lines", x_label="time t (tau = 1)", y_label="u_a(t) = u_a^T X(t) v_a",
        series=tuple(Series(f"s = {sv:g} (gradient flow)", r.times, r.u_flow[:, a]) for a, sv in enumerate(r.s)) +
        tuple(Series(f"s = {sv:g} closed form", r.times, r.u_closed_form[:, a], dash=True) for a, sv in enumerate(r.s)),
        caption=(f"Whitened inputs, Sigma_yx = U diag(s) V^T, depth N = 2, hidden width {s.get('hidden')}, u0 = "
                 f"{s.get('u0')}; weights integrated by gradient flow (rtol {s.get('flow_rtol')}); dashed: u(t) from "
                 f"Eq. (7). Measured max |difference| = {err:.1e}."),
        table={f"s = {sv:g}": {"t_half (flow)": _f(th[a]), "t_half (closed form)": _f(thc[a]),
                               "s x t_half": _f(sv * th[a])} for a, sv in enumerate(r.s)},
        settings=dict(s))
    fig2 = Figure(
        key="dln_saxe_random_init", title="Mode strengths from a random small init vs the closed form",
        kind="lines", x_label="time t (tau = 1)", y_label="u_a(t)",
        series=tuple(Series(f"s = {sv:g} (random init, scale sqrt(u0))", r.times, r.u_random_init[:, a])
                     for a, sv in enumerate(r.s)) +
        tuple(Series(f"s = {sv:g} closed form", r.times, r.u_closed_form[:, a], dash=True) for a, sv in enumerate(r.s)),
        caption=(f"Same data, i.i.d. N(0, u0) weights instead of the aligned init, where Eq. (7) is only an "
                 f"approximation: max |u_random - u_closed_form| = {summary['max_abs_error_random_init']:.3g} "
                 f"(time grid step {dt:.3g})."),
        settings=dict(s))
    text = (f"Aligned small init (u0 = {s.get('u0')}): every mode strength follows Saxe's logistic curve to {err:.1e}; "
            "half-learning times " + ", ".join(f"{v:.3g}" for v in th) + " for s = "
            + ", ".join(f"{v:g}" for v in r.s) + ".")
    return _result("dln_saxe", SAXE_TITLE, SAXE_CLAIM, r, summary, checks, (fig1, fig2), text)


# -- 5. Langevin ------------------------------------------------------------------------------
LANGEVIN_TITLE = "Deep linear network: Riemannian Langevin samples D^{-1/2} e^{-beta E}, not the Gibbs density"
LANGEVIN_CLAIM = ("on the balanced scalar manifold, Langevin dynamics with diffusion D(x) = N|x|^{2-2/N} has stationary "
                  "density proportional to D^{-1/2} e^{-beta E} (Menon 2024, Sec. 6): the entropic factor D^{-1/2} "
                  "makes it differ from e^{-beta E}")


def _langevin(r) -> ExperimentResult:
    s = r.settings
    tvp, tvg, floor = _f(r.tv_predicted), _f(r.tv_gibbs), _f(r.tv_noise_floor)
    checks = {
        f"Langevin histogram closer to D^-1/2 e^-beta E than to e^-beta E (TV {tvp:.4f} vs {tvg:.4f})": tvp < tvg,
        # the floor is the expected TV of an exact sample of this size; 2x leaves room for the time-step bias and
        # the correlation of records from the same chain
        f"TV to D^-1/2 e^-beta E within 2 x the sampling noise floor ({tvp:.4f} vs floor {floor:.4f})": tvp <= 2 * floor,
    }
    summary = {"tv_vs_predicted": tvp, "tv_vs_gibbs": tvg, "tv_noise_floor": floor,
               "fraction_outside": _f(r.fraction_outside),
               "noisy_final_energy": _f(r.noisy_energy[-1]), "noisy_final_entropy": _f(r.noisy_entropy[-1]),
               "noisy_final_free_energy": _f(r.noisy_free_energy[-1]),
               "noisy_final_balancedness": _f(r.noisy_balancedness[-1])}
    e = np.asarray(r.edges)
    centers, width = 0.5 * (e[1:] + e[:-1]), np.diff(e)
    fig1 = Figure(
        key="dln_langevin_histogram", title="Scalar Riemannian Langevin: histogram vs predicted and Gibbs densities",
        kind="lines", x_label="x (end-to-end scalar)", y_label="probability density (per bin)",
        series=(Series(f"samples ({s.get('n_samples')}, {s.get('scheme')} scheme)", centers, r.empirical / width,
                       mode="lines+markers"),
                Series("predicted D^{-1/2} e^{-beta E}", centers, r.predicted / width, dash=True),
                Series("Gibbs e^{-beta E}", centers, r.gibbs / width, dash=True)),
        caption=(f"E(x) = 0.5 (x - {s.get('a')})^2, N = {s.get('N')}, beta = {s.get('beta')}, dt = {s.get('dt')}, "
                 f"{s.get('n_chains')} chains recorded every {s.get('record_interval')} time unit after a burn-in of "
                 f"{s.get('burn_in_time')}; bins on [{e[0]:g}, {e[-1]:g}] (fraction outside {r.fraction_outside:.2g}), "
                 f"densities are bin probabilities / bin width. Total variation: {tvp:.4f} to the predicted density "
                 f"(noise floor {floor:.4f}), {tvg:.4f} to Gibbs."),
        table={"TV vs predicted": tvp, "TV vs Gibbs": tvg, "TV noise floor": floor,
               "fraction outside": _f(r.fraction_outside)}, settings=dict(s))
    fig2 = Figure(
        key="dln_langevin_free_energy", title="Noisy gradient descent on the weights: energy, entropy, free energy",
        kind="lines", x_label="time (lr x step)", y_label="value",
        series=(Series("energy E(X)", r.noisy_times, r.noisy_energy),
                Series("entropy S(X)", r.noisy_times, np.where(np.isfinite(r.noisy_entropy), r.noisy_entropy, np.nan)),
                Series("free energy F = E - S/beta", r.noisy_times,
                       np.where(np.isfinite(r.noisy_free_energy), r.noisy_free_energy, np.nan)),
                Series("balancedness max_p ||G_p||", r.noisy_times, r.noisy_balancedness)),
        caption=(f"3x3 weights, depth {s.get('N')}, balanced start at the target, W <- W - lr grad L + sqrt(2 lr/beta) xi "
                 f"with beta = {s.get('matrix_beta')}, lr = {s.get('matrix_lr')}. Final: E = {r.noisy_energy[-1]:.4g}, "
                 f"S = {r.noisy_entropy[-1]:.4g}, F = {r.noisy_free_energy[-1]:.4g}, balancedness "
                 f"{r.noisy_balancedness[-1]:.3g} (noise moves the weights off the balanced manifold)."),
        table={"final energy": summary["noisy_final_energy"], "final entropy": summary["noisy_final_entropy"],
               "final free energy": summary["noisy_final_free_energy"],
               "final balancedness": summary["noisy_final_balancedness"]}, settings=dict(s))
    text = (f"{s.get('n_samples')} Langevin samples (N = {s.get('N')}, beta = {s.get('beta')}) match the predicted "
            f"density D^-1/2 e^-beta E to total variation {tvp:.4f} (sampling floor {floor:.4f}) and differ from the "
            f"Gibbs density by {tvg:.4f}.")
    return _result("dln_langevin", LANGEVIN_TITLE, LANGEVIN_CLAIM, r, summary, checks, (fig1, fig2), text)


# -- assembly ---------------------------------------------------------------------------------
def _result(name, title, claim, r, summary, checks, figures, text, extra_arrays=None) -> ExperimentResult:
    arrays = {k: np.asarray(v) for k, v in r.arrays().items()}
    arrays.update(extra_arrays or {})
    settings = {**r.settings, "dln_experiment": name[len("dln_"):]}
    return ExperimentResult(name=name, title=title, claim=claim, summary=summary,
                            checks={k: bool(v) for k, v in checks.items()}, figures=tuple(figures), arrays=arrays,
                            settings=settings, text=text)


_TABLE: dict[str, tuple[str, str, Callable]] = {
    "conservation": (CONSERVATION_TITLE, CONSERVATION_CLAIM, _conservation),
    "end_to_end": (END_TO_END_TITLE, END_TO_END_CLAIM, _end_to_end),
    "depth": (DEPTH_TITLE, DEPTH_CLAIM, _depth),
    "saxe": (SAXE_TITLE, SAXE_CLAIM, _saxe),
    "langevin": (LANGEVIN_TITLE, LANGEVIN_CLAIM, _langevin),
}


#: options used at full size (``quick=False``) unless given. Conservation: at the full widths
#: (5, 8, 8, 8, 4) the drift ratios for lr 0.02 -> 0.01 -> 0.005 are 4.6 and 4.0 (not yet first order
#: in lr); six step sizes (down to 6.25e-4) reach 2.21, 2.08 (measured, seed 0).
FULL_DEFAULTS: dict[str, dict] = {}  # per-experiment overrides of the full size (none needed now)


def _make_run(dln_name: str, convert: Callable):
    def run(*, quick: bool = False, seed: int = 0, **options) -> ExperimentResult:
        if not quick:
            options = {**FULL_DEFAULTS.get(dln_name, {}), **options}
        return convert(_run_dln(dln_name, quick, seed, options))

    run.__name__ = f"run_{PHENOMENON_OF[dln_name]}"
    run.__doc__ = (f"Run ``losslab.phenomena.dln_runs.{dln_name}`` (``quick``/``seed``/options passed on; see its "
                   f"docstring for the sizes) and convert it to an ExperimentResult.")
    return run


for _dln_name, (_title, _claim, _convert) in _TABLE.items():
    CONVERTERS.register(_dln_name)(_convert)
    register(PHENOMENON_OF[_dln_name], title=_title, claim=_claim)(_make_run(_dln_name, _convert))




_NAME_OF_RESULT = {"ConservationResult": "conservation", "EndToEndResult": "end_to_end", "DepthResult": "depth",
                   "SaxeResult": "saxe", "LangevinResult": "langevin"}


def save_result(result, store, experiment: str | None = None, *, wall_time: float | None = None,
                study: str | None = None) -> str:
    """Store ``result`` in the run store at ``store`` (a folder or an open ``RunStore``) as one run of
    kind ``"experiment"`` and return its run id.

    ``result`` is a DLN result (``ConservationResult`` ...) or an already converted
    ``ExperimentResult``; a DLN result is converted by ``to_experiment_result``
    (figures, checks, flat summary) and written by ``losslab.phenomena.storage.save_experiment``
    (``arrays.npz`` + ``result.json`` under ``<store>/runs/<id>/``; read back with
    ``load_experiment``). ``experiment`` (``conservation``, ``end_to_end``/``end-to-end``, ``depth``,
    ``saxe``, ``langevin``) defaults to the one the result's type belongs to."""
    from dataclasses import replace

    from ..store import RunStore, open_store
    from .storage import save_experiment

    if not isinstance(result, ExperimentResult):
        name = experiment or _NAME_OF_RESULT.get(type(result).__name__)
        if name is None:
            raise TypeError(f"save_result expects a DLN experiment result ({', '.join(_NAME_OF_RESULT)}) or an "
                            f"ExperimentResult, got {type(result).__name__}")
        result = to_experiment_result(name, result)
    if wall_time is not None:
        result = replace(result, wall_time=float(wall_time))
    st = store if isinstance(store, RunStore) else open_store(Path(store))
    return save_experiment(st, result, study=study)


__all__ = ["CONVERTERS", "FULL_DEFAULTS", "PHENOMENON_OF", "to_experiment_result", "save_result"]
