"""Registries of optimizers and schedules. A factory takes (params, lr, **options)."""
from __future__ import annotations

import inspect
import math

import torch

from ..registry import Registry
from .extra import Langevin, RandomSearch

OPTIMIZERS: Registry = Registry("optimizer")
SCHEDULES: Registry = Registry("schedule")


def _torch(cls, doc: str, **defaults):
    def factory(params, lr, **options):
        return cls(params, lr=lr, **{**defaults, **options})

    factory.__doc__ = doc
    factory.torch_class = cls  # type: ignore[attr-defined]
    factory.defaults = defaults  # type: ignore[attr-defined]
    return factory


O = torch.optim
OPTIMIZERS.register("gd", _torch(O.SGD, "full-batch gradient descent (torch.optim.SGD; the loop uses all data each step)"))
OPTIMIZERS.register("sgd", _torch(O.SGD, "mini-batch stochastic gradient descent (torch.optim.SGD)"))
OPTIMIZERS.register("momentum", _torch(O.SGD, "heavy-ball momentum, beta=0.9 (torch.optim.SGD)", momentum=0.9))
OPTIMIZERS.register("nesterov", _torch(O.SGD, "Nesterov momentum, beta=0.9 (torch.optim.SGD)", momentum=0.9, nesterov=True))
OPTIMIZERS.register("adagrad", _torch(O.Adagrad, "Adagrad (torch.optim.Adagrad)"))
OPTIMIZERS.register("adadelta", _torch(O.Adadelta, "Adadelta (torch.optim.Adadelta)"))
OPTIMIZERS.register("rmsprop", _torch(O.RMSprop, "RMSprop (torch.optim.RMSprop)"))
OPTIMIZERS.register("adam", _torch(O.Adam, "Adam (torch.optim.Adam)"))
OPTIMIZERS.register("adamw", _torch(O.AdamW, "AdamW, decoupled weight decay (torch.optim.AdamW)"))
# max_eval is set explicitly: torch's default (max_iter * 5 // 4 = 1 here) starves the line search,
# and L-BFGS then never leaves its start on Rosenbrock.
OPTIMIZERS.register("lbfgs", _torch(O.LBFGS, "L-BFGS with strong-Wolfe line search, one iteration per step (torch.optim.LBFGS)",
                                    max_iter=1, max_eval=25, line_search_fn="strong_wolfe", history_size=20))
OPTIMIZERS.register("random_search", _torch(RandomSearch, "random search: keep a Gaussian perturbation if the loss falls"))
OPTIMIZERS.register("langevin", _torch(Langevin, "Langevin dynamics: gradient step plus sqrt(2 lr/beta) Gaussian noise"))

CLOSURE_OPTIMIZERS = {"lbfgs", "random_search"}
FULL_BATCH = {"gd", "lbfgs"}


def make_optimizer(name: str, params, *, lr: float, generator: torch.Generator | None = None, **options
                   ) -> torch.optim.Optimizer:
    """Build a registered optimizer; unknown options raise a clear error naming the valid ones."""
    factory = OPTIMIZERS.get(name)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning rate must be a positive finite number, got {lr!r}")
    cls = factory.torch_class
    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "params", "lr")]
    bad = [k for k in options if k not in valid]
    if bad:
        raise TypeError(f"optimizer {name!r} got unknown option(s) {bad}; valid options: {', '.join(valid)}")
    if "generator" in valid and generator is not None:
        options = {**options, "generator": generator}
    try:
        return factory(params, lr, **options)
    except ValueError as e:
        raise ValueError(f"optimizer {name!r}: {e}") from None


def momentum_of(name: str, options: dict | None = None) -> float:
    """The heavy-ball momentum beta an optimizer runs with (0 when none)."""
    factory = OPTIMIZERS.get(name)
    opts = {**getattr(factory, "defaults", {}), **(options or {})}
    return float(opts.get("momentum", 0.0)) if factory.torch_class is torch.optim.SGD else 0.0


# Schedules: factory(optimizer, steps, **options) -> torch.optim.lr_scheduler.LRScheduler
S = torch.optim.lr_scheduler


@SCHEDULES.register("constant")
def constant(opt, steps, **kw):
    """constant learning rate"""
    return S.LambdaLR(opt, lambda t: 1.0)


@SCHEDULES.register("step")
def step(opt, steps, step_size: int | None = None, gamma: float = 0.1):
    """multiply by gamma every step_size steps (default steps // 3)"""
    return S.StepLR(opt, step_size=step_size or max(1, steps // 3), gamma=gamma)


@SCHEDULES.register("exponential")
def exponential(opt, steps, gamma: float = 0.99):
    """multiply by gamma every step"""
    return S.ExponentialLR(opt, gamma=gamma)


@SCHEDULES.register("cosine")
def cosine(opt, steps, eta_min: float = 0.0):
    """cosine decay to eta_min over the run"""
    return S.CosineAnnealingLR(opt, T_max=max(1, steps), eta_min=eta_min)


@SCHEDULES.register("warmup")
def warmup(opt, steps, warmup_steps: int | None = None, start_factor: float = 0.01):
    """linear warm-up from start_factor*lr to lr over warmup_steps (default steps // 10), then constant"""
    return S.LinearLR(opt, start_factor=start_factor, end_factor=1.0, total_iters=warmup_steps or max(1, steps // 10))


@SCHEDULES.register("inverse_time")
def inverse_time(opt, steps, decay: float = 0.1):
    """inverse-time decay lr0 / (1 + decay * t) at step t: the 1/t rate under which (sub)gradient
    descent on a convex, non-smooth loss (sum of |errors|) converges (Robbins & Monro 1951)"""
    if not (isinstance(decay, (int, float)) and math.isfinite(decay) and decay >= 0):
        raise ValueError(f"inverse_time: decay must be a finite number >= 0, got {decay!r}")
    return S.LambdaLR(opt, lambda t: 1.0 / (1.0 + decay * t))


def warmup_cosine_factor(t: int, steps: int, warmup_steps: int, start_factor: float, eta_min_factor: float) -> float:
    """lr(t) / lr0 of ``warmup_cosine``: linear from start_factor to 1 over t < warmup_steps, then
    eta_min_factor + (1 - eta_min_factor) (1 + cos(pi (t - w) / (steps - w))) / 2, held at its end after ``steps``."""
    if t < warmup_steps:
        return start_factor + (1.0 - start_factor) * t / warmup_steps
    u = min(t - warmup_steps, steps - warmup_steps) / max(1, steps - warmup_steps)
    return eta_min_factor + (1.0 - eta_min_factor) * 0.5 * (1.0 + math.cos(math.pi * u))


@SCHEDULES.register("warmup_cosine")
def warmup_cosine(opt, steps, warmup_steps: int | None = None, start_factor: float = 0.01, eta_min_factor: float = 0.0):
    """linear warm-up from start_factor*lr to lr over warmup_steps (default steps // 10), then cosine
    decay to eta_min_factor*lr at the last step (Goyal et al. 2017; Loshchilov & Hutter 2017)"""
    w = max(1, steps // 10) if warmup_steps is None else warmup_steps
    if not (isinstance(w, int) and 0 <= w < max(1, steps)):
        raise ValueError(f"warmup_cosine: warmup_steps must be an integer in [0, steps) = [0, {steps}), got {w!r}")
    for nm, v in (("start_factor", start_factor), ("eta_min_factor", eta_min_factor)):
        if not (isinstance(v, (int, float)) and 0 <= v <= 1):
            raise ValueError(f"warmup_cosine: {nm} must be in [0, 1], got {v!r}")
    return S.LambdaLR(opt, lambda t: warmup_cosine_factor(t, steps, w, start_factor, eta_min_factor))


def make_schedule(name: str, optimizer, *, steps: int, **options):
    """Build a registered schedule for ``optimizer`` over ``steps`` steps."""
    factory = SCHEDULES.get(name)
    valid = [p for p in inspect.signature(factory).parameters if p not in ("opt", "steps", "kw")]
    bad = [k for k in options if k not in valid]
    if bad:
        raise TypeError(f"schedule {name!r} got unknown option(s) {bad}; valid options: {', '.join(valid) or '(none)'}")
    return factory(optimizer, steps, **options)
