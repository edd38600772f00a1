"""Low-loss curves between two minima: quadratic Bezier curves trained as in Garipov et al.
(2018), "Loss Surfaces, Mode Connectivity, and Fast Ensembling of DNNs", Sec. 3 (Bezier
curve, eq. 2, and the training objective, eq. 1, with t ~ U[0, 1]).

    phi_theta(t) = (1 - t)^2 w_0 + 2 t (1 - t) theta + t^2 w_1,      t in [0, 1]
    minimize over theta:  E_{t ~ U[0,1]} L(phi_theta(t))

estimated each step from ``samples`` stratified uniform draws of t (one per stratum of
[0, 1]; seeded). The ends w_0, w_1 stay fixed. A helper module (no experiment registered):
used by the ``mode_connectivity`` experiment; also usable on any loss of a flat vector.

``single_thread()`` is a shared helper of the part-B experiments: tiny problems run several
times faster on one intra-op thread than on a busy multi-core machine.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch

LossFn = Callable[[torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with one torch intra-op thread, restoring the previous count after."""
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        yield
    finally:
        torch.set_num_threads(n)


def bezier_points(w0: torch.Tensor, theta: torch.Tensor, w1: torch.Tensor, t) -> torch.Tensor:
    """phi(t) for t of shape (m,): (m, P) (Garipov et al. 2018, eq. 2)."""
    t = torch.as_tensor(t, dtype=w0.dtype, device=w0.device).reshape(-1, 1)
    return (1 - t) ** 2 * w0 + 2 * t * (1 - t) * theta + t ** 2 * w1


@dataclass(frozen=True)
class BezierCurve:
    """A trained quadratic Bezier curve: the ends ``w0``, ``w1`` and the bend ``theta`` (P,),
    the training objective per step (``history``), and the settings that made it."""

    w0: np.ndarray
    theta: np.ndarray
    w1: np.ndarray
    history: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    def points(self, t) -> np.ndarray:
        """phi(t) (m, P) for the t values given."""
        return bezier_points(torch.as_tensor(self.w0), torch.as_tensor(self.theta), torch.as_tensor(self.w1),
                             t).numpy()


def _check_ends(w0, w1) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = torch.as_tensor(w0), torch.as_tensor(w1)
    if a.dim() != 1 or a.shape != b.shape:
        raise ValueError(f"the ends must be flat vectors of the same length (P,), got shapes {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    if not a.is_floating_point():
        a, b = a.double(), b.double()
    return a.detach().clone(), b.detach().clone().to(a.dtype)


def train_bezier(f: LossFn, w0, w1, *, steps: int = 300, lr: float = 0.05, samples: int = 8, seed: int = 0,
                 init_noise: float = 0.1, optimizer: str = "adam", theta0=None) -> BezierCurve:
    """Train the bend theta of a quadratic Bezier curve between fixed ends w0, w1 (flat (P,)
    tensors) to minimize E_t L(phi(t)) (Garipov et al. 2018, eq. 1).

    ``theta0``: the starting bend; default the midpoint (w0 + w1)/2 plus Gaussian noise of
    standard deviation ``init_noise * ||w1 - w0|| / sqrt(P)`` (seeded; without it a
    symmetric loss can hold theta on the straight line, a saddle of the objective).
    ``optimizer``: ``adam`` or ``sgd`` (torch.optim). ``samples`` t values per step, one from
    each of ``samples`` equal strata of [0, 1].
    """
    a, b = _check_ends(w0, w1)
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not (isinstance(samples, int) and samples >= 1):
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    opts = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
    if optimizer not in opts:
        raise ValueError(f"unknown optimizer {optimizer!r} for the curve; valid: {', '.join(opts)}")
    gen = torch.Generator().manual_seed(int(seed))
    P = a.shape[0]
    if theta0 is None:
        scale = init_noise * float(torch.linalg.vector_norm(b - a)) / math.sqrt(P)
        theta = (a + b) / 2 + scale * torch.randn(P, generator=gen, dtype=a.dtype)
    else:
        theta = torch.as_tensor(theta0, dtype=a.dtype).detach().clone()
        if theta.shape != a.shape:
            raise ValueError(f"theta0 must have shape {tuple(a.shape)}, got {tuple(theta.shape)}")
    theta.requires_grad_(True)
    opt = opts[optimizer]([theta], lr=lr)
    hist = []
    for _ in range(steps):
        t = (torch.arange(samples, dtype=a.dtype) + torch.rand(samples, generator=gen, dtype=a.dtype)) / samples
        pts = bezier_points(a, theta, b, t)
        L = sum(f(pts[i]) for i in range(samples)) / samples
        opt.zero_grad()
        L.backward()
        opt.step()
        hist.append(float(L.detach()))
    return BezierCurve(a.numpy(), theta.detach().numpy(), b.numpy(), np.asarray(hist),
                       {"steps": steps, "lr": lr, "samples": samples, "seed": seed, "init_noise": init_noise,
                        "optimizer": optimizer})


def losses_along(f: LossFn, points: np.ndarray | torch.Tensor) -> np.ndarray:
    """f at each row of ``points`` (m, P), without gradients."""
    pts = torch.as_tensor(points)
    with torch.no_grad():
        return np.asarray([float(f(pts[i])) for i in range(pts.shape[0])], dtype=np.float64)


def curve_barrier(ts: np.ndarray, losses: np.ndarray):
    """The barrier along a path sampled at ``ts`` (must include 0 and 1), with the definition of
    :mod:`losslab.landscape.interpolation` (max_t L - (L(0) + L(1)) / 2)."""
    from ..landscape.interpolation import _barrier_from

    return _barrier_from(np.asarray(ts, dtype=np.float64), np.asarray(losses, dtype=np.float64))


__all__ = ["BezierCurve", "bezier_points", "curve_barrier", "losses_along", "single_thread", "train_bezier"]
