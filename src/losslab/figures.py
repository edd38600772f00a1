"""Plain descriptions of figures, made by analyses and drawn by the report layer.

An analysis says *what* to show (series, grids, paths, the numbers beside them); the report
renders the same description as interactive plotly (HTML) or static matplotlib (PNG/PDF).
Keeping figures as data means every picture carries its numbers and settings, and the
analysis code never imports a plotting library.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

FIGURE_KINDS = ("lines", "contour", "surface", "histogram", "bars", "heatmap", "scatter")

#: the default colour cycle (plotly's/matplotlib's tab10, reordered so neighbours differ)
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b", "#bcbd22",
          "#7f7f7f")

#: one colour per meaning, for figures whose curves play roles (a chapter uses the same
#: colour for a role in every figure): green converges well, red is too large/diverges
ROLE_COLORS = {"small": "#1f77b4", "good": "#2ca02c", "too large": "#d62728", "train": "#1f77b4",
               "validation": "#ff7f0e", "test": "#9467bd", "reference": "#444444"}


@dataclass(frozen=True)
class Series:
    """One named curve. ``band_lo``/``band_hi`` draw a spread band around it; ``mode`` is
    'lines', 'markers' or 'lines+markers'; ``dash`` for reference curves (closed forms)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    band_lo: np.ndarray | None = None
    band_hi: np.ndarray | None = None
    mode: str = "lines"
    dash: bool = False
    color: str | None = None  # None: by name, the same in every figure of a report section


@dataclass(frozen=True)
class Grid:
    """Values z (ny, nx) over coordinates x (nx,) and y (ny,) for contour/surface/heatmap."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    z_label: str = "loss"


@dataclass(frozen=True)
class Path:
    """A trajectory drawn on a plane: coordinates (K,), the loss at each (for 3D), the step of
    each point, and its distance off the plane (K,) (0 where the path lies in the plane)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray | None = None
    steps: np.ndarray | None = None
    off_plane: np.ndarray | None = None
    color: str | None = None


@dataclass(frozen=True)
class Figure:
    """One figure: ``kind`` in FIGURE_KINDS; ``caption`` says what it shows and what was
    measured; ``table`` holds the numbers shown beside it; ``slider`` adds a step slider that
    moves a point along each path. ``hline_series`` names, per reference line, the series it
    belongs to (drawn in that series' colour; "" for none). ``facets`` (bars): one small
    panel with its own y axis per category, for measures in different units."""

    key: str
    title: str
    kind: str
    x_label: str = ""
    y_label: str = ""
    series: tuple[Series, ...] = ()
    grid: Grid | None = None
    paths: tuple[Path, ...] = ()
    caption: str = ""
    table: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    log_x: bool = False
    log_y: bool = False
    slider: bool = False
    hlines: tuple[tuple[str, float], ...] = ()  # (label, y) reference lines, e.g. ("2/lr", 40.0)
    hline_series: tuple[str, ...] = ()
    facets: bool = False

    def __post_init__(self):
        if self.kind not in FIGURE_KINDS:
            raise ValueError(f"unknown figure kind {self.kind!r}; valid: {', '.join(FIGURE_KINDS)}")
        if self.kind in ("contour", "surface", "heatmap") and self.grid is None:
            raise ValueError(f"a {self.kind} figure needs a grid")
        if self.hline_series and len(self.hline_series) != len(self.hlines):
            raise ValueError(f"hline_series names the series of each reference line: expected {len(self.hlines)} "
                             f"names (one per hline, '' for none), got {len(self.hline_series)}")
