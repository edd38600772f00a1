"""The training loop: trains a copy of the model and records a Trajectory.

The caller's model is never changed: training runs on a deep copy, returned as
``Trajectory.model``. The same seed gives the same trajectory bit for bit on CPU (minibatch
order and input noise come from a seeded ``torch.Generator``; dropout runs inside
``losslab.rng.seeded(seed)``, so the caller's CPU and CUDA random states are untouched).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from .adapters import OutputSelected, check_batch_keys, check_output_spec, select_output
from .data.types import Data, Splits, as_data, iterate_batches
from .losses import Loss, accuracy, get_loss
from .optim.registry import CLOSURE_OPTIMIZERS, FULL_BATCH, OPTIMIZERS, make_optimizer, make_schedule, momentum_of
from .params import flatten_params, param_spec
from .rng import seeded

STATUSES = ("completed", "diverged", "stopped_early", "interrupted", "failed")


@dataclass(frozen=True)
class Trajectory:
    """Where a training run went.

    Arrays (numpy): ``steps``/``train_loss``/``grad_norm``/``lr`` per step (the loss of the batch
    the step used, before the update); ``eval_steps`` with full-data ``train_eval_loss``,
    ``val_loss``, ``val_acc``, ``train_acc`` (NaN where not applicable);
    ``snapshot_steps`` and ``snapshots`` (K, P) flat parameter vectors; ``metrics`` from
    callbacks as {name: (steps, values)}. ``status`` is one of STATUSES.
    """

    steps: np.ndarray
    train_loss: np.ndarray
    grad_norm: np.ndarray
    lr: np.ndarray
    eval_steps: np.ndarray
    train_eval_loss: np.ndarray
    train_acc: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    snapshot_steps: np.ndarray
    snapshots: np.ndarray
    metrics: dict[str, tuple[np.ndarray, np.ndarray]]
    status: str
    status_step: int | None
    message: str
    wall_time: float
    settings: dict
    model: nn.Module = field(repr=False, compare=False)
    param_names: tuple[str, ...] = ()
    restored_step: int | None = None  # early stopping: the step whose parameters ``model`` holds

    def _final_eval(self, a: np.ndarray) -> float | None:
        """The evaluation describing the returned model: the restored step's after early stopping
        with restore_best, else the last finite one."""
        if self.restored_step is not None:
            i = np.flatnonzero(self.eval_steps == self.restored_step)
            return float(a[i[-1]]) if len(i) and np.isfinite(a[i[-1]]) else None
        a = a[np.isfinite(a)]
        return float(a[-1]) if len(a) else None

    @property
    def final_loss(self) -> float:
        v = self._final_eval(self.train_eval_loss)
        return float("nan") if v is None else v

    @property
    def final_params(self) -> np.ndarray:
        """The returned model's parameters (the restored ones after early stopping)."""
        if self.restored_step is not None:
            return flatten_params(self.model).cpu().numpy()
        return self.snapshots[-1] if len(self.snapshots) else np.zeros(0)

    def summary(self) -> dict[str, Any]:
        """Scalar results for the run index."""
        last = self._final_eval
        s = {"status": self.status, "status_step": self.status_step, "steps_run": int(len(self.steps)),
             "restored_step": self.restored_step,
             "final_train_loss": last(self.train_eval_loss), "final_val_loss": last(self.val_loss),
             "final_val_acc": last(self.val_acc), "final_train_acc": last(self.train_acc),
             "best_val_loss": float(np.nanmin(self.val_loss)) if np.isfinite(self.val_loss).any() else None,
             "wall_time": self.wall_time, "n_params": int(self.snapshots.shape[1]) if self.snapshots.ndim == 2 else 0}
        if self.status == "diverged":
            # no evaluation describes the final (blown-up) parameters: the "final" numbers are the
            # diverging loss, not the last finite evaluation (often the initial one), which is kept
            # under its own name
            fin = np.flatnonzero(np.isfinite(self.train_eval_loss))
            s["last_finite_train_loss"] = float(self.train_eval_loss[fin[-1]]) if len(fin) else None
            s["last_finite_eval_step"] = int(self.eval_steps[fin[-1]]) if len(fin) else None
            diverging = (float(self.train_loss[-1]) if len(self.train_loss) and self.status_step is not None
                         and int(self.steps[-1]) == self.status_step else float("nan"))
            s["diverged_loss"] = diverging  # the training loss that stopped the run (NaN: non-finite parameters)
            s["final_train_loss"] = diverging
            s["final_val_loss"] = s["final_val_acc"] = s["final_train_acc"] = None
        for k, (_, v) in self.metrics.items():
            if len(v):
                s[f"final_{k}"] = float(v[-1])
        return s

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array, flat names, for saving."""
        out = {k: getattr(self, k) for k in ("steps", "train_loss", "grad_norm", "lr", "eval_steps", "train_eval_loss",
                                              "train_acc", "val_loss", "val_acc", "snapshot_steps", "snapshots")}
        for k, (st, v) in self.metrics.items():
            out[f"metric_steps/{k}"] = st
            out[f"metric/{k}"] = v
        return out


class _Snapshots:
    """Parameter snapshots with bounded memory: at most ``max_keep`` vectors. When full, every
    other one is dropped and the interval doubles, so snapshots stay evenly spaced over the
    whole run and memory is at most max_keep * P floats."""

    def __init__(self, every: int, max_keep: int):
        if every < 1 or max_keep < 2:
            raise ValueError(f"snapshot_every must be >= 1 and max_snapshots >= 2, got {every}, {max_keep}")
        self.every, self.max_keep = every, max_keep
        self.steps: list[int] = []
        self.vecs: list[np.ndarray] = []

    def maybe_add(self, step: int, model: nn.Module, force: bool = False) -> None:
        if not force and step % self.every:
            return
        if self.steps and self.steps[-1] == step:
            return
        self.steps.append(step)
        self.vecs.append(flatten_params(model).detach().cpu().numpy().copy())
        if len(self.vecs) > self.max_keep:
            last_s, last_v = self.steps[-1], self.vecs[-1]
            keep = [i for i, s in enumerate(self.steps) if s % (2 * self.every) == 0]
            self.steps = [self.steps[i] for i in keep]
            self.vecs = [self.vecs[i] for i in keep]
            self.every *= 2
            if self.steps[-1] != last_s and force:
                self.steps.append(last_s)
                self.vecs.append(last_v)


def full_loss(model: nn.Module, data, loss: Loss, batch_size: int = 4096, *, output=None,
              prepare: Callable | None = None) -> tuple[float, float]:
    """Full-data mean loss and accuracy (NaN for regression), in eval mode, no grad.

    ``data``: Data (read in slices of ``batch_size``) or a re-iterable of (X, y) batches (a
    DataLoader: ``prepare(batch) -> (X, y)`` reads one); the mean is the sum of per-example losses
    over all batches divided by the number of examples, so batches of any sizes weigh exactly."""
    was = [(m, m.training) for m in model.modules()]
    model.eval()
    tot, acc_tot, n = 0.0, 0.0, 0
    has_acc = True
    loss = get_loss(loss)
    if isinstance(data, Data):
        batches = ((data.X[i : i + batch_size], data.y[i : i + batch_size]) for i in range(0, data.n, batch_size))
    else:
        batches = (prepare(b) for b in data) if prepare is not None else iterate_batches(data)
    try:
        with torch.no_grad():
            for X, y in batches:
                out = select_output(model(X), output)
                tot += float(loss.sum(out, y))
                a = accuracy(out, y, loss)
                if a is None:
                    has_acc = False
                else:
                    acc_tot += float(a.sum())
                n += X.shape[0]
    finally:
        for m, t in was:
            m.training = t
    return tot / max(n, 1), (acc_tot / n if has_acc and n else float("nan"))



Callback = Callable[[int, nn.Module, dict], dict]


def _is_tensor_data(data) -> bool:
    """Data, Splits, or an (X, y) pair of tensors (not an iterable of batches)."""
    return isinstance(data, (Data, Splits)) or (
        isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data)
        and data[0].dim() > 0 and data[1].dim() > 0 and data[0].shape[0] == data[1].shape[0])


def _describe_spec(output):
    if output is None or isinstance(output, (str, int)):
        return output
    return f"callable:{getattr(output, '__name__', type(output).__name__)}"


def _on_selected(fn: Callback, output) -> Callback:
    """A callback that sees the model through ``output=`` (a module returning the selected tensor)."""
    def wrapped(step, model, context):
        return fn(step, OutputSelected(model, output), context)

    wrapped.every = getattr(fn, "every", None)
    return wrapped


def train(model: nn.Module, data, *, loss: str | Loss | None = None, optimizer: str = "gd", lr: float = 0.1,
          steps: int = 100, batch_size: int | None = None, seed: int = 0, optimizer_options: dict | None = None,
          schedule: str = "constant", schedule_options: dict | None = None, weight_decay: float = 0.0,
          input_noise: float = 0.0, early_stopping: int | None = None, restore_best: bool = True,
          eval_every: int = 10, snapshot_every: int = 10, max_snapshots: int = 500, divergence_factor: float = 1e6,
          grad_clip: float | None = None, callbacks: Iterable[tuple[int, Callback]] | None = None,
          sharpness_every: int | None = None,
          device: str | torch.device | None = None, dtype: torch.dtype | None = None,
          progress: Callable[[int, int], None] | None = None, output=None, batch_keys=None) -> Trajectory:
    """Train a copy of ``model`` on ``data`` and return its Trajectory.

    ``data``: Splits (train used for steps, val for evaluation), an (X, y) pair / Data, or a
    re-iterable of batches (a ``DataLoader``, a list of batches): each step then takes the
    loader's next mini-batch (a new epoch, in the loader's own order, when it runs out;
    ``batch_size`` must be None, the loader decides), ``gd``/``lbfgs`` step on the gradient of
    all batches together (each weighted by its size), and the full-data evaluation is the sum
    of per-example losses over all batches divided by the number of examples (exact for any
    batch sizes). Dict batches are read with ``batch_keys=(inputs_key, targets_key)``.
    ``output``: what the loss takes from the forward's return value (a key, an index or a
    callable; :func:`losslab.adapters.select_output`). ``loss``: a name, a Loss, or a callable
    ``(output, target) ->`` per-example losses (N,) or their mean (a scalar; then the full-data
    evaluation is the batch-size-weighted mean of batch means, the full-data mean).
    ``optimizer``: a name from ``losslab.optim.OPTIMIZERS``; ``gd`` and ``lbfgs`` always use the
    full training set, the others use minibatches of ``batch_size`` (None = full batch), drawn
    without replacement per epoch from a generator seeded with ``seed``.
    ``weight_decay``: L2 penalty; passed to the optimizer when it takes one (decoupled for adamw),
    otherwise added to the loss as 0.5 * wd * ||theta||^2.
    ``early_stopping``: patience in evaluations without a new best validation loss.
    Divergence (NaN/inf loss, or loss > ``divergence_factor`` x initial) stops the run with status
    ``diverged`` and the step; it does not raise. Ctrl-C stops it with status ``interrupted``.
    ``callbacks``: (every, fn) pairs; ``fn(step, model, context) -> {metric: value}`` is recorded
    in ``metrics`` (e.g. lambda_max for the edge-of-stability view).
    ``sharpness_every``: record lambda_max of the full training loss (Lanczos) every k steps, with
    the stability thresholds 2/lr (and 2(1+beta)/lr for heavy-ball momentum) beside it, following
    the optimizer's current learning rate (Cohen et al. 2021).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    OPTIMIZERS.get(optimizer)
    output = check_output_spec(output)
    batch_keys = check_batch_keys(batch_keys)
    from .validate import as_tensors, check_finite, check_fits

    data = as_tensors(data)
    if isinstance(data, Mapping):  # one dict batch holding all the data
        data = tuple(iterate_batches(data, batch_keys=batch_keys))[0]
    splits = data if isinstance(data, Splits) else None
    loader = None if _is_tensor_data(data) else data
    if loader is not None:
        if isinstance(loader, Iterator):  # a generator can be read once: keep its batches for the epochs
            loader = list(loader)
        if not isinstance(loader, Iterable):
            raise TypeError(f"data must be Splits, Data, an (X, y) pair of tensors or arrays, or a re-iterable of "
                            f"batches (a DataLoader); got {type(data).__name__}")
        if batch_size is not None:
            raise ValueError(f"batch_size={batch_size} with a DataLoader/iterable of batches: the loader decides the "
                             f"batch size; pass batch_size=None (or tensors to let train() draw mini-batches)")
    train_data = as_data(data) if loader is None else None
    val_data = splits.val if splits is not None else None
    loss_fn = get_loss(loss if loss is not None else (splits.default_loss if splits is not None else "mse"))
    if batch_size is not None and (batch_size < 1):
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if early_stopping is not None and val_data is None:
        raise ValueError("early_stopping needs a validation split (pass Splits with val data)")
    if loader is None:
        if not torch.isfinite(train_data.X).all() or (train_data.y.is_floating_point() and not torch.isfinite(train_data.y).all()):
            raise ValueError("training data contains NaN or inf")
        check_fits(model, train_data.X, train_data.y, loss_fn, output=output)

    net = copy.deepcopy(model)
    if device is not None or dtype is not None:
        net = net.to(device=device, dtype=dtype)
    p0 = next(net.parameters(), None)
    if p0 is None:
        raise ValueError("the model has no parameters to train")
    dev, fdtype = p0.device, p0.dtype
    cast = lambda d: None if d is None else Data(d.X.to(dev, fdtype if d.X.is_floating_point() else d.X.dtype),  # noqa: E731
                                                 d.y.to(dev, fdtype) if d.y.is_floating_point() else d.y.to(dev))

    def prepare(b) -> tuple[torch.Tensor, torch.Tensor]:
        """One loader batch as (X, y) on the model's device and dtype."""
        from .adapters import split_batch
        from .validate import as_tensor_pair

        X, y = as_tensor_pair(*split_batch(b, batch_keys))
        return tuple(cast(Data(torch.as_tensor(X), torch.as_tensor(y))))

    if loader is None:
        train_data, val_data = cast(train_data), cast(val_data)
        n = train_data.n
    else:
        val_data = cast(val_data)
        n, first = 0, True
        for b in loader:  # one pass: count the examples, check the first batch fits and every batch is finite
            X, y = prepare(b)
            if first:
                check_fits(model, X, y, loss_fn, output=output)
                first = False
            check_finite(X, y, what=f"training batch (example {n})")
            n += int(X.shape[0])
        if n == 0:
            raise ValueError("the data loader yielded no examples; pass a loader over a non-empty dataset")
        train_data = loader
    full_batch = optimizer in FULL_BATCH or (loader is None and (batch_size is None or batch_size >= n))
    bs = n if full_batch else (batch_size if loader is None else None)

    gen = torch.Generator().manual_seed(int(seed))
    opt_options = dict(optimizer_options or {})
    params = [p for p in net.parameters() if p.requires_grad]
    import inspect

    takes_wd = "weight_decay" in inspect.signature(OPTIMIZERS.get(optimizer).torch_class.__init__).parameters
    if weight_decay and takes_wd:
        opt_options.setdefault("weight_decay", weight_decay)
    penalty = weight_decay if (weight_decay and not takes_wd) else 0.0
    opt = make_optimizer(optimizer, params, lr=lr, generator=torch.Generator().manual_seed(int(seed) + 1), **opt_options)
    sched = make_schedule(schedule, opt, steps=steps, **(schedule_options or {}))
    cbs = [(int(k), fn) for k, fn in (callbacks or [])]
    if sharpness_every is not None:
        if sharpness_every < 1:
            raise ValueError(f"sharpness_every must be >= 1, got {sharpness_every}")
        from .hessian import sharpness_callback

        sharp_data = train_data if loader is None else [prepare(b) for b in loader]
        fn_s = sharpness_callback(every=int(sharpness_every), data=sharp_data, loss=loss_fn, optimizer=opt, seed=seed)
        if output is not None:  # the callback measures a module that returns the selected tensor
            fn_s = _on_selected(fn_s, output)
        cbs.append((int(sharpness_every), fn_s))

    settings = {"optimizer": optimizer, "lr": lr, "steps": steps,
                "batch_size": None if full_batch or loader is not None else bs, "seed": seed,
                "data": "tensors" if loader is None else "loader", "output": _describe_spec(output),
                "batch_keys": None if batch_keys is None else list(batch_keys),
                "loss": loss_fn.name, "loss_options": loss_fn.options, "optimizer_options": opt_options,
                "momentum": momentum_of(optimizer, opt_options), "schedule": schedule,
                "schedule_options": schedule_options or {}, "weight_decay": weight_decay, "input_noise": input_noise,
                "early_stopping": early_stopping, "eval_every": eval_every, "snapshot_every": snapshot_every,
                "max_snapshots": max_snapshots, "divergence_factor": divergence_factor, "grad_clip": grad_clip,
                "sharpness_every": sharpness_every,
                "n_train": n, "n_params": sum(p.numel() for p in params), "dtype": str(fdtype), "device": str(dev)}

    rec = {k: [] for k in ("steps", "train_loss", "grad_norm", "lr")}
    ev = {k: [] for k in ("eval_steps", "train_eval_loss", "train_acc", "val_loss", "val_acc")}
    metrics: dict[str, tuple[list, list]] = {}
    snaps = _Snapshots(snapshot_every, max_snapshots)
    status, status_step, message = "completed", None, ""
    best_val, best_state, since_best, best_step = math.inf, None, 0, None
    restored_step: int | None = None
    initial_loss: float | None = None
    order = torch.randperm(n, generator=gen) if not full_batch and loader is None else None
    cursor = 0
    stream = None  # the loader's iterator of the current epoch
    t0 = time.perf_counter()

    def loader_batches():
        """The (X, y) batches of one step from the loader: all of them for full-batch optimizers,
        else the next one (a new epoch when the loader runs out)."""
        nonlocal stream
        if full_batch:
            return [prepare(b) for b in loader]
        for _ in range(2):
            if stream is None:
                stream = iter(loader)
            try:
                return [prepare(next(stream))]
            except StopIteration:
                stream = None
        raise ValueError("the data loader yielded no batches in a new epoch (a one-shot iterator?); pass a "
                         "re-iterable loader")

    def noisy(X):
        if input_noise:
            X = X + input_noise * torch.randn(X.shape, generator=gen, dtype=X.dtype).to(dev)
        return X

    def batch():
        nonlocal order, cursor
        if full_batch:
            X, y = train_data.X, train_data.y
        else:
            if cursor + bs > n:
                order, cursor = torch.randperm(n, generator=gen), 0
            idx = order[cursor : cursor + bs].to(dev)
            cursor += bs
            X, y = train_data.X[idx], train_data.y[idx]
        return noisy(X), y

    def evaluate(step: int):
        nonlocal best_val, best_state, since_best, best_step
        tl, ta = full_loss(net, train_data, loss_fn, output=output, prepare=prepare)
        vl, va = full_loss(net, val_data, loss_fn, output=output) if val_data is not None else (float("nan"), float("nan"))
        for k, v in zip(ev, (step, tl, ta, vl, va)):
            ev[k].append(v)
        if val_data is not None and math.isfinite(vl):
            if vl < best_val:
                best_val, since_best, best_step = vl, 0, step
                best_state = copy.deepcopy(net.state_dict()) if early_stopping is not None else None
            else:
                since_best += 1
        return tl

    def context():
        return {"settings": settings, "train_loss": rec["train_loss"], "data": train_data, "loss": loss_fn}

    with seeded(seed):
        net.train()
        try:
            for step in range(steps):
                snaps.maybe_add(step, net)
                if step % eval_every == 0:
                    tl = evaluate(step)
                    if initial_loss is None:
                        initial_loss = tl
                for every, fn in cbs:
                    if step % every == 0:
                        for k, v in (fn(step, net, context()) or {}).items():
                            metrics.setdefault(k, ([], []))
                            metrics[k][0].append(step)
                            metrics[k][1].append(float(v))
                if loader is None:
                    step_batches = [batch()]
                else:
                    step_batches = [(noisy(X), y) for X, y in loader_batches()]
                n_step = sum(int(X.shape[0]) for X, _ in step_batches)
                gnorm = [float("nan")]
                first_loss: list[float] = []

                def closure():
                    opt.zero_grad(set_to_none=True)
                    back = getattr(opt, "requires_grad", True)
                    L = None
                    for X, y in step_batches:  # one batch, or all of a loader's weighted by size
                        Lb = loss_fn(select_output(net(X), output), y)
                        if len(step_batches) > 1:
                            Lb = Lb * (X.shape[0] / n_step)
                        if back and len(step_batches) > 1:
                            Lb.backward()  # accumulate: the graph of one batch at a time
                            Lb = Lb.detach()
                        L = Lb if L is None else L + Lb
                    if penalty:
                        R = 0.5 * penalty * sum((p * p).sum() for p in params)
                        if back and len(step_batches) > 1:
                            R.backward()
                            R = R.detach()
                        L = L + R
                    if back:
                        if len(step_batches) == 1:
                            L.backward()
                        if not first_loss:
                            grads = [p.grad.detach() for p in params if p.grad is not None]
                            gnorm[0] = float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))) \
                                if grads else 0.0
                            if grad_clip is not None:
                                torch.nn.utils.clip_grad_norm_(params, grad_clip)
                    if not first_loss:
                        first_loss.append(float(L.detach()))
                    return L

                cur_lr = opt.param_groups[0]["lr"]
                if optimizer in CLOSURE_OPTIMIZERS:
                    opt.step(closure)
                else:
                    closure()
                    if math.isfinite(first_loss[0]):
                        opt.step()
                sched.step()
                L = first_loss[0]
                for k, v in zip(rec, (step, L, gnorm[0], cur_lr)):
                    rec[k].append(v)
                if initial_loss is None:
                    initial_loss = L
                ref = max(abs(initial_loss), 1e-12)
                if not math.isfinite(L) or L > divergence_factor * ref:
                    status, status_step = "diverged", step
                    message = f"loss {L:.4g} at step {step} (initial {initial_loss:.4g})"
                    break
                # (non-finite parameters show up as a non-finite loss at the next step; the last
                # step's update is checked after the loop)
                if early_stopping is not None and since_best >= early_stopping:
                    status, status_step = "stopped_early", step
                    message = f"no better validation loss for {early_stopping} evaluations"
                    break
                if progress is not None:
                    progress(step + 1, steps)
        except KeyboardInterrupt:
            status, status_step, message = "interrupted", len(rec["steps"]), "interrupted by the user"
        final_step = len(rec["steps"])
        if status == "completed" and not all(bool(torch.isfinite(p).all()) for p in params):
            status, status_step, message = "diverged", final_step - 1, f"non-finite parameters after step {final_step - 1}"
        if status in ("completed", "interrupted"):
            evaluate(final_step)
        elif status == "stopped_early":
            evaluate(final_step)
        # the snapshots end with the last trained parameters, labelled with their own step
        snaps.maybe_add(final_step, net, force=True)
        if status == "stopped_early" and restore_best and best_state is not None:
            net.load_state_dict(best_state)
            restored_step = best_step
            message += f"; the returned model has the parameters of step {best_step} (best validation loss)"
    net.eval()

    arr = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731
    return Trajectory(
        steps=np.asarray(rec["steps"], dtype=np.int64), train_loss=arr(rec["train_loss"]), grad_norm=arr(rec["grad_norm"]),
        lr=arr(rec["lr"]), eval_steps=np.asarray(ev["eval_steps"], dtype=np.int64),
        train_eval_loss=arr(ev["train_eval_loss"]), train_acc=arr(ev["train_acc"]), val_loss=arr(ev["val_loss"]),
        val_acc=arr(ev["val_acc"]), snapshot_steps=np.asarray(snaps.steps, dtype=np.int64),
        snapshots=np.stack(snaps.vecs) if snaps.vecs else np.zeros((0, 0)),
        metrics={k: (np.asarray(s, dtype=np.int64), arr(v)) for k, (s, v) in metrics.items()},
        status=status, status_step=status_step, message=message, wall_time=time.perf_counter() - t0,
        restored_step=restored_step,
        settings=settings, model=net, param_names=param_spec(net).names,
    )
