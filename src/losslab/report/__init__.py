"""Reports: interactive HTML (plotly, offline from file://) and static PNG/PDF (matplotlib)
views of Figures, runs, studies and the store.

    >>> from losslab.report import Section, write_page
    >>> write_page("my study", [Section("a", "Part A", figures=(fig,))], "out/report.html")

plotly and matplotlib are imported only when something is rendered.
"""
from .builders import experiment_section, run_sections, save_section, study_sections, surface_figures, trajectory_figures
from .html import Page, Section, ensure_plotly_js, render_page, write_html, write_page
from .index import write_index
from .plotly_render import plotly_spec, to_plotly
from .reports import REPORT_FORMATS, write_report
from .serialize import figure_csv, figure_from_dict, figure_json, figure_to_dict
from .static_render import to_matplotlib, write_static, write_static_figures

__all__ = ["Page", "Section", "write_page", "write_html", "render_page", "ensure_plotly_js", "write_index",
           "write_report", "REPORT_FORMATS", "plotly_spec", "to_plotly", "to_matplotlib", "write_static",
           "write_static_figures", "figure_csv", "figure_json", "figure_to_dict", "figure_from_dict",
           "trajectory_figures", "surface_figures", "experiment_section", "run_sections", "study_sections",
           "save_section"]
