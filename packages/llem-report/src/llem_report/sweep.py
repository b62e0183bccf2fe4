"""Figures across configurations: :func:`metric_vs_variable` (a metric against a swept
setting, with the 95 % interval across cycles) and :func:`pareto_front` (energy per output
token against p99 latency, the configurations on the front joined).

Experiments with the same ``measurement_config_hash`` are cycles of one configuration. Their
statistics are llem's own (:func:`llem_schema.cycle_statistics`, the percentile bootstrap of
the mean), seeded as a study seeds them, so a study's figure shows the numbers of its
``study.json``.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from matplotlib.figure import Figure

from llem_report._common import (
    Experiments,
    differing_keys,
    drawing,
    experiments_of,
    footnote,
    labels,
    new_figure,
    setting,
    setting_name,
    settings_label,
    settle,
    warning_lines,
)
from llem_report.errors import ReportError
from llem_report.loading import Experiment
from llem_schema import ExperimentResult, MetricStatistics, cycle_statistics
from llem_schema.study_result import STUDY_METRICS, point_seed
from llem_schema.tabular.config import ConfigScalar

__all__ = [
    "METRICS",
    "SWEEP_WARNINGS",
    "Configuration",
    "configurations",
    "metric_vs_variable",
    "pareto_front",
]

Reader = Callable[[ExperimentResult], float | None]


def _p99(metric: str) -> Reader:
    def read(result: ExperimentResult) -> float | None:
        stats = getattr(result.latency, metric)
        return None if stats is None else float(stats.p99_ms)

    return read


METRICS: Final[Mapping[str, tuple[str, Reader]]] = {
    "output_tokens_per_s": ("output tokens/s", STUDY_METRICS["output_tokens_per_s"]),
    "energy_j": ("energy (J)", STUDY_METRICS["energy_j"]),
    "total_energy_j": ("total energy, GPUs and CPU (J)", STUDY_METRICS["total_energy_j"]),
    "energy_adjusted_j": ("energy less idle baseline (J)", STUDY_METRICS["energy_adjusted_j"]),
    "output_tokens_per_j": ("output tokens per joule", STUDY_METRICS["output_tokens_per_j"]),
    "energy_per_output_token_j": (
        "energy per output token (J)",
        STUDY_METRICS["energy_per_output_token_j"],
    ),
    "ttft_median_ms": ("median TTFT (ms)", STUDY_METRICS["ttft_median_ms"]),
    "itl_median_ms": ("median ITL (ms)", STUDY_METRICS["itl_median_ms"]),
    "e2e_median_ms": ("median E2E latency (ms)", STUDY_METRICS["e2e_median_ms"]),
    "ttft_p99_ms": ("p99 TTFT (ms)", _p99("ttft")),
    "itl_p99_ms": ("p99 ITL (ms)", _p99("itl")),
    "e2e_p99_ms": ("p99 E2E latency (ms)", _p99("e2e")),
    "duration_s": ("duration (s)", STUDY_METRICS["duration_s"]),
}
"""The metrics a sweep figure can draw: name (its unit in the suffix) -> axis label, reader."""

LOWER_IS_BETTER: Final = frozenset(
    {
        "energy_j",
        "total_energy_j",
        "energy_adjusted_j",
        "energy_per_output_token_j",
        "ttft_median_ms",
        "itl_median_ms",
        "e2e_median_ms",
        "ttft_p99_ms",
        "itl_p99_ms",
        "e2e_p99_ms",
        "duration_s",
    }
)
"""The metrics where less is better (energy, latency, time): what a Pareto front can trade."""

SWEEP_WARNINGS: Final = frozenset(
    {
        "no_energy",
        "throttled",
        "thermal_drift",
        "failed_requests",
        "incomplete",
        "short_window",
        "simulated_gpus",
    }
)
"""The warning codes that bear on a comparison across configurations."""

_ANNOTATE_AT_MOST: Final = 16
"""Points labelled on a Pareto figure; past this only the front is."""


@dataclass(frozen=True)
class Configuration:
    """The cycles of one configuration and how to name it."""

    config_hash: str
    experiments: tuple[Experiment, ...]
    label: str

    def values(self, metric: str) -> list[float] | None:
        """The metric of each cycle; None if any cycle lacks it (left out, as a study does)."""
        _, read = METRICS[metric]
        found = [read(e.result) for e in self.experiments]
        if any(v is None or not math.isfinite(v) for v in found):
            return None
        return [float(v) for v in found if v is not None]

    def statistics(self, metric: str) -> MetricStatistics | None:
        """Mean and 95 % bootstrap interval of the metric across cycles, seeded as a study
        seeds this point (else with 0)."""
        values = self.values(metric)
        if values is None:
            return None
        point = self.experiments[0].point
        seed = point_seed(point.design_hash, point.point_index) if point else 0
        return cycle_statistics(values, seed=seed)


def configurations(experiments: Sequence[Experiment]) -> list[Configuration]:
    """``experiments`` grouped by configuration, in first-seen order, each labelled by the
    settings that differ among the configurations. A configuration is an equal measurement
    hash on the same kind and number of devices: the hash leaves out the hardware, and runs
    on another GPU are no cycles of the same measurement."""
    groups: dict[tuple[str, tuple[str, ...]], list[Experiment]] = {}
    for experiment in experiments:
        key = (experiment.result.measurement_config_hash, _hardware(experiment.result))
        groups.setdefault(key, []).append(experiment)
    firsts = [members[0] for members in groups.values()]
    names = labels(firsts)
    several = len({devices for _, devices in groups}) > 1
    return [
        Configuration(
            config_hash,
            tuple(members),
            name + (f" on {', '.join(dict.fromkeys(devices)) or 'CPU'}" if several else ""),
        )
        for ((config_hash, devices), members), name in zip(groups.items(), names, strict=True)
    ]


def _hardware(result: ExperimentResult) -> tuple[str, ...]:
    """The devices a result measured on, by model name, one entry per device."""
    return tuple(sorted(d.name for p in result.process_results for d in p.devices))


def _label(metric: str) -> str:
    if metric not in METRICS:
        raise ReportError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")
    return METRICS[metric][0]


@drawing
def metric_vs_variable(
    experiments: Experiments,
    metric: str = "energy_per_output_token_j",
    variable: str | None = None,
) -> Figure:
    """``metric`` (a name of :data:`METRICS`) against the setting ``variable`` (a dotted key
    such as ``pytorch.batch_size``; default: the first setting that differs), one line per
    combination of the other differing settings; the mean across cycles with its 95 %
    bootstrap interval."""
    chosen = experiments_of(experiments)
    axis_label = _label(metric)
    swept = differing_keys(chosen)
    if variable is None:
        if not swept:
            raise ReportError(
                "the experiments do not differ in any setting: name the variable to draw against"
            )
        variable = swept[0]
    others = [k for k in swept if k != variable]
    lines: dict[tuple[ConfigScalar, ...], list[tuple[ConfigScalar, MetricStatistics]]] = {}
    left_out = []
    for configuration in configurations(chosen):
        first = configuration.experiments[0]
        stats = configuration.statistics(metric)
        if stats is None:
            left_out.append(configuration.label)
            continue
        key = tuple(setting(first, k) for k in others)
        lines.setdefault(key, []).append((setting(first, variable), stats))
    if not lines:
        raise ReportError(
            f"no configuration has {metric} in every cycle (no energy measured, or no tokens)"
        )
    positions, ticks = _positions([x for points in lines.values() for x, _ in points])
    figure = new_figure(3.8)
    axes = figure.subplots()
    cycles: set[int] = set()
    for key, points in lines.items():
        points.sort(key=lambda p: positions[repr(p[0])])
        x = np.array([positions[repr(v)] for v, _ in points])
        mean = np.array([s.mean for _, s in points])
        low = np.array([s.mean - s.ci_low if s.ci_low is not None else 0.0 for _, s in points])
        high = np.array([s.ci_high - s.mean if s.ci_high is not None else 0.0 for _, s in points])
        name = settings_label(dict(zip(others, key, strict=True))) if others else None
        axes.errorbar(x, mean, yerr=(low, high), marker="o", ms=4, capsize=3, lw=1.2, label=name)
        cycles.update(s.n for _, s in points)
    if ticks is not None:
        axes.set_xticks(range(len(ticks)), ticks)
    axes.set_xlabel(setting_name(variable) + (f" ({variable})" if "." in variable else ""))
    axes.set_ylabel(axis_label)
    axes.grid(alpha=0.3)
    if others:
        axes.legend(fontsize=7)
    axes.set_title(
        f"{axis_label[:1].upper()}{axis_label[1:]} against {setting_name(variable)}",
        fontsize=10,
        loc="left",
    )
    notes = [_cycles_note(cycles)]
    if left_out:
        notes.append(f"Left out, {metric} missing from a cycle: {', '.join(left_out)}.")
    footnote(figure, notes, warning_lines(chosen, SWEEP_WARNINGS))
    return settle(figure)


def _cycles_note(cycles: set[int]) -> str:
    counts = "/".join(str(n) for n in sorted(cycles))
    if max(cycles) < 2:
        return "One cycle per configuration: no interval to draw (run more cycles for one)."
    return (
        f"Mean of {counts} cycles per configuration; bars: 95 % percentile-bootstrap interval "
        "of the mean."
    )


def _positions(values: Sequence[ConfigScalar]) -> tuple[dict[str, float], list[str] | None]:
    """Where each value of the variable sits on the x axis: itself where every value is a
    finite number, else an evenly spaced category, ordered by number where one can be read
    (``inf`` last), then by text. Returns the positions by ``repr`` and the tick labels of a
    categorical axis (None for a numeric one)."""
    distinct = list({repr(v): v for v in values}.values())
    numbers = [_number(v) for v in distinct]
    if all(n is not None and math.isfinite(n) for n in numbers):
        return {
            repr(v): float(n) for v, n in zip(distinct, numbers, strict=True) if n is not None
        }, None
    order = sorted(distinct, key=lambda v: (_number(v) is None, _number(v) or 0.0, str(v)))
    return {repr(v): float(i) for i, v in enumerate(order)}, [str(v) for v in order]


def _number(value: ConfigScalar) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except ValueError:
        return None


@drawing
def pareto_front(
    experiments: Experiments,
    *,
    energy: str = "energy_per_output_token_j",
    latency: str = "e2e_p99_ms",
) -> Figure:
    """Each configuration's mean ``energy`` (default: J per output token) against its mean
    ``latency`` (default: p99 end-to-end), the ones no other beats on both joined: the
    trade-off a deployment chooses from."""
    chosen = experiments_of(experiments)
    for name, given in ((energy, "an energy"), (latency, "a latency")):
        if name not in LOWER_IS_BETTER:
            raise ReportError(
                f"the Pareto front trades {given} where lower is better: choose one of "
                f"{', '.join(sorted(LOWER_IS_BETTER))}, not {name!r}"
            )
    energy_label, latency_label = _label(energy), _label(latency)
    points, left_out = [], []
    for configuration in configurations(chosen):
        latencies, energies = configuration.values(latency), configuration.values(energy)
        if latencies is None or energies is None:
            left_out.append(configuration.label)
            continue
        points.append((float(np.mean(latencies)), float(np.mean(energies)), configuration))
    if not points:
        raise ReportError(
            f"no configuration has both {energy} and {latency} (no energy measured, or no tokens)"
        )
    front = _front([(x, y) for x, y, _ in points])
    figure = new_figure(4.2)
    axes = figure.subplots()
    xs = [x for x, _, _ in points]
    ys = [y for _, y, _ in points]
    axes.scatter(xs, ys, s=22, color="#9bb7d4", zorder=2, label="configuration")
    fx = [points[i][0] for i in front]
    fy = [points[i][1] for i in front]
    axes.step(fx, fy, where="post", color="#1f5f99", lw=1.3, zorder=3)
    axes.scatter(fx, fy, s=30, color="#1f5f99", zorder=4, label="Pareto front")
    on_front = set(front)
    for i, (x, y, configuration) in enumerate(points):
        if len(points) <= _ANNOTATE_AT_MOST or i in on_front:
            axes.annotate(
                configuration.label,
                (x, y),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=6.5,
                color="#333333",
            )
    axes.set_xlabel(latency_label)
    axes.set_ylabel(energy_label)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper right")
    axes.set_title("Energy against tail latency: lower left is better", fontsize=10, loc="left")
    notes = ["Each point: the mean over a configuration's cycles."]
    if len(points) > _ANNOTATE_AT_MOST:
        notes.append(
            f"Only the front's configurations are named ({len(points)} points would crowd "
            "the figure); the report's table lists them all."
        )
    if left_out:
        notes.append(f"Left out, a figure missing: {', '.join(left_out)}.")
    footnote(figure, notes, warning_lines(chosen, SWEEP_WARNINGS))
    return settle(figure)


def _front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both (lower is better), by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best = [], math.inf
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front
