"""Loss surfaces: directions, batched grid evaluation, interpolation, projection, statistics.

    >>> from losslab.landscape import surface
    >>> s = surface(model, (X, y), loss="cross_entropy", directions="filter", resolution=51, span=1.0)
"""
from .directions import (DIRECTIONS, Directions, PCADirections, eigenvector_directions, explicit_directions,
                         line_through, pca_directions, plane_through, random_directions)
from .evaluate import PRECISIONS, Evaluator, PointsResult, evaluate_points
from .interpolation import BARRIER_DEFINITION, Barrier, Interpolation, barrier, interpolate
from .projection import Projection, project_trajectories, project_trajectory
from .stats import CurveStats, random_curves
from .surface import Surface, grid_axes, load, surface

__all__ = ["DIRECTIONS", "Directions", "PCADirections", "eigenvector_directions", "explicit_directions",
           "line_through",
           "pca_directions", "plane_through", "random_directions", "PRECISIONS", "Evaluator", "PointsResult",
           "evaluate_points", "BARRIER_DEFINITION", "Barrier", "Interpolation", "barrier", "interpolate", "Projection",
           "project_trajectories", "project_trajectory", "CurveStats", "random_curves", "Surface", "grid_axes", "load",
           "surface"]
