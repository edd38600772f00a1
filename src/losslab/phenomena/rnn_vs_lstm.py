"""Vanishing gradients: a tanh RNN against an LSTM on the adding problem.

Hochreiter & Schmidhuber (1997), "Long short-term memory"; Bengio, Simard, Frasconi (1994);
Pascanu, Mikolov, Bengio (2013), "On the difficulty of training recurrent neural networks",
eq. (5)-(7): dL/dh_k = dL/dh_T prod_{i=k+1}^{T} dh_i/dh_{i-1}, a product of T - k Jacobians
that shrinks geometrically for a contractive tanh RNN, while the LSTM's additive cell path
(c_t = f_t * c_{t-1} + ...) carries it.

Measured: ||dL/dh_k|| for k = 1..T (mean-squared-error loss on a fixed probe batch,
gradients taken by adding a zero tensor that requires grad to each h_k through
``SequenceModel.forward_states``), at initialization and at checkpoints during training with
Adam, and the ratio ||dL/dh_1|| / ||dL/dh_T||. The trivial loss of the adding problem
(predicting the mean target 1) is Var(u_1 + u_2) = 1/6.
"""
from __future__ import annotations

import numpy as np
import torch

from ..figures import Figure, Series
from .base import ExperimentResult, measured, register

TITLE = "Vanishing gradients: RNN vs LSTM"
CLAIM = ("a tanh RNN's gradient ||dL/dh_k|| vanishes with T - k and it stays near the trivial loss on the adding "
         "problem; an LSTM keeps its gradients and learns the task")
TRIVIAL_LOSS = 1.0 / 6.0


def state_gradient_norms(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, loss="mse") -> np.ndarray:
    """||dL/dh_k|| for k = 1..T (as a (T,) array) of the mean loss on (X, y), for a
    :class:`losslab.models.SequenceModel`. The model is not changed (a deep copy is used)."""
    import copy

    from ..losses import get_loss

    if not hasattr(model, "forward_states"):
        raise TypeError(f"expected a SequenceModel with forward_states (models.build('rnn'/'lstm')), "
                        f"got {type(model).__name__}")
    net = copy.deepcopy(model)
    net.eval()
    probes: list[torch.Tensor] = []

    def hook(k: int, h: torch.Tensor) -> torch.Tensor:
        z = torch.zeros_like(h, requires_grad=True)
        probes.append(z)
        return h + z

    out, _ = net.forward_states(X, hook)
    L = get_loss(loss)(out, y)
    grads = torch.autograd.grad(L, probes)
    return np.asarray([float(torch.linalg.vector_norm(g)) for g in grads], dtype=np.float64)


@register("rnn_vs_lstm", title=TITLE, claim=CLAIM)
def run(*, quick: bool = False, seed: int = 0, length: int | None = None, hidden: int | None = None,
        steps: int | None = None, lr: float = 0.01, batch_size: int = 64, n: int | None = None,
        grad_clip: float | None = None, forget_bias: float = 1.0, checkpoints: int = 5,
        probe_size: int = 256) -> ExperimentResult:
    from ..data import load
    from ..models import build
    from ..params import load_flat
    from ..train import train
    from .curves import single_thread

    length = length or (25 if quick else 40)
    hidden = hidden or (16 if quick else 32)
    steps = steps or (500 if quick else 2000)
    n = n or (2000 if quick else 10000)
    settings = dict(quick=quick, seed=seed, length=length, hidden=hidden, steps=steps, lr=lr, batch_size=batch_size,
                    n=n, grad_clip=grad_clip, forget_bias=forget_bias, checkpoints=checkpoints, probe_size=probe_size,
                    optimizer="adam", loss="mse")
    sp = load("adding", seed=seed, n=n, length=length)
    Xp, yp = sp.val.X[:probe_size], sp.val.y[:probe_size]
    every = max(1, steps // checkpoints)
    arrays, summary, figs, res = {}, {"trivial_loss": TRIVIAL_LOSS}, [], {}
    with single_thread():
        for cell in ("rnn", "lstm"):
            opts = {"forget_bias": forget_bias} if cell == "lstm" else {}
            net = build(cell, in_dim=2, hidden=hidden, out_dim=1, seed=seed, **opts)
            tr = train(net, sp, loss="mse", optimizer="adam", lr=lr, steps=steps, batch_size=batch_size, seed=seed,
                       grad_clip=grad_clip, eval_every=every, snapshot_every=every)
            norms = np.stack([state_gradient_norms(load_flat(net, torch.as_tensor(v, dtype=torch.float32)), Xp, yp)
                              for v in tr.snapshots])  # (C, T)
            ratio = norms[:, 0] / norms[:, -1]
            res[cell] = (tr, norms, ratio)
            arrays.update({f"{cell}/grad_norms": norms, f"{cell}/checkpoint_steps": tr.snapshot_steps,
                           f"{cell}/ratio": ratio, f"{cell}/eval_steps": tr.eval_steps,
                           f"{cell}/val_loss": tr.val_loss, f"{cell}/train_loss": tr.train_loss})
            summary.update({f"{cell}_ratio_init": float(ratio[0]), f"{cell}_ratio_final": float(ratio[-1]),
                            f"{cell}_ratio_min": float(ratio.min()),
                            f"{cell}_final_val_loss": float(tr.val_loss[-1]), f"{cell}_status": tr.status})
    (rtr, _, rr), (ltr, _, lr_) = res["rnn"], res["lstm"]
    summary["lstm_over_rnn_ratio_init"] = float(lr_[0] / rr[0])
    summary["lstm_over_rnn_ratio_final"] = float(lr_[-1] / rr[-1])
    checks = {
        "at init the RNN's ||dL/dh_1||/||dL/dh_T|| is >= 100x smaller than the LSTM's": bool(rr[0] * 100 <= lr_[0]),
        "after training the RNN's ratio is >= 100x smaller than the LSTM's": bool(rr[-1] * 100 <= lr_[-1]),
        "the LSTM learns: validation loss < 0.25 x trivial (1/6)": bool(ltr.val_loss[-1] < 0.25 * TRIVIAL_LOSS),
        "the RNN stays near the trivial loss: validation loss > 0.5 x trivial": bool(rtr.val_loss[-1] > 0.5 * TRIVIAL_LOSS),
    }
    ks = np.arange(1, length + 1)
    for cell, (tr, norms, ratio) in res.items():
        figs.append(Figure(
            key=f"{cell}_grad_norms", title=f"{cell.upper()}: ||dL/dh_k|| over k", kind="lines", x_label="k (time step)",
            y_label="||dL/dh_k||", log_y=True,
            series=tuple(Series(f"step {s}", ks, norms[i]) for i, s in enumerate(tr.snapshot_steps)),
            caption=(f"Norm of the loss gradient with respect to the hidden state h_k on {len(Xp)} held-out sequences "
                     f"(T = {length}), at initialization and during training. ||dL/dh_1||/||dL/dh_T||: "
                     f"{ratio[0]:.3g} at init, {ratio[-1]:.3g} at the end."),
            table={"ratio_init": float(ratio[0]), "ratio_final": float(ratio[-1])}))
    figs.append(Figure(
        key="val_loss", title="Adding problem: validation loss", kind="lines", x_label="step", y_label="mse",
        series=(Series("RNN", rtr.eval_steps, rtr.val_loss), Series("LSTM", ltr.eval_steps, ltr.val_loss)),
        hlines=(("trivial 1/6", TRIVIAL_LOSS),), log_y=True,
        caption=(f"Validation mse (Adam lr {lr}, batch {batch_size}, grad clip {grad_clip}). Final: RNN "
                 f"{rtr.val_loss[-1]:.4f}, LSTM {ltr.val_loss[-1]:.4f}; the trivial loss is 1/6 = 0.1667.")))
    text = (f"T = {length}: ||dL/dh_1||/||dL/dh_T|| at init RNN {rr[0]:.3g} vs LSTM {lr_[0]:.3g}; after {steps} Adam "
            f"steps RNN {rr[-1]:.3g} vs LSTM {lr_[-1]:.3g}. Validation mse RNN {rtr.val_loss[-1]:.4f}, "
            f"LSTM {ltr.val_loss[-1]:.4f} (trivial 0.1667).")
    return measured("rnn_vs_lstm", summary=summary, checks=checks,
                    figures=tuple(figs), arrays=arrays, settings=settings, text=text)
