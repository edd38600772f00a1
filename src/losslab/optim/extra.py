"""Optimizers torch.optim lacks, written as torch.optim.Optimizer subclasses so the training
loop treats them like any other."""
from __future__ import annotations

import math

import torch
from torch.optim import Optimizer


class RandomSearch(Optimizer):
    """Random search: propose theta' = theta + lr * z, z ~ N(0, I); keep it if the loss falls.

    The chapter's baseline ("just guess and keep the best"); needs a closure returning the loss
    and uses no gradients. ``global_guess=True`` draws fresh points theta' = lr * z instead
    (pure guessing, no locality). Seeded by ``generator``.
    """

    requires_grad = False

    def __init__(self, params, lr: float = 0.1, *, global_guess: bool = False, generator: torch.Generator | None = None):
        if lr <= 0:
            raise ValueError(f"random_search needs lr (proposal scale) > 0, got {lr}")
        super().__init__(params, {"lr": lr, "global_guess": global_guess})
        self.generator = generator
        self._best: float | None = None

    @torch.no_grad()
    def step(self, closure):  # type: ignore[override]
        if closure is None:
            raise ValueError("random_search needs a closure that returns the loss")
        with torch.enable_grad():
            current = float(closure().detach()) if self._best is None else self._best
        self._best = current
        old = [p.detach().clone() for g in self.param_groups for p in g["params"]]
        for g in self.param_groups:
            for p in g["params"]:
                z = torch.randn(p.shape, generator=self.generator, dtype=p.dtype).to(p.device)
                if g["global_guess"]:
                    p.copy_(g["lr"] * z)
                else:
                    p.add_(g["lr"] * z)
        with torch.enable_grad():
            proposal = float(closure().detach())
        if math.isfinite(proposal) and proposal < current:
            self._best = proposal
        else:
            i = 0
            for g in self.param_groups:
                for p in g["params"]:
                    p.copy_(old[i])
                    i += 1
        return torch.tensor(current)


class Langevin(Optimizer):
    """Unadjusted Langevin dynamics: theta <- theta - lr * grad + sqrt(2 lr / beta) * z.

    Its stationary density approaches exp(-beta * L(theta)) as lr -> 0 (Welling & Teh 2011
    use the minibatch version, SGLD). Seeded by ``generator``.
    """

    def __init__(self, params, lr: float = 1e-3, *, beta: float = 1e4, weight_decay: float = 0.0,
                 generator: torch.Generator | None = None):
        if lr <= 0 or beta <= 0:
            raise ValueError(f"langevin needs lr > 0 and beta > 0, got lr={lr}, beta={beta}")
        super().__init__(params, {"lr": lr, "beta": beta, "weight_decay": weight_decay})
        self.generator = generator

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for g in self.param_groups:
            scale = math.sqrt(2 * g["lr"] / g["beta"])
            for p in g["params"]:
                if p.grad is None:
                    continue
                d = p.grad + g["weight_decay"] * p if g["weight_decay"] else p.grad
                z = torch.randn(p.shape, generator=self.generator, dtype=p.dtype).to(p.device)
                p.add_(-g["lr"] * d + scale * z)
        return loss
