"""Curvature operators: v -> H v (Hessian) and v -> G v (Gauss-Newton) over the full data.

The full-data loss is L(theta) = (1/N) sum_n l(f(x_n; theta), y_n), so over batches B_b

    H v = sum_b  d/dtheta < grad_theta [ (1/N) sum_{n in B_b} l_n ], v >        (Pearlmutter 1994)

i.e. each batch's *sum* of per-example losses is divided by the total example count N, which
makes the result independent of the batch size (tested). Two ways of computing one product:

- ``double_backward``: reverse-over-reverse (Pearlmutter's R-operator through autograd): the
  gradient graph of each batch is built once with ``create_graph=True`` and kept (when the data
  is one batch, or ``cache_graph=True``), so each further product costs one backward pass;
- ``forward_over_reverse``: ``torch.func.jvp(torch.func.grad(L))``; ``matmat`` runs it under
  ``torch.func.vmap`` so several vectors share one pass.

The Gauss-Newton operator (Schraudolph 2002; Martens 2010 sec. 4.2) is
G = (1/N) sum_n J_n^T H_out,n J_n with J_n = d f(x_n)/d theta and H_out,n = d^2 l_n / d f^2,
computed as J^T (H_out (J v)) by a jvp, a Hessian-vector product in output space, and a vjp.

Parameters with ``requires_grad=False`` are not part of the operator (held fixed at their
values); parameters the loss does not touch get zero rows/columns, never a crash. A ``block``
restricts the operator to a subset of parameters (one layer, or any filter): H_BB, the
principal sub-matrix, with all other parameters held fixed. The caller's model is never
mutated: parameters and buffers are copied (and cast to ``dtype``), and the train/eval mode is
restored after every forward pass.

Checks (cheap, at the boundary): parameters, buffers and every data batch must be finite when
the operator is built (once; a DataLoader's batches are all read then), and every product must
be finite -- a NaN/inf product (the loss or its gradient not finite at these parameters, e.g. a
diverged model) raises :class:`NonFiniteError` (a ValueError), so Lanczos, power iteration,
Hutchinson and SLQ stop at once instead of running on NaN. A model that forward-mode autodiff
cannot handle (LSTM/GRU/RNN kernels) with ``forward_over_reverse`` or the GGN raises
:class:`UnsupportedModelError` (a ValueError and a NotImplementedError) at the first product.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import warnings
from typing import Callable, Sequence

import torch
from torch import nn

from ..data import iterate_batches
from ..kernels import second_order
from ..losses import Loss, get_loss
from ..params import ParamSpec, eval_mode
from ..registry import Registry

HVP_METHODS: Registry = Registry("hvp method")
HVP_METHODS.register("double_backward", "double_backward", doc="Reverse-over-reverse autograd (Pearlmutter); gradient graph cached.")
HVP_METHODS.register("forward_over_reverse", "forward_over_reverse", doc="torch.func.jvp over torch.func.grad; vmapped for matmat.")

OPERATOR_KINDS: Registry = Registry("curvature operator")
OPERATOR_KINDS.register("hessian", "hessian", doc="The Hessian of the full-data loss.")
OPERATOR_KINDS.register("ggn", "ggn", doc="The generalized Gauss-Newton matrix J^T H_out J (PSD for convex losses).")

BlockSpec = None | str | Sequence[str] | Callable[[str], bool]


class UnsupportedModelError(ValueError, NotImplementedError):
    """The chosen differentiation method cannot handle this model (e.g. forward-mode autodiff
    through LSTM/GRU/RNN kernels). A ValueError (bad input choice) and a NotImplementedError."""


class NonFiniteError(ValueError):
    """The loss, its gradient or a curvature product is NaN/inf at the given parameters."""


# -- argument checks shared by the curvature functions (cheap, at the public boundary) -----------
def check_int(name: str, value, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; bools, floats and strings are rejected (TypeError)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum} (an integer), got {value}")
    return int(value)


def check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (or >= 0 with ``allow_zero``); NaN, inf and bools rejected."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>=' if allow_zero else '>'} 0 and finite, got {value!r}")
    return v


def check_seed(seed) -> None:
    """A seed is an int or a ``torch.Generator`` (None, floats and bools are rejected: they would
    silently become some other seed)."""
    if isinstance(seed, torch.Generator):
        return
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int or a torch.Generator, got {seed!r} ({type(seed).__name__}); "
                        "pass e.g. seed=0")


@contextlib.contextmanager
def _quiet_torch_jit():
    """torch.func.jvp's first call imports torch's forward-mode decompositions, which call the
    deprecated ``torch.jit.script`` and warn ~18 times (torch internals, nothing the user can
    act on): silence exactly those, here only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=DeprecationWarning)
        yield


# what torch says when a differentiation path is missing for an op (the first line of its error)
_AUTODIFF_LIMITS = ("forward ad", "forward-mode", "functorch", "torch.func", "derivative for", "not implemented",
                    "setup_context", "does not support", "once_differentiable", "double backward", "vmap")


def _autodiff_limit(e: Exception) -> bool:
    """Whether ``e`` is torch refusing a differentiation path (not a bug in the model or data)."""
    return isinstance(e, NotImplementedError) or any(k in str(e).lower() for k in _AUTODIFF_LIMITS)


def all_finite(t: torch.Tensor) -> bool:
    """Whether every entry of ``t`` is finite. Fast path: a NaN/inf entry makes the sum NaN/inf,
    so a finite sum proves it (one reduction, ~15x cheaper on CPU than ``isfinite(t).all()``);
    only a non-finite sum (or an overflowing one) takes the exact check."""
    return math.isfinite(float(t.sum())) or bool(torch.isfinite(t).all())


def _nonfinite_tensors(tensors: dict[str, torch.Tensor]) -> list[str]:
    return [n for n, t in tensors.items() if t.is_floating_point() and t.numel() and not all_finite(t)]


def select_block(names: Sequence[str], block: BlockSpec) -> list[str]:
    """The parameter names a ``block`` selects, in model order.

    ``block`` is None (all), a layer/module prefix (``"net.0"`` selects ``net.0.weight`` and
    ``net.0.bias``) or an exact name, a list of names/prefixes, or a predicate ``name -> bool``.
    """
    names = list(names)
    if block is None:
        return names
    if callable(block) and not isinstance(block, str):
        chosen = [n for n in names if block(n)]
        what = "the block filter"
    else:
        wanted = [block] if isinstance(block, str) else list(block)
        chosen = []
        for w in wanted:
            hits = [n for n in names if n == w or n.startswith(w + ".")]
            if not hits:
                layers = sorted({n.rsplit(".", 1)[0] for n in names if "." in n})
                raise ValueError(
                    f"block {w!r} matches no trainable parameter. Valid parameter names: {', '.join(names)}; "
                    f"valid layer prefixes: {', '.join(layers) or '(none)'}"
                )
            chosen += [n for n in hits if n not in chosen]
        chosen = [n for n in names if n in chosen]
        what = f"block {block!r}"
    if not chosen:
        raise ValueError(f"{what} selects no trainable parameter; names are: {', '.join(names)}")
    return chosen


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A detached copy (never a view of the caller's storage: later in-place edits of the model
    must not change an operator that may have cached its gradient graph)."""
    return (t.detach().to(dtype) if t.is_floating_point() else t.detach()).clone()


class HessianOperator:
    """The symmetric linear operator v -> H v (or G v) of a model's full-data loss.

    Vectors are flat (P,) tensors laid out by ``spec`` (``spec.unflatten`` gives the dict).
    ``n_products`` counts operator-vector products done so far (each column of a ``matmat``
    counts one). Build it with :func:`hessian_operator` or :func:`ggn_operator`.
    """

    def __init__(self, model: nn.Module, data, loss: str | Loss, *, kind: str = "hessian",
                 method: str = "double_backward", block: BlockSpec = None, batch_size: int | None = None,
                 dtype: torch.dtype | None = None, train_mode: bool = False, cache_graph: bool | None = None,
                 params: dict[str, torch.Tensor] | None = None, output=None, batch_keys=None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        from ..validate import check_model_data

        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size)  # (None: the whole data in one batch)
        from ..adapters import check_batch_keys, check_output_spec

        self.output = check_output_spec(output)
        self.batch_keys = check_batch_keys(batch_keys)
        check_model_data(model, data, loss, output=self.output, batch_keys=self.batch_keys)
        self.kind = OPERATOR_KINDS.get(kind)
        self.method = HVP_METHODS.get(method)
        self.loss = get_loss(loss)
        self.model = model
        self.train_mode = bool(train_mode)
        self.mode = "train" if self.train_mode else "eval"  # the mode the Hessian is measured in
        self.caller_mode = "train" if model.training else "eval"  # the caller's (never changed)
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if params is not None:
            unknown = [n for n in params if n not in trainable]
            if unknown:
                raise ValueError(f"params has names {unknown} that are not trainable parameters of the model; "
                                 f"valid: {', '.join(trainable)}")
            trainable = {**trainable, **dict(params)}
        if not trainable:
            raise ValueError("the model has no trainable parameters (all have requires_grad=False); "
                             "nothing to take a Hessian with respect to")
        first = next(iter(trainable.values()))
        if dtype is None:
            dtype = first.dtype if first.is_floating_point() else torch.get_default_dtype()
        self.dtype = dtype
        self.device = first.device
        block_names = select_block(list(trainable), block)
        self.block = block
        self._params = {n: _cast(trainable[n], dtype) for n in block_names}
        # everything not differentiated: other trainable params, frozen params (cast to dtype)
        self._fixed = {n: _cast(p, dtype) for n, p in trainable.items() if n not in self._params}
        self._fixed.update({n: _cast(p, dtype) for n, p in model.named_parameters() if not p.requires_grad})
        self._buffers = {n: _cast(b, dtype) for n, b in model.named_buffers()}
        bad = _nonfinite_tensors({**self._params, **self._fixed})
        if bad:
            raise NonFiniteError(
                f"parameter(s) {', '.join(bad)} contain NaN or inf (in {str(dtype).replace('torch.', '')}); the loss "
                "and its Hessian are undefined there (a diverged model?): use a finite checkpoint or re-initialize")
        bad = _nonfinite_tensors(self._buffers)
        if bad:
            raise NonFiniteError(f"buffer(s) {', '.join(bad)} contain NaN or inf (e.g. batch-norm running statistics "
                                 "of a diverged run); reset them (module.reset_running_stats()) or use a finite checkpoint")
        self.spec = ParamSpec(names=tuple(block_names), shapes=tuple(p.shape for p in self._params.values()),
                              dtype=dtype, device=self.device)
        from ..validate import check_finite

        self._batches = []
        for i, (X, y) in enumerate(iterate_batches(data, batch_size, batch_keys=self.batch_keys)):
            X = _cast(torch.as_tensor(X), dtype).to(self.device)
            y = _cast(torch.as_tensor(y), dtype).to(self.device)
            # every batch once, here (a DataLoader's later batches are not seen by check_model_data)
            try:
                check_finite(X, y, what=f"data batch {i}")
            except ValueError as e:
                raise NonFiniteError(str(e)) from None
            self._batches.append((X, y))
        self.n = sum(int(X.shape[0]) for X, _ in self._batches)
        if self.n == 0:
            raise ValueError("the data has no examples")
        self.cache_graph = (len(self._batches) == 1) if cache_graph is None else bool(cache_graph)
        self._cache: dict[int, tuple] = {}
        self.n_products = 0
        # the layout, computed once (ParamSpec recomputes numels on every access)
        self._numels = self.spec.numels
        self._shapes = self.spec.shapes
        self._size = sum(self._numels)

    # -- basic properties -------------------------------------------------------------------
    @property
    def size(self) -> int:
        return self._size

    @property
    def shape(self) -> tuple[int, int]:
        return (self.size, self.size)

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """The (block of) parameters the operator is evaluated at (copies, in ``dtype``)."""
        return dict(self._params)

    @property
    def theta(self) -> torch.Tensor:
        """The flat parameter vector (P,) of the block."""
        return self.spec.flatten(self._params)

    def __repr__(self) -> str:
        return (f"HessianOperator(kind={self.kind!r}, method={self.method!r}, size={self.size}, n={self.n}, "
                f"batches={len(self._batches)}, dtype={self.dtype})")

    # -- the loss as a function of the block ---------------------------------------------------
    def _forward(self, p: dict[str, torch.Tensor], X: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call

        # in train mode batch norm updates running statistics in place: give it fresh copies
        # (made inside any torch.func transform, so nothing captured is mutated)
        bufs = {n: b.clone() for n, b in self._buffers.items()} if self.train_mode else self._buffers
        from ..adapters import select_output

        # every forward (products, gradient, loss, exact Hessian, epsilon-sharpness) records a
        # graph of double-differentiable kernels (losslab.kernels), caller's settings restored
        with eval_mode(self.model, train=self.train_mode), second_order(self.model):
            out = functional_call(self.model, {**self._fixed, **p, **bufs}, (X,), strict=False, tie_weights=True)
        return select_output(out, self.output)

    def _batch_loss(self, p: dict[str, torch.Tensor], X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss.per_example(self._forward(p, X), y).sum() / self.n

    def loss_at(self, theta: torch.Tensor | None = None) -> float:
        """Full-data loss at the flat block vector ``theta`` (default: the operator's point)."""
        p = self._params if theta is None else self.spec.unflatten(theta.to(self.dtype))
        with torch.no_grad(), second_order(self.model):  # the same attention kernel as the products
            return float(sum(self._batch_loss(p, X, y) for X, y in self._batches))

    def gradient(self, theta: torch.Tensor | None = None) -> torch.Tensor:
        """Full-data gradient (P,) with respect to the block; zeros for untouched parameters."""
        from torch.func import grad

        p = self._params if theta is None else self.spec.unflatten(theta.to(self.dtype))
        total = torch.zeros(self.size, dtype=self.dtype, device=self.device)
        with second_order(self.model):
            for X, y in self._batches:
                g = grad(lambda q: self._batch_loss(q, X, y))(p)
                total += self.spec.flatten(g)
        return total

    # -- products -----------------------------------------------------------------------------
    def _check(self, v: torch.Tensor, batched: bool) -> torch.Tensor:
        if not isinstance(v, torch.Tensor):
            v = torch.as_tensor(v)
        want = 2 if batched else 1
        if v.dim() != want or v.shape[0] != self.size:
            raise ValueError(f"expected a {'(P, k) matrix' if batched else '(P,) vector'} with P={self.size}, "
                             f"got shape {tuple(v.shape)}")
        v = v.to(dtype=self.dtype, device=self.device)
        if not all_finite(v):
            raise ValueError(f"the {'matrix V' if batched else 'vector v'} contains NaN or inf; pass finite values")
        return v

    def _finite(self, out: torch.Tensor) -> torch.Tensor:
        """``out`` if finite, else a clear error: parameters and data were checked finite when the
        operator was built, so a NaN/inf product means the loss or its gradient overflowed or is
        undefined here (a diverged model, log(0), sqrt of a negative, float16 overflow...)."""
        if all_finite(out):
            return out
        try:
            loss = f"{self.loss_at():.6g}"
        except Exception:  # noqa: BLE001 -- only for the message
            loss = "not computable"
        raise NonFiniteError(
            f"the {'Hessian' if self.kind == 'hessian' else 'Gauss-Newton'}-vector product is not finite (NaN/inf) at "
            f"these parameters: the loss ({loss}) or its "
            f"gradient is not finite or overflows in {str(self.dtype).replace('torch.', '')} (a diverged model?); "
            "evaluate the curvature at finite, trained parameters, or use dtype=torch.float64")

    def _unsupported(self, e: Exception) -> UnsupportedModelError:
        """The error for a differentiation path torch cannot take on this model. Any advice in it
        has been followed here first (one product by the alternative): it suggests only what works."""
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if self.kind == "hessian":
            what = f"method={self.method!r} ({'torch.func.jvp over grad' if self.method == 'forward_over_reverse' else 'double backward'})"
            alts = [("hessian", m) for m in HVP_METHODS.names() if m != self.method]
        else:
            what = "the Gauss-Newton operator (torch.func.jvp, forward-mode autodiff)"
            alts = [("hessian", m) for m in HVP_METHODS.names()]
        works = [(k, m) for k, m in alts if self._works(k, m)]
        if works:
            k, m = works[0]
            hint = (f"use method={m!r} (checked: it works on this model)" if k == self.kind else
                    f"use hessian_operator(..., method={m!r}) instead (checked: the Hessian works on this model)")
        else:
            hint = ("no other differentiation method works on this model either; make the failing operation "
                    "differentiable twice (e.g. a custom autograd.Function needs a differentiable backward, plus "
                    "setup_context and jvp for torch.func)")
        return UnsupportedModelError(f"{what} does not support this model ({first}); {hint}")

    def _works(self, kind: str, method: str) -> bool:
        """Whether products by (kind, method) succeed on the first batch and are symmetric,
        u^T (A w) = w^T (A u) to sqrt(eps) (for honest advice; only on the error path). The
        symmetry probe catches a method that runs but is wrong: torch 2.13 double-backpropagates
        through a ``@once_differentiable`` autograd.Function without its promised error, dropping
        terms (an asymmetric 'Hessian', measured 0.6 of max|H|)."""
        import copy

        alt = copy.copy(self)
        alt.kind, alt.method, alt._batches, alt._cache, alt.cache_graph = kind, method, self._batches[:1], {}, False
        gen = torch.Generator().manual_seed(0)
        u, w = (torch.randn(self.size, generator=gen, dtype=torch.float64).to(self.dtype).to(self.device)
                for _ in range(2))
        try:
            with second_order(self.model), _quiet_torch_jit(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                Au, Aw = alt._products(u), alt._products(w)
        except Exception:  # noqa: BLE001 -- any failure means: do not advise it
            return False
        a, b = float(u @ Aw), float(w @ Au)
        scale = float(torch.linalg.vector_norm(u)) * max(float(torch.linalg.vector_norm(Au)),
                                                         float(torch.linalg.vector_norm(Aw)))
        return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= math.sqrt(torch.finfo(self.dtype).eps) * scale

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """H v for one flat vector v (P,)."""
        v = self._check(v, batched=False)
        self.n_products += 1
        with second_order(self.model):  # double-differentiable kernels (losslab.kernels); caller's flags restored
            return self._matvec(v)

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        try:
            out = self._products(v)
        except (NotImplementedError, RuntimeError) as e:
            if not _autodiff_limit(e):
                raise
            raise self._unsupported(e) from None
        return self._finite(out)

    def _products(self, v: torch.Tensor) -> torch.Tensor:
        """Sum over batches of each batch's product with v (P,), unchecked."""
        if self.kind == "hessian" and self.method == "double_backward":
            vs = self._split(v)
            out = None
            for b, (X, y) in enumerate(self._batches):
                hv = self._double_backward(b, X, y, vs)
                out = hv if out is None else out.add_(hv)
            return out
        out = torch.zeros(self.size, dtype=self.dtype, device=self.device)
        vd = self.spec.unflatten(v)
        with _quiet_torch_jit():
            for X, y in self._batches:
                out += self.spec.flatten(self._product_func(X, y, vd))
        return out

    __call__ = matvec

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """H V for a (P, k) matrix; vmapped for ``forward_over_reverse`` and ``ggn``."""
        V = self._check(V, batched=True)
        k = V.shape[1]
        if k == 0:
            return V.clone()
        if self.method == "double_backward" and self.kind == "hessian":
            cols = [self.matvec(V[:, j]) for j in range(k)]
            return torch.stack(cols, dim=1)
        self.n_products += k
        with second_order(self.model):
            return self._matmat(V)

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        from torch.func import vmap

        k = V.shape[1]
        out = torch.zeros(self.size, k, dtype=self.dtype, device=self.device)
        Vd = self.spec.unflatten(V.T.contiguous())  # dict of (k, *shape)
        try:
            with _quiet_torch_jit():
                for b, (X, y) in enumerate(self._batches):
                    fn = lambda vd, b=b, X=X, y=y: self.spec.flatten(self._product_func(X, y, vd))  # noqa: E731
                    out += vmap(fn, randomness="same")(Vd).T
        except (NotImplementedError, RuntimeError) as e:
            if not _autodiff_limit(e):
                raise
            raise self._unsupported(e) from None
        return self._finite(out)

    def _split(self, v: torch.Tensor) -> list[torch.Tensor]:
        """Flat (P,) -> list of views shaped like the block's parameters (no copies)."""
        return [c.view(s) for c, s in zip(v.split(self._numels), self._shapes)]

    def _gradient_graph(self, b: int, X, y):
        """(leaves, g, live): leaf copies of the block, the gradient of batch b's loss term built
        with ``create_graph=True``, and the indices i whose g[i] depends on the parameters.
        Cached per batch when ``cache_graph`` (the default for one batch), so every further
        product is a single backward pass through the retained graph (as in PyHessian)."""
        if self.cache_graph and b in self._cache:
            return self._cache[b]
        leaves = [t.detach().clone().requires_grad_(True) for t in self._params.values()]
        with torch.enable_grad():
            L = self._batch_loss(dict(zip(self._params, leaves)), X, y)
            if L.requires_grad:
                g = torch.autograd.grad(L, leaves, create_graph=True, allow_unused=True)
            else:
                g = (None,) * len(leaves)
        live = [i for i, gi in enumerate(g) if gi is not None and gi.requires_grad]
        entry = (leaves, g, live)
        if self.cache_graph:
            self._cache[b] = entry
        return entry

    def _double_backward(self, b: int, X, y, vs: list[torch.Tensor]) -> torch.Tensor:
        """Batch b's term of H v: d/dtheta <g(theta), v> = autograd.grad(g, theta, grad_outputs=v)
        (Pearlmutter 1994), v given as per-parameter views ``vs``."""
        leaves, g, live = self._gradient_graph(b, X, y)
        if not live:  # the gradient does not depend on the parameters: zero curvature
            return torch.zeros(self.size, dtype=self.dtype, device=self.device)
        with torch.enable_grad():
            hv = torch.autograd.grad([g[i] for i in live], leaves, grad_outputs=[vs[i] for i in live],
                                     retain_graph=self.cache_graph, allow_unused=True)
        return torch.cat([(h if h is not None else torch.zeros_like(p)).reshape(-1)
                          for h, p in zip(hv, leaves)])

    def _product_func(self, X, y, vd: dict) -> dict[str, torch.Tensor]:
        from torch.func import grad, jvp, vjp

        p = self._params
        if self.kind == "hessian":
            return jvp(grad(lambda q: self._batch_loss(q, X, y)), (p,), (vd,))[1]
        # Gauss-Newton: J^T H_out J v
        f = lambda q: self._forward(q, X)  # noqa: E731
        out, Jv = jvp(f, (p,), (vd,))
        lossf = lambda o: self.loss.per_example(o, y).sum() / self.n  # noqa: E731
        HJv = jvp(grad(lossf), (out.detach(),), (Jv,))[1]
        _, pullback = vjp(f, p)
        return pullback(HJv)[0]

    def dense(self) -> torch.Tensor:
        """The (P, P) matrix by products with the basis vectors (P products; small models only)."""
        eye = torch.eye(self.size, dtype=self.dtype, device=self.device)
        H = self.matmat(eye)
        return (H + H.T) / 2


def hessian_operator(model: nn.Module, data, loss: str | Loss, *, method: str = "double_backward",
                     block: BlockSpec = None, batch_size: int | None = None, dtype: torch.dtype | None = None,
                     train_mode: bool = False, cache_graph: bool | None = None, output=None,
                     batch_keys=None, warn_mode: bool = True) -> HessianOperator:
    """The Hessian of the full-data loss of ``model`` on ``data`` as a linear operator.

    ``data``: (X, y), ``Data``, ``Splits`` (its train split) or an iterable of (X, y) batches;
    ``batch_size`` splits tensors into batches (the product is the same, memory is smaller).
    ``method``: ``double_backward`` or ``forward_over_reverse``. ``block``: see :func:`select_block`.
    ``dtype``: compute in this dtype (e.g. ``torch.float64``), casting copies of the parameters.
    ``train_mode``: evaluate the model in train mode (dropout, batch statistics); default eval.
    ``output``: what the loss takes from the forward's return value (a key, an index or a callable;
    :func:`losslab.adapters.select_output`); ``batch_keys=(inputs_key, targets_key)`` reads dict
    batches; ``loss`` may be a callable ``(output, target) -> per-example (N,) or mean loss``.
    ``warn_mode``: a model in train mode with dropout or batch norm, measured in eval mode, gets one
    warning (``op.caller_mode`` / ``op.mode`` record both); callers that record the mode themselves
    (the training-time sharpness callback) pass False.
    """
    from ..validate import warn_train_mode
    if warn_mode:
        warn_train_mode(model, measured="train" if train_mode else "eval", where="hessian")
    return HessianOperator(model, data, loss, kind="hessian", method=method, block=block, batch_size=batch_size,
                           dtype=dtype, train_mode=train_mode, cache_graph=cache_graph, output=output,
                           batch_keys=batch_keys)


def ggn_operator(model: nn.Module, data, loss: str | Loss, *, block: BlockSpec = None,
                 batch_size: int | None = None, dtype: torch.dtype | None = None,
                 train_mode: bool = False, output=None, batch_keys=None) -> HessianOperator:
    """The generalized Gauss-Newton matrix G = (1/N) sum_n J_n^T H_out,n J_n as an operator.

    Schraudolph (2002); Martens (2010), sec. 4.2. For ``mse`` H_out = (2/K) I, for
    ``cross_entropy`` H_out = diag(p) - p p^T (softmax p), so G is positive semi-definite.
    """
    from ..validate import warn_train_mode
    warn_train_mode(model, measured="train" if train_mode else "eval", where="ggn")
    return HessianOperator(model, data, loss, kind="ggn", method="forward_over_reverse", block=block,
                           batch_size=batch_size, dtype=dtype, train_mode=train_mode, output=output,
                           batch_keys=batch_keys)


class MatrixOperator:
    """A dense symmetric matrix as an operator (for tests, references and explicit quadratics)."""

    def __init__(self, A: torch.Tensor):
        if A.dim() != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"expected a square matrix, got shape {tuple(A.shape)}")
        self.A = A
        self.size = int(A.shape[0])
        self.dtype = A.dtype
        self.device = A.device
        self.n_products = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.n_products += 1
        return self.A @ v.to(self.dtype)

    __call__ = matvec

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        self.n_products += int(V.shape[1])
        return self.A @ V.to(self.dtype)


class FunctionOperator:
    """Wrap a callable ``v -> A v`` on (P,) vectors as an operator."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], size: int, *, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu"):
        self.fn = fn
        self.size = int(size)
        self.dtype = dtype
        self.device = torch.device(device)
        self.n_products = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.n_products += 1
        return self.fn(v)

    __call__ = matvec

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        cols = [self.matvec(V[:, j]) for j in range(V.shape[1])]
        return torch.stack(cols, dim=1)


def as_operator(A, *, size: int | None = None):
    """An operator (``matvec``, ``matmat``, ``size``, ``dtype``, ``device``, ``n_products``) from a
    HessianOperator, a square tensor, or a callable with ``size`` given."""
    if isinstance(A, (HessianOperator, MatrixOperator, FunctionOperator)):
        return A
    if isinstance(A, torch.Tensor):
        return MatrixOperator(A)
    if all(hasattr(A, a) for a in ("matvec", "size", "dtype")):
        if not hasattr(A, "matmat"):
            raise TypeError("operator objects need matvec, matmat, size, dtype, device and n_products")
        return A
    if callable(A):
        if size is None:
            raise ValueError("a plain callable operator needs size=P (the vector length)")
        return FunctionOperator(A, size)
    raise TypeError(f"expected a HessianOperator, a square tensor or a callable, got {type(A).__name__}")


def layer_blocks(model: nn.Module) -> list[str]:
    """Module prefixes owning trainable parameters directly (one per layer), in model order."""
    seen: list[str] = []
    for n, p in model.named_parameters():
        if p.requires_grad:
            prefix = n.rsplit(".", 1)[0] if "." in n else n
            if prefix not in seen:
                seen.append(prefix)
    return seen
