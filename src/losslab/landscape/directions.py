"""Directions in parameter space: the axes of a loss surface.

All directions live in the flat layout of :func:`losslab.params.param_spec` (the model's
trainable parameters, in ``named_parameters`` order). A :class:`Directions` holds the
centre ``base`` (P,) and the axes ``vectors`` (k, P), k = 1 (a curve) or 2 (a plane); the
point at grid coordinates c = (c_1, ..., c_k) is ``theta(c) = base + sum_j c_j vectors[j]``.

Random kinds (registry :data:`DIRECTIONS`), each drawing d ~ N(0, I) per tensor from a
seeded generator, then:

- ``filter``  (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets", Sec. 4,
  Eq. before Fig. 2): for each tensor with ndim > 1 and each slice i along dim 0 (a conv
  filter, a row of a Linear weight) ``d_i <- d_i * ||theta_i|| / (||d_i|| + 1e-10)``.
- ``layer``   : per tensor ``d <- d * ||theta|| / (||d|| + 1e-10)``.
- ``model``   : the whole vector ``d <- d * ||theta|| / (||d|| + 1e-10)``.
- ``gaussian`` / ``unnormalized``: d ~ N(0, I) as drawn.

Tensors with ndim <= 1 (biases, batch-norm/layer-norm weights and biases) get d = 0 unless
``include_biases=True``; then they are drawn and normalized per whole tensor (for ``filter``
and ``layer``: ``d_b <- d_b * ||b|| / (||d_b|| + 1e-10)``; ``model`` and ``gaussian`` treat
them like any other entry). This differs from Li et al.'s code, which rescales each bias
entry separately (``d_i = sign(d_i) |b_i|``), a degenerate per-scalar "filter".

``orthogonalize=True`` replaces the second axis by its Gram-Schmidt residual against the
first and rescales it to its original norm (so the grid span keeps its meaning); the
per-filter norms of the second axis then no longer follow the definition exactly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from ..params import ParamSpec, flatten_params, param_spec, trainable_params
from ..registry import Registry

EPS = 1e-10

DIRECTIONS: Registry = Registry("direction kind")


@dataclass(frozen=True)
class Directions:
    """A centre and k axes in flat parameter space.

    ``base`` (P,), ``vectors`` (k, P); ``kind`` names how they were made; ``info`` holds
    extra facts (explained variance for PCA, the grid coordinates of the anchor models for
    a line or a plane through models).
    """

    base: torch.Tensor
    vectors: torch.Tensor
    kind: str
    spec: ParamSpec
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.vectors.dim() != 2 or self.vectors.shape[1] != self.base.shape[-1]:
            raise ValueError(f"vectors must be (k, P) with P = {self.base.shape[-1]}, got {tuple(self.vectors.shape)}")
        if self.vectors.shape[0] not in (1, 2):
            raise ValueError(f"a surface needs 1 or 2 directions, got {self.vectors.shape[0]}")

    @property
    def k(self) -> int:
        return int(self.vectors.shape[0])

    def point(self, coords: torch.Tensor) -> torch.Tensor:
        """theta(c) = base + c @ vectors for coords (..., k) -> (..., P)."""
        coords = torch.as_tensor(coords, dtype=self.vectors.dtype, device=self.vectors.device)
        return self.base + coords @ self.vectors

    def to(self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> "Directions":
        return Directions(self.base.to(dtype=dtype, device=device), self.vectors.to(dtype=dtype, device=device),
                          self.kind, self.spec, dict(self.info))

    def norms(self) -> list[float]:
        return [float(v.norm()) for v in self.vectors]


# ---------------------------------------------------------------------------------------
# random kinds


def _gaussian(params: Mapping[str, torch.Tensor], gen: torch.Generator, include_biases: bool) -> dict[str, torch.Tensor]:
    out = {}
    for n, p in params.items():
        # draw on the CPU with the seeded generator, so CPU and CUDA runs give the same directions
        d = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(dtype=p.dtype, device=p.device)
        out[n] = d if (p.dim() > 1 or include_biases) else torch.zeros_like(p)
    return out


def _scale_whole(d: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return d * (p.norm() / (d.norm() + EPS))


@DIRECTIONS.register("filter")
def filter_normalized(params, gen, *, include_biases: bool = False):
    """Filter-normalized Gaussian (Li et al. 2018): each dim-0 slice scaled to the weight slice norm."""
    d = _gaussian(params, gen, include_biases)
    for n, p in params.items():
        if p.dim() > 1:
            pn = p.reshape(p.shape[0], -1).norm(dim=1)  # (F,)
            dn = d[n].reshape(p.shape[0], -1).norm(dim=1)
            d[n] = d[n] * (pn / (dn + EPS)).reshape(-1, *([1] * (p.dim() - 1)))
        elif include_biases:
            d[n] = _scale_whole(d[n], p)
    return d


@DIRECTIONS.register("layer")
def layer_normalized(params, gen, *, include_biases: bool = False):
    """Layer-normalized Gaussian: each parameter tensor scaled to the norm of the weight tensor."""
    d = _gaussian(params, gen, include_biases)
    for n, p in params.items():
        if p.dim() > 1 or include_biases:
            d[n] = _scale_whole(d[n], p)
    return d


@DIRECTIONS.register("model")
def model_normalized(params, gen, *, include_biases: bool = False):
    """Gaussian scaled as a whole to the norm of the (included) parameters."""
    d = _gaussian(params, gen, include_biases)
    dn = torch.sqrt(sum((v.double() ** 2).sum() for v in d.values()))
    pn = torch.sqrt(sum((p.double() ** 2).sum() for n, p in params.items() if p.dim() > 1 or include_biases))
    return {n: v * (pn / (dn + EPS)).to(v.dtype) for n, v in d.items()}


def _unnormalized(params, gen, *, include_biases: bool = False):
    """Unnormalized Gaussian d ~ N(0, I)."""
    return _gaussian(params, gen, include_biases)


DIRECTIONS.register("gaussian", _unnormalized, doc="Unnormalized Gaussian d ~ N(0, I).")
DIRECTIONS.register("unnormalized", _unnormalized, doc="Unnormalized Gaussian d ~ N(0, I) (same as 'gaussian').")


def _generator(seed: int | torch.Generator) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def _orthogonalize(vectors: torch.Tensor) -> torch.Tensor:
    if vectors.shape[0] < 2:
        return vectors
    a, b = vectors[0], vectors[1]
    aa = (a.double() @ a.double())
    if aa == 0:
        raise ValueError("cannot orthogonalize against a zero first direction")
    r = b.double() - (a.double() @ b.double()) / aa * a.double()
    if not float(r.norm()) > 1e-12 * float(b.double().norm()):
        raise ValueError("cannot orthogonalize: the second direction is parallel to the first (or zero); pass two "
                         "independent directions or orthogonalize=False")
    r = r * (b.double().norm() / (r.norm() + EPS))
    return torch.stack([a, r.to(vectors.dtype)])


def random_directions(model: nn.Module, *, kind: str = "filter", k: int = 2, seed: int | torch.Generator = 0,
                      include_biases: bool = False, orthogonalize: bool = False) -> Directions:
    """k random directions of a registered ``kind`` around the model's parameters.

    Draws are in order (axis 1 then axis 2) from one generator seeded with ``seed``.
    """
    if isinstance(k, bool) or k not in (1, 2) or not isinstance(k, int):
        raise ValueError(f"k (number of directions) must be the int 1 or 2, got {k!r}")
    make: Callable = DIRECTIONS.get(kind)
    name = kind.strip().lower().replace("-", "_")
    params = trainable_params(model)
    spec = param_spec(params)
    gen = _generator(seed)
    vecs = torch.stack([spec.flatten(make(params, gen, include_biases=include_biases)) for _ in range(k)])
    if orthogonalize:
        vecs = _orthogonalize(vecs)
    return Directions(spec.flatten(params).clone(), vecs, name, spec,
                      {"include_biases": include_biases, "orthogonalize": orthogonalize,
                       "seed": seed if isinstance(seed, int) else None})


# ---------------------------------------------------------------------------------------
# explicit directions, lines and planes through models


def as_flat(x: Any, spec: ParamSpec, *, what: str = "direction") -> torch.Tensor:
    """A flat (P,) vector from a flat tensor/array, a parameter dict, or an nn.Module."""
    if isinstance(x, nn.Module):
        x = trainable_params(x)
    if isinstance(x, Mapping):
        missing = [n for n in spec.names if n not in x]
        if missing:
            raise ValueError(f"{what} dict lacks parameters {missing}; expected the model's trainable parameter "
                             f"names {list(spec.names)}")
        bad = [n for n in spec.names if tuple(torch.as_tensor(x[n]).shape) != tuple(spec.shapes[spec.names.index(n)])]
        if bad:
            raise ValueError(f"{what} dict has wrong shapes for {bad}")
        v = torch.cat([torch.as_tensor(x[n]).reshape(-1) for n in spec.names])
    else:
        v = torch.as_tensor(x)
        if v.dim() != 1 or v.shape[0] != spec.size:
            raise ValueError(f"{what} must be a flat vector of {spec.size} entries (the model's trainable "
                             f"parameters), a parameter dict or a model; got shape {tuple(v.shape)}")
    return v.detach().to(dtype=spec.dtype, device=spec.device).clone()


def explicit_directions(model: nn.Module, vectors: Sequence[Any], *, kind: str = "explicit",
                        orthogonalize: bool = False, info: dict | None = None) -> Directions:
    """Directions given by the user: 1 or 2 flat vectors or parameter dicts, centred at the model.

    Use ``kind="hessian"`` for top Hessian eigenvectors (from losslab's curvature module or elsewhere).
    """
    if isinstance(vectors, (torch.Tensor,)) and vectors.dim() == 1:
        vectors = [vectors]
    if isinstance(vectors, Mapping):
        vectors = [vectors]
    vectors = list(vectors)
    if len(vectors) not in (1, 2):
        raise ValueError(f"give 1 or 2 directions, got {len(vectors)}")
    spec = param_spec(model)
    vecs = torch.stack([as_flat(v, spec) for v in vectors])
    if orthogonalize:
        vecs = _orthogonalize(vecs)
    return Directions(flatten_params(model), vecs, kind, spec, dict(info or {}))


def eigenvector_directions(model: nn.Module, eigenvectors: Sequence[Any], *, eigenvalues: Sequence[float] | None = None) -> Directions:
    """The plane of the top Hessian eigenvectors, passed explicitly (unit vectors, centred at the model)."""
    info = {"eigenvalues": [float(e) for e in eigenvalues]} if eigenvalues is not None else {}
    return explicit_directions(model, eigenvectors, kind="hessian", info=info)


def line_through(model_a, model_b, *, spec_from: nn.Module | None = None) -> Directions:
    """The line theta(alpha) = theta_a + alpha (theta_b - theta_a): alpha = 0 is model a, alpha = 1 is model b."""
    ref = spec_from if spec_from is not None else (model_a if isinstance(model_a, nn.Module) else model_b)
    if not isinstance(ref, nn.Module):
        raise TypeError("line_through needs at least one nn.Module (or spec_from=) to know the parameter layout")
    spec = param_spec(ref)
    a, b = as_flat(model_a, spec, what="model_a"), as_flat(model_b, spec, what="model_b")
    return Directions(a, (b - a).unsqueeze(0), "line", spec, {"anchors": {"a": [0.0], "b": [1.0]}})


def plane_through(model_a, model_b, model_c, *, spec_from: nn.Module | None = None) -> Directions:
    """The plane through three models by Gram-Schmidt (Garipov et al. 2018, Sec. 4 of "Loss Surfaces,
    Mode Connectivity, and Fast Ensembling"): u = theta_b - theta_a, v = (theta_c - theta_a) minus its
    projection on u; the axes are u/||u|| and v/||v||, so grid coordinates are Euclidean distances in
    parameter space. ``info['anchors']`` gives the coordinates of a, b and c."""
    ref = spec_from if spec_from is not None else next((m for m in (model_a, model_b, model_c) if isinstance(m, nn.Module)), None)
    if ref is None:
        raise TypeError("plane_through needs at least one nn.Module (or spec_from=) to know the parameter layout")
    spec = param_spec(ref)
    a, b, c = (as_flat(m, spec, what=w) for m, w in ((model_a, "model_a"), (model_b, "model_b"), (model_c, "model_c")))
    u = (b - a).double()
    w = (c - a).double()
    un = u.norm()
    if un == 0:
        raise ValueError("model_a and model_b are identical: the plane is undefined")
    e1 = u / un
    v = w - (w @ e1) * e1
    vn = v.norm()
    if vn <= 1e-12 * max(float(un), float(w.norm())):
        raise ValueError("the three models are collinear: the plane is undefined")
    e2 = v / vn
    anchors = {"a": [0.0, 0.0], "b": [float(un), 0.0], "c": [float(w @ e1), float(vn)]}
    return Directions(a, torch.stack([e1, e2]).to(spec.dtype), "plane", spec, {"anchors": anchors})


# ---------------------------------------------------------------------------------------
# PCA of a trajectory


@dataclass(frozen=True)
class PCADirections:
    """Top-k principal directions of a trajectory (orthonormal rows), their explained variance
    ratios, and the Directions object centred at the chosen base snapshot."""

    directions: Directions
    explained_variance_ratio: torch.Tensor  # (k,)
    singular_values: torch.Tensor  # (k,)


def as_snapshots(snapshots, spec: ParamSpec | None = None) -> torch.Tensor:
    """(K, P) tensor from a (K, P) tensor/array or a list of flat vectors / dicts / models."""
    if isinstance(snapshots, torch.Tensor) or hasattr(snapshots, "__array__"):
        S = torch.as_tensor(snapshots)
        if S.dim() != 2:
            raise ValueError(f"snapshots must be a (K, P) array, got shape {tuple(S.shape)}")
        return S.detach()
    items = list(snapshots)
    if not items:
        raise ValueError("no snapshots given")
    if spec is None:
        if isinstance(items[0], nn.Module):
            spec = param_spec(items[0])
        elif isinstance(items[0], Mapping):
            spec = param_spec(items[0])
        else:
            return torch.stack([torch.as_tensor(v).reshape(-1) for v in items]).detach()
    return torch.stack([as_flat(v, spec, what="snapshot") for v in items])


def pca_directions(snapshots, k: int = 2, *, base: str | int = "last", model: nn.Module | None = None) -> PCADirections:
    """Top-k PCA directions of a trajectory of K parameter snapshots (K, P) (Li et al. 2018, Sec. 7).

    The snapshots are centred at their mean and the right singular vectors of the centred
    matrix give the directions (orthonormal); ``explained_variance_ratio[j] = s_j^2 / sum_i s_i^2``.
    The plane is anchored at snapshot ``base`` (``"last"`` = the final point, as Li et al.,
    ``"mean"``, or an index). A trajectory inside an affine plane lies in this plane whatever
    the anchor, since every snapshot is in it.
    """
    S = as_snapshots(snapshots, param_spec(model) if model is not None else None)
    K, P = S.shape
    bad = ~torch.isfinite(S.double()).all(1) if S.is_floating_point() else torch.zeros(K, dtype=torch.bool)
    if bool(bad.any()):
        raise ValueError(f"snapshots {torch.nonzero(bad).flatten().tolist()[:10]} (of {K}) contain NaN or inf: PCA needs "
                         f"finite parameters; drop those snapshots (a diverged run?) before calling pca_directions")
    if k not in (1, 2):
        raise ValueError(f"k must be 1 or 2, got {k}")
    if K < k + 1:
        raise ValueError(f"PCA of {k} directions needs at least {k + 1} snapshots, got {K}")
    S64 = S.double()
    mean = S64.mean(0)
    C = S64 - mean
    # SVD of the small side: (K, K) Gram matrix is cheaper than (P, P) for long parameter vectors
    U, s, Vh = torch.linalg.svd(C, full_matrices=False)
    total = (s ** 2).sum()
    if total == 0:
        raise ValueError("all snapshots are identical: no principal directions")
    vecs = Vh[:k]
    # sign convention: the first nonzero... make the largest-magnitude entry positive, for determinism
    idx = vecs.abs().argmax(dim=1)
    signs = torch.sign(vecs[torch.arange(k), idx])
    vecs = vecs * signs.unsqueeze(1)
    if base == "last":
        b = S64[-1]
    elif base == "mean":
        b = mean
    elif isinstance(base, int):
        b = S64[base]
    else:
        raise ValueError(f"base must be 'last', 'mean' or a snapshot index, got {base!r}")
    spec = param_spec(model) if model is not None else ParamSpec(("theta",), (torch.Size([P]),), S.dtype, S.device)
    evr = (s[:k] ** 2 / total)
    d = Directions(b.to(S.dtype), vecs.to(S.dtype), "pca", spec,
                   {"explained_variance_ratio": evr.tolist(), "base": base if not isinstance(base, int) else int(base)})
    return PCADirections(d, evr, s[:k])


def check_dim(dim) -> int | None:
    """None (follow the directions) or the int 1 or 2."""
    if dim is None:
        return None
    if isinstance(dim, bool) or not isinstance(dim, int) or dim not in (1, 2):
        raise ValueError(f"dim must be 1 (a curve) or 2 (a plane) as an int, or None to follow the directions; "
                         f"got {dim!r}")
    return dim


def resolve_directions(model: nn.Module, directions, *, dim: int | None = 2, seed: int | torch.Generator = 0,
                       include_biases: bool = False, orthogonalize: bool = False) -> Directions:
    """Turn the ``directions=`` argument of :func:`losslab.landscape.surface` into Directions:
    a kind name from DIRECTIONS, a Directions, a PCADirections, or 1-2 explicit vectors/dicts.

    ``dim``: the number of axes. For a kind name it is how many are drawn (None means 2); given
    directions fix it themselves, and a ``dim`` that contradicts them (one vector with dim=2,
    two with dim=1) is an error. Every direction must be finite and nonzero."""
    dim = check_dim(dim)
    if isinstance(directions, str):
        d = random_directions(model, kind=directions, k=dim or 2, seed=seed, include_biases=include_biases,
                              orthogonalize=orthogonalize)
        _check_vectors(d, given=False, include_biases=include_biases)
        return d
    d = _resolve_given(model, directions, orthogonalize=orthogonalize)
    if dim is not None and d.k != dim:
        raise ValueError(f"dim={dim} but {d.k} direction{'s' if d.k > 1 else ''} given: pass {dim} "
                         f"direction{'s' if dim > 1 else ''}, or leave dim out (it follows the directions)")
    _check_vectors(d, given=True, include_biases=include_biases)
    return d


def _check_vectors(d: Directions, *, given: bool, include_biases: bool) -> None:
    nb = int((~torch.isfinite(d.base)).sum())
    if nb:
        raise ValueError(f"the base point (the model's parameters) has {nb} NaN/inf entries of {d.base.numel()}: "
                         f"the loss would be NaN everywhere; use a model with finite parameters (a diverged run?)")
    for i, v in enumerate(d.vectors):
        nv = int((~torch.isfinite(v)).sum())
        if nv:
            raise ValueError(f"direction {i + 1} has {nv} NaN/inf entries of {v.numel()}: pass finite direction "
                             f"vectors" + ("" if given else " (the model's parameters are not finite?)"))
        if not bool((v != 0).any()):
            if given:
                raise ValueError(f"direction {i + 1} is all zeros: the surface would be constant along it; pass a "
                                 f"nonzero vector")
            raise ValueError(f"direction kind {d.kind!r} drew an all-zero direction: the model's trainable "
                             f"parameters are all 1-D (biases, norm weights) or zero, which this kind skips "
                             f"or scales to zero" + ("" if include_biases else "; pass include_biases=True")
                             + " or use directions='gaussian'")


def _resolve_given(model: nn.Module, directions, *, orthogonalize: bool) -> Directions:
    if isinstance(directions, PCADirections):
        directions = directions.directions
    if isinstance(directions, Directions):
        spec = param_spec(model)
        if directions.base.shape[-1] != spec.size:
            raise ValueError(f"directions have {directions.base.shape[-1]} parameters but the model has {spec.size}")
        if directions.spec.names != spec.names:
            directions = Directions(directions.base, directions.vectors, directions.kind, spec, directions.info)
        return directions
    if isinstance(directions, (list, tuple, torch.Tensor, Mapping)):
        if isinstance(directions, torch.Tensor) and directions.dim() == 2:
            directions = list(directions)
        return explicit_directions(model, directions, orthogonalize=orthogonalize)
    raise TypeError(f"directions must be a kind name ({', '.join(DIRECTIONS.names())}), a Directions object, "
                    f"or 1-2 vectors/parameter dicts; got {type(directions).__name__}")
