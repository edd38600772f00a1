"""Project a training trajectory onto a surface's plane, and say how far off the plane it is.

For a plane theta(c) = base + c @ D (D: (k, P), not necessarily orthogonal), the coordinates
of a snapshot theta are the least-squares solution c = (D D^T)^{-1} D (theta - base) and the
off-plane distance is the residual norm ||theta - base - c @ D||_2. A trajectory drawn on a
surface is only "on" it where the off-plane distance is small compared with the distances
travelled in the plane; ``relative_off_plane = off_plane / ||theta - base||``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from .directions import Directions, PCADirections, as_snapshots


@dataclass(frozen=True)
class Projection:
    """``coords`` (K, k) on the plane, ``off_plane`` (K,) distances to it, and
    ``relative_off_plane`` (K,) = off_plane / ||theta - base|| (0 where theta = base)."""

    coords: np.ndarray
    off_plane: np.ndarray
    relative_off_plane: np.ndarray

    def to_dict(self) -> dict:
        return {"coords": self.coords.tolist(), "off_plane": self.off_plane.tolist(),
                "relative_off_plane": self.relative_off_plane.tolist()}


def _plane_of(plane) -> tuple[torch.Tensor, torch.Tensor]:
    from .surface import Surface

    if isinstance(plane, Surface):
        return torch.as_tensor(plane.base, dtype=torch.float64), torch.as_tensor(plane.directions, dtype=torch.float64)
    if isinstance(plane, PCADirections):
        plane = plane.directions
    if isinstance(plane, Directions):
        return plane.base.double().cpu(), plane.vectors.double().cpu()
    raise TypeError(f"plane must be a Surface, Directions or PCADirections, got {type(plane).__name__}")


def project_trajectory(plane, snapshots) -> Projection:
    """Coordinates (K, k) and off-plane distances (K,) of K snapshots (a (K, P) array, or a list
    of flat vectors, parameter dicts or models) on the plane of a Surface or Directions."""
    base, D = _plane_of(plane)
    S = as_snapshots(snapshots).double().cpu()
    if S.shape[1] != base.shape[0]:
        raise ValueError(f"snapshots have {S.shape[1]} parameters but the plane has {base.shape[0]}")
    R = S - base  # (K, P)
    G = D @ D.T  # (k, k)
    if torch.linalg.matrix_rank(G) < G.shape[0]:
        raise ValueError("the plane's directions are linearly dependent: projection is undefined")
    C = torch.linalg.solve(G, D @ R.T).T  # (K, k)
    off = (R - C @ D).norm(dim=1)
    rn = R.norm(dim=1)
    rel = torch.where(rn > 0, off / torch.where(rn > 0, rn, torch.ones_like(rn)), torch.zeros_like(rn))
    return Projection(C.numpy(), off.numpy(), rel.numpy())


def project_trajectories(plane, trajectories: Mapping[str, object]) -> dict[str, Projection]:
    """Several trajectories (e.g. several optimizers from one start) on one plane: name -> Projection."""
    return {name: project_trajectory(plane, snaps) for name, snaps in trajectories.items()}
