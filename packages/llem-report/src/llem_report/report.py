"""A report: the figures that fit a set of experiments or a study, with what was left out and
why. :func:`build_report` chooses the figures; :mod:`llem_report.html` writes the page and
the figure files."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from matplotlib.figure import Figure

from llem_report._common import Experiments, experiments_of
from llem_report.errors import ReportError
from llem_report.latency import latency_cdfs, latency_over_time
from llem_report.loading import Experiment, Study
from llem_report.power import cumulative_energy, has_power, power_over_time
from llem_report.sweep import configurations, metric_vs_variable, pareto_front

__all__ = ["PER_EXPERIMENT_AT_MOST", "Report", "ReportFigure", "build_report"]

PER_EXPERIMENT_AT_MOST: Final = 6
"""Experiments that get figures of their own (power, energy, latency by start); a larger set
or a study gets the figures that compare them, and the report says how to see one run."""


@dataclass(frozen=True)
class ReportFigure:
    """One figure of a report: its file name (no suffix), heading and what it shows."""

    name: str
    title: str
    caption: str
    figure: Figure


@dataclass(frozen=True)
class Report:
    """What a report holds: its experiments (or study), figures and notes."""

    title: str
    experiments: tuple[Experiment, ...]
    figures: tuple[ReportFigure, ...]
    notes: tuple[str, ...]
    """What was not drawn and why, one line each."""
    study: Study | None = None


def build_report(source: Experiments, *, title: str | None = None) -> Report:
    """The report of ``source`` (experiments, results or a :class:`Study`): per experiment
    (up to :data:`PER_EXPERIMENT_AT_MOST`) power and temperature over time, cumulative
    energy and latency by request start; for all of them the latency distributions; across
    configurations the energy per token and the throughput against the swept setting, and
    the energy-latency Pareto front. A figure that cannot be drawn is a note, not an error."""
    study = source if isinstance(source, Study) else None
    experiments = experiments_of(source)
    figures: list[ReportFigure] = []
    notes: list[str] = list(study.notes) if study else []

    def add(name: str, title: str, caption: str, draw: Callable[[], Figure]) -> None:
        try:
            figures.append(ReportFigure(name, title, caption, draw()))
        except ReportError as exc:
            notes.append(f"{title}: not drawn: {exc}")

    if study is None and len(experiments) <= PER_EXPERIMENT_AT_MOST:
        for index, experiment in enumerate(experiments):
            experiments[index] = experiment = experiment.with_timeseries()
            _per_experiment(experiment, add, notes, several=len(experiments) > 1)
    else:
        notes.append(
            "Power, energy and per-request figures are drawn for one run at a time, for up to "
            f"{PER_EXPERIMENT_AT_MOST} runs, and not for a study: report a run of it for them."
        )
    add(
        "latency-cdf",
        "Latency distributions",
        "The share of requests (of gaps, for ITL) at or below each latency.",
        lambda: latency_cdfs(experiments),
    )
    if len(configurations(experiments)) < 2:
        if study is not None:
            notes.append(
                "The sweep figures and the Pareto front: not drawn: fewer than two "
                "configurations have a completed run."
            )
    else:
        add(
            "energy-per-token",
            "Energy per output token",
            "Mean across cycles per configuration, with the 95 % interval of the mean.",
            lambda: metric_vs_variable(experiments, "energy_per_output_token_j"),
        )
        add(
            "throughput",
            "Throughput",
            "Output tokens per second, mean across cycles, with the 95 % interval.",
            lambda: metric_vs_variable(experiments, "output_tokens_per_s"),
        )
        add(
            "pareto",
            "Energy against p99 latency",
            "Configurations no other beats on both energy per token and p99 end-to-end "
            "latency are joined: the front to choose from.",
            lambda: pareto_front(experiments),
        )
    if title is None:
        title = (
            f"Study {study.name}"
            if study
            else experiments[0].id
            if len(experiments) == 1
            else f"{len(experiments)} experiments"
        )
    return Report(title, tuple(experiments), tuple(figures), tuple(notes), study)


def _per_experiment(
    experiment: Experiment,
    add: Callable[[str, str, str, Callable[[], Figure]], None],
    notes: list[str],
    *,
    several: bool,
) -> None:
    suffix = f"-{experiment.id}" if several else ""
    of = f" ({experiment.id})" if several else ""
    if has_power(experiment):
        add(
            f"power{suffix}",
            f"Power and temperature{of}",
            "Each GPU's power and temperature over the run; shaded: the energy window and, "
            "where there is one, the steady-state window; dashed: the idle baseline.",
            lambda: power_over_time(experiment),
        )
        add(
            f"energy{suffix}",
            f"Cumulative energy{of}",
            "Energy since the window's start, integrated from the sampled power.",
            lambda: cumulative_energy(experiment),
        )
    else:
        why = experiment.timeseries_note or "no GPU power was sampled (CPU or no energy source)"
        notes.append(f"Power and energy over time{of}: not drawn: {why}.")
    add(
        f"latency-by-start{suffix}",
        f"Latency by request start{of}",
        "Each request's TTFT and end-to-end latency at the time it was sent.",
        lambda: latency_over_time(experiment),
    )
