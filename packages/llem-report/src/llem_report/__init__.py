"""llem_report: figures and HTML reports from llem's results, for a notebook, a paper or a
page to share.

One function per figure, each taking results and returning a matplotlib
:class:`~matplotlib.figure.Figure` (made without pyplot, so it has no global state)::

    from llem_report import load_experiment, power_over_time, latency_cdfs

    run = load_experiment("results/tiny_pytorch_2026-11-22T14-03-05_0a1b2c")
    power_over_time(run).savefig("power.pdf")
    latency_cdfs([run, other_run])

and the report of a run, a set of runs or a study::

    from llem_report import build_report, load_study, write_html, write_figures

    report = build_report(load_study("results/studies/batch-sweep_2026-..."))
    write_html(report, "report.html")
    write_figures(report, "figures", "pdf")

It depends on ``llem_schema``, pyarrow, numpy and matplotlib: not on the harness, a backend
or torch.
"""

from llem_report.errors import ReportError
from llem_report.html import FIGURE_FORMATS, render_html, write_figures, write_html
from llem_report.latency import latency_cdfs, latency_over_time
from llem_report.loading import Experiment, Study, StudyPoint, load_experiment, load_study
from llem_report.power import cumulative_energy, power_over_time
from llem_report.reduce import cdf_points, envelope
from llem_report.report import Report, ReportFigure, build_report
from llem_report.sweep import (
    METRICS,
    Configuration,
    configurations,
    metric_vs_variable,
    pareto_front,
)

__all__ = [
    "FIGURE_FORMATS",
    "METRICS",
    "Configuration",
    "Experiment",
    "Report",
    "ReportError",
    "ReportFigure",
    "Study",
    "StudyPoint",
    "build_report",
    "cdf_points",
    "configurations",
    "cumulative_energy",
    "envelope",
    "latency_cdfs",
    "latency_over_time",
    "load_experiment",
    "load_study",
    "metric_vs_variable",
    "pareto_front",
    "power_over_time",
    "render_html",
    "write_figures",
    "write_html",
]
