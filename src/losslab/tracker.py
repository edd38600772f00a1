"""Record a training run from inside the user's own loop.

``losslab.train`` runs its own loop. Researchers often have theirs (or a framework's). A
:class:`Tracker` wraps their model and records what ``train(..., eval_every=k,
snapshot_every=k, sharpness_every=k)`` records: at every step the loss they pass, the gradient
norm (read from ``.grad``) and the learning rate, and every ``every`` steps the full-data loss
on ``data``, a parameter snapshot (for the PCA plane of the trajectory, Li et al. 2018, Sec. 7)
and lambda_max of the loss on ``data`` against 2/lr (Cohen et al. 2021), with the same
measurement code as ``train``. The run goes to the run store as a ``train`` run, so
``losslab report ID`` draws it.

Call order, per iteration::

    opt.zero_grad(); loss = loss_fn(model(X), y); loss.backward()
    tr.step(loss)      # after backward (the gradient is read), before opt.step() (the
    opt.step()         # parameters are still the ones the loss was taken at)

so step ``s`` records the same point as ``train``'s step ``s``: the loss and gradient of the
batch at the parameters before the update, and the snapshot / lambda_max of those parameters.
With ``optimizer=`` the tracker sees each ``optimizer.step()`` (a step post-hook, removed on
exit): a first ``tr.step`` after the optimizer already stepped is refused with an error that
says so, and the final snapshot is labelled with the step whose update really happened.

The caller's model is never changed: measurements are functional (``torch.func``), in eval
mode, without grad accumulation, and leave the model's mode, ``.grad`` and the global random
state as they were.
"""
from __future__ import annotations

import math
import time
import warnings
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .adapters import OutputSelected, check_batch_keys, check_output_spec, split_batch
from .data.types import Data, Splits, as_data
from .hessian import sharpness_callback
from .losses import Loss, get_loss
from .params import param_spec
from .train import Trajectory, _describe_spec, _is_tensor_data, _Snapshots, full_loss

#: what a tracked run records in ``settings["source"]``; ``load_trained_run`` reads it to explain
#: that such a run's model (the user's own class) cannot be rebuilt from its settings
SOURCE = "tracker"


class Tracker:
    """Records a run of the user's own training loop, every ``every`` steps, into a Trajectory
    (and the run store).

    ``model``: the nn.Module being trained (read, never changed). ``loss``: a name, a Loss or a
    callable ``(output, target) ->`` per-example or mean loss; used for the measurements on
    ``data`` (the loss passed to :meth:`step` is whatever the loop computes). ``data``: what the
    full-data loss and lambda_max are measured on: (X, y) tensors/arrays, Data, Splits (train;
    its val split gives the validation loss), a DataLoader / list of batches (held in memory, in
    the model's device and dtype), or None (then only loss, gradient norm, lr and snapshots are
    recorded). ``every``: measure and snapshot every k steps (step 0 included). ``sharpness``:
    lambda_max every ``every`` steps (default: when ``data`` is given). ``optimizer``: the
    torch optimizer (its ``param_groups[0]`` give lr and momentum at each step, so schedules are
    followed) or ``lr=`` a constant learning rate. ``store``: a path or RunStore; the run is
    registered there as ``running`` on entry and finished on exit. ``settings``: extra settings
    for the record (e.g. ``{"data": "moons", "model": "mlp", "model_options": {...}}`` for a
    built-in model, so ``losslab surface --run`` can rebuild it). ``output=``/``batch_keys=``:
    as everywhere (:mod:`losslab.adapters`). ``seed``: Lanczos at step s uses ``seed + s``.

    Statuses: ``completed`` on a normal exit; ``diverged`` when the loss is NaN/inf or above
    ``divergence_factor`` x the initial loss (:meth:`step` then returns False and records no
    more steps; leave the loop); ``interrupted`` on Ctrl-C and ``failed`` on another exception
    inside the with-block (the exception propagates; every recorded step is kept and saved).
    """

    def __init__(self, model: nn.Module, *, loss: str | Loss | Any = None, data=None, every: int = 10,
                 sharpness: bool | None = None, optimizer: torch.optim.Optimizer | None = None,
                 lr: float | None = None, store=None, name: str = "tracked", seed: int = 0, output=None,
                 batch_keys=None, max_snapshots: int = 500, divergence_factor: float = 1e6,
                 sharpness_tol: float = 1e-4, settings: Mapping | None = None):
        from .validate import as_tensors, check_model_data, mode_dependent

        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer (steps between measurements), got {every!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer (to read its learning rate), got "
                            f"{type(optimizer).__name__}; pass lr=FLOAT for a hand-written update")
        if optimizer is not None and lr is not None:
            raise ValueError("give optimizer= (its lr is read at every step) or lr=, not both")
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr)
                               or lr <= 0):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        if not (isinstance(divergence_factor, (int, float)) and divergence_factor > 0):
            raise ValueError(f"divergence_factor must be > 0, got {divergence_factor!r}")
        output, batch_keys = check_output_spec(output), check_batch_keys(batch_keys)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"the model ({type(model).__name__}) has no trainable parameters to track")
        sharpness = data is not None if sharpness is None else bool(sharpness)
        if data is None and sharpness:
            raise ValueError("sharpness=True measures lambda_max on data: pass data=(X, y) (a fixed batch or a "
                             "subset is enough), or sharpness=False")
        if data is not None and loss is None:
            raise ValueError("data= is measured with a loss: pass loss= (a name such as 'cross_entropy', a Loss, "
                             "or the callable your loop uses, (output, target) -> loss)")
        if sharpness and optimizer is None and lr is None:
            raise ValueError("sharpness compares lambda_max with 2/lr: pass optimizer=OPT (its lr is read at each "
                             "step) or lr=FLOAT")
        self.model, self.every, self.seed, self.name = model, every, seed, name
        self.optimizer, self.output, self.batch_keys = optimizer, output, batch_keys
        self.divergence_factor = float(divergence_factor)
        self._params = params
        self._lr = None if lr is None else float(lr)
        self.loss = get_loss(loss) if loss is not None else None

        p0 = params[0]
        dev, fdtype = p0.device, p0.dtype

        def cast(X, y):
            X, y = torch.as_tensor(X), torch.as_tensor(y)
            return (X.to(dev, fdtype if X.is_floating_point() else X.dtype),
                    y.to(dev, fdtype) if y.is_floating_point() else y.to(dev))

        data = as_tensors(data)
        if isinstance(data, Mapping):  # one dict batch holding all the data
            data = split_batch(data, batch_keys)
        self._val = None
        kind = None
        if data is None:
            self._data = None
        else:
            check_model_data(model, data, self.loss, what="Tracker data", output=output, batch_keys=batch_keys)
            if _is_tensor_data(data):
                kind = "tensors"
                self._data = Data(*cast(*as_data(data)))
                if isinstance(data, Splits) and data.val is not None:
                    self._val = Data(*cast(*data.val))
            else:
                from .validate import as_tensor_pair, check_finite

                kind = "loader"
                self._data = [cast(*as_tensor_pair(*split_batch(b, batch_keys))) for b in data]
                for i, (X, y) in enumerate(self._data):
                    check_finite(X, y, what=f"Tracker data batch {i}")
                if not self._data or sum(int(X.shape[0]) for X, _ in self._data) == 0:
                    raise ValueError("the Tracker's data loader yielded no examples; pass a non-empty one")
        self._sharp = None
        if sharpness:
            fn = sharpness_callback(every=every, data=self._data, loss=self.loss, optimizer=optimizer, lr=lr,
                                    seed=seed, tol=sharpness_tol)
            self._sharp = fn
        n = (self._data.n if isinstance(self._data, Data) else sum(int(X.shape[0]) for X, _ in self._data)) \
            if self._data is not None else None
        lr0 = self._current_lr()
        g = optimizer.param_groups[0] if optimizer is not None else {}
        opt_options = {k: (list(v) if isinstance(v, (tuple, list)) else v) for k, v in g.items()
                       if k not in ("params", "lr") and (isinstance(v, (int, float, bool, str)) or (
                           isinstance(v, (tuple, list)) and all(isinstance(x, (int, float)) for x in v)))}
        self.settings = {
            "source": SOURCE, "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
            "optimizer": type(optimizer).__name__.lower() if optimizer is not None else None,
            "optimizer_options": opt_options, "lr": lr0 if math.isfinite(lr0) else None,
            "momentum": float(g.get("momentum", 0.0) or 0.0) if isinstance(optimizer, torch.optim.SGD) else 0.0,
            "seed": seed, "every": every, "eval_every": every if data is not None else None,
            "snapshot_every": every, "sharpness_every": every if sharpness else None, "max_snapshots": max_snapshots,
            "divergence_factor": self.divergence_factor, "sharpness_tol": sharpness_tol,
            "measured_on": kind, "n_train": n, "output": _describe_spec(output),
            # the measurements run in eval mode (as train()'s do); these modules differ in train mode
            "measured_mode": "eval", "mode_dependent_modules": mode_dependent(model),
            "batch_keys": None if batch_keys is None else list(batch_keys),
            "loss": self.loss.name if self.loss is not None else None,
            "loss_options": self.loss.options if self.loss is not None else {},
            "n_params": sum(p.numel() for p in params), "dtype": str(fdtype), "device": str(dev),
            **dict(settings or {})}
        self._snaps = _Snapshots(every, max_snapshots)
        self._rec: dict[str, list] = {k: [] for k in ("steps", "train_loss", "grad_norm", "lr")}
        self._ev: dict[str, list] = {k: [] for k in ("eval_steps", "train_eval_loss", "train_acc", "val_loss", "val_acc")}
        self._metrics: dict[str, tuple[list, list]] = {}
        self.status, self.status_step, self.message = "running", None, ""
        self._initial: float | None = None
        self._closed = False
        self._warned_no_grad = False
        self._opt_count = 0
        self._hook = optimizer.register_step_post_hook(self._count_step) if optimizer is not None else None
        self.trajectory: Trajectory | None = None
        self._t0 = time.perf_counter()
        self.store = None
        self.run_id: str | None = None
        if store is not None:
            from .store import RunStore, open_store

            self.store = store if isinstance(store, RunStore) else open_store(store)
            self.run_id = self.store.new_run(name=name, kind="train", settings=self.settings)

    # -- the loop's side ------------------------------------------------------------------
    def _count_step(self, *_):
        self._opt_count += 1

    def _current_lr(self) -> float:
        if self.optimizer is not None:
            return float(self.optimizer.param_groups[0]["lr"])
        return self._lr if self._lr is not None else float("nan")

    def _measured_model(self) -> nn.Module:
        return self.model if self.output is None else OutputSelected(self.model, self.output)

    def _evaluate(self, step: int) -> float:
        # full_loss runs in eval mode without grad and restores every submodule's mode
        tl, ta = full_loss(self.model, self._data, self.loss, output=self.output, prepare=lambda b: b)
        vl, va = full_loss(self.model, self._val, self.loss, output=self.output) if self._val is not None \
            else (float("nan"), float("nan"))
        for k, v in zip(self._ev, (step, tl, ta, vl, va)):
            self._ev[k].append(v)
        return tl

    def step(self, loss) -> bool:
        """Record one training step: call after ``loss.backward()`` and before ``optimizer.step()``.

        ``loss``: the step's loss (a scalar tensor or a float). Returns True while the run is
        healthy, False once it has diverged (NaN/inf loss, or above ``divergence_factor`` x the
        initial loss); later calls then record nothing."""
        if self._closed:
            raise RuntimeError(f"the Tracker of run {self.name!r} is closed (its with-block ended); make a new one")
        if self.status == "diverged":
            return False
        if isinstance(loss, torch.Tensor):
            if loss.numel() != 1:
                raise ValueError(f"step(loss) takes the step's scalar loss, got a tensor of shape {tuple(loss.shape)}; "
                                 f"reduce it (e.g. loss.mean()) first")
            L = float(loss.detach())
        elif isinstance(loss, (int, float)) and not isinstance(loss, bool):
            L = float(loss)
        else:
            raise TypeError(f"step(loss) takes a scalar tensor or a float, got {type(loss).__name__}")
        s = len(self._rec["steps"])
        if s == 0 and self._opt_count:
            raise RuntimeError("Tracker.step() was first called after optimizer.step(): the parameters have already "
                               "moved past the point the loss was taken at. Call tr.step(loss) after loss.backward() "
                               "and before optimizer.step(), and create the Tracker just before the loop")
        # the gradient of this step, before the optimizer moves (and before any clipping): the
        # same reduction train() uses, so the two agree bit for bit
        grads = [p.grad.detach() for p in self._params if p.grad is not None]
        if grads:
            gnorm = float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))
        else:
            gnorm = float("nan")
            if not self._warned_no_grad:
                self._warned_no_grad = True
                warnings.warn("Tracker.step(): no parameter has a .grad, so the gradient norm is NaN; call "
                              "tr.step(loss) after loss.backward() (and before optimizer.zero_grad())",
                              RuntimeWarning, stacklevel=2)
        cur_lr = self._current_lr()
        if s % self.every == 0:  # the order of train(): snapshot, evaluation, callbacks, then the step
            self._snaps.maybe_add(s, self.model)
            if self._data is not None:
                tl = self._evaluate(s)
                if self._initial is None:
                    self._initial = tl
            if self._sharp is not None:
                for k, v in (self._sharp(s, self._measured_model(), None) or {}).items():
                    self._metrics.setdefault(k, ([], []))
                    self._metrics[k][0].append(s)
                    self._metrics[k][1].append(float(v))
        for k, v in zip(self._rec, (s, L, gnorm, cur_lr)):
            self._rec[k].append(v)
        if self._initial is None:
            self._initial = L
        ref = max(abs(self._initial), 1e-12)
        if not math.isfinite(L) or L > self.divergence_factor * ref:
            self.status, self.status_step = "diverged", s
            self.message = f"loss {L:.4g} at step {s} (initial {self._initial:.4g})"
            return False
        return True

    # -- the end -----------------------------------------------------------------------------
    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.close(status="interrupted", message="interrupted by the user")
        else:
            self.close(status="failed", message=f"{exc_type.__name__}: {exc}")
        return False  # the exception (if any) goes on to the caller

    def close(self, *, status: str | None = None, message: str = "") -> Trajectory:
        """Finish the run (the with-block does this): the final evaluation and snapshot, the status,
        and the store record. Returns the Trajectory (also ``self.trajectory``)."""
        if self._closed:
            return self.trajectory
        self._closed = True
        if self._hook is not None:
            self._hook.remove()
        n_steps = len(self._rec["steps"])
        if self.status == "running":
            if status is not None:
                self.status, self.status_step, self.message = status, n_steps, message
            elif not all(bool(torch.isfinite(p).all()) for p in self._params):
                self.status, self.status_step = "diverged", n_steps - 1
                self.message = f"non-finite parameters after step {n_steps - 1}"
            else:
                self.status = "completed"
        # the parameters now are those after the last update, unless (seen with optimizer=) the
        # last recorded step's update never ran (an exception between tr.step and opt.step)
        final_step = n_steps
        if self.optimizer is not None and n_steps and self._opt_count < n_steps:
            final_step = n_steps - 1
        if self._data is not None and self.status in ("completed", "interrupted") and n_steps:
            try:
                self._evaluate(final_step)
            except Exception as e:  # never lose the recorded steps to a failing final evaluation
                self.message += f"; final evaluation failed ({type(e).__name__}: {e})"
        self._snaps.maybe_add(final_step, self.model, force=True)
        arr = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731
        snaps = self._snaps
        self.trajectory = Trajectory(
            steps=np.asarray(self._rec["steps"], dtype=np.int64), train_loss=arr(self._rec["train_loss"]),
            grad_norm=arr(self._rec["grad_norm"]), lr=arr(self._rec["lr"]),
            eval_steps=np.asarray(self._ev["eval_steps"], dtype=np.int64),
            train_eval_loss=arr(self._ev["train_eval_loss"]), train_acc=arr(self._ev["train_acc"]),
            val_loss=arr(self._ev["val_loss"]), val_acc=arr(self._ev["val_acc"]),
            snapshot_steps=np.asarray(snaps.steps, dtype=np.int64),
            snapshots=np.stack(snaps.vecs) if snaps.vecs else np.zeros((0, 0)),
            metrics={k: (np.asarray(s, dtype=np.int64), arr(v)) for k, (s, v) in self._metrics.items()},
            status=self.status, status_step=self.status_step, message=self.message,
            wall_time=time.perf_counter() - self._t0, settings=dict(self.settings), model=self.model,
            param_names=param_spec(self.model).names)
        if self.store is not None:
            self.store.save_trajectory(self.trajectory, name=self.name, run_id=self.run_id)
        return self.trajectory


__all__ = ["Tracker", "SOURCE"]
