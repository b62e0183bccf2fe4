"""Figures of the power timeseries: :func:`power_over_time` and :func:`cumulative_energy`.

Both read the sidecar's samples per GPU (``gpu_index``), on the clock of the energy window:
0 s is the earliest window start of the run, ``duration_s`` its latest end.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from llem_report._common import drawing, experiments_of, footnote, new_figure, settle, warning_lines
from llem_report.errors import ReportError
from llem_report.loading import Experiment
from llem_report.reduce import DEFAULT_BUCKETS, FloatArray, envelope
from llem_schema import ExperimentResult

__all__ = ["ENERGY_WARNINGS", "POWER_WARNINGS", "cumulative_energy", "power_over_time"]

POWER_WARNINGS: Final = frozenset(
    {
        "throttled",
        "thermal_drift",
        "start_temperature",
        "sample_gaps",
        "sample_read_errors",
        "power_out_of_bounds",
        "module_power",
        "baseline_not_idle",
        "baseline_clamped",
        "no_baseline",
        "foreign_process",
        "shared_device",
        "simulated_gpus",
        "no_steady_state",
    }
)
"""The warning codes that bear on power and temperature over time."""

ENERGY_WARNINGS: Final = frozenset(
    {
        "short_window",
        "sample_gaps",
        "counter_mismatch",
        "counter_coarse",
        "counter_unreadable",
        "counter_backwards",
        "device_unmeasured",
        "processes_without_energy",
        "window_overlap",
        "simulated_gpus",
    }
)
"""The warning codes that bear on the energy a window integrates."""

_WINDOW_COLOUR: Final = "#d9d9d9"
_STEADY_COLOUR: Final = "#b7d7f0"


@dataclass(frozen=True)
class _Device:
    index: int
    name: str
    times_s: FloatArray
    power_w: FloatArray
    temperature_c: FloatArray
    baseline_w: float | None


def _devices(given: Experiment | ExperimentResult) -> tuple[Experiment, list[_Device]]:
    (experiment,) = experiments_of(given)
    table = experiment.timeseries
    if table is None:
        why = experiment.timeseries_note or _no_timeseries(experiment.result)
        raise ReportError(f"{experiment.id}: {why}")
    times = table.column("timestamp_s").to_numpy(zero_copy_only=False).astype(np.float64)
    indices = table.column("gpu_index").to_numpy(zero_copy_only=False)
    power = table.column("gpu_power_w").to_numpy(zero_copy_only=False).astype(np.float64)
    temperature = (
        table.column("gpu_temperature_c").to_numpy(zero_copy_only=False).astype(np.float64)
    )
    if not np.isfinite(power).any():
        raise ReportError(f"{experiment.id}: its timeseries holds no power sample")
    names, baselines = _device_facts(experiment.result)
    found = []
    for index in np.unique(indices).tolist():
        mine = np.flatnonzero(indices == index)
        order = mine[np.argsort(times[mine], kind="stable")]
        found.append(
            _Device(
                index=int(index),
                name=names.get(int(index), f"GPU {index}"),
                times_s=times[order],
                power_w=power[order],
                temperature_c=temperature[order],
                baseline_w=baselines.get(int(index)),
            )
        )
    return experiment, found


def _no_timeseries(result: ExperimentResult) -> str:
    if result.timeseries is None:
        return "this result has no power timeseries (no GPU power was sampled)"
    return "its timeseries was not read: load it with load_experiment(<result directory>)"


def _device_facts(result: ExperimentResult) -> tuple[dict[int, str], dict[int, float]]:
    """Per NVML index: a label (``GPU 0 (NVIDIA H100)``) and the idle baseline, in W.

    The timeseries tells GPUs apart by NVML index alone, which is unique on one host only:
    a run whose processes used one index on several GPUs cannot be drawn per GPU."""
    names: dict[int, str] = {}
    baselines: dict[int, float] = {}
    uuids: dict[int, set[str]] = {}
    for process in result.process_results:
        energy = {e.device_uuid: e for e in process.energy}
        for device in process.devices:
            if device.kind != "gpu":
                continue
            uuids.setdefault(device.index, set()).add(device.uuid)
            if len(uuids[device.index]) > 1:
                raise ReportError(
                    f"{result.experiment_id}: GPU index {device.index} names "
                    f"{len(uuids[device.index])} GPUs (on several hosts), and its timeseries "
                    "tells GPUs apart by index only: it cannot be drawn per GPU"
                )
            names.setdefault(device.index, f"GPU {device.index} ({device.name})")
            measured = energy.get(device.uuid)
            if measured and measured.baseline and measured.baseline.power_w is not None:
                baselines.setdefault(device.index, measured.baseline.power_w)
    return names, baselines


def _windows(axes: Axes, result: ExperimentResult, *, label: bool) -> None:
    """Shade the energy window and, where there is one, the steady-state window."""
    axes.axvspan(
        0.0,
        result.duration_s,
        color=_WINDOW_COLOUR,
        alpha=0.45,
        lw=0,
        label="energy window" if label else None,
    )
    if result.steady_state is not None:
        start, end = result.steady_state.steady_state_window
        axes.axvspan(
            start,
            end,
            color=_STEADY_COLOUR,
            alpha=0.6,
            lw=0,
            label="steady state" if label else None,
        )


def _reduced(
    devices: list[_Device], column: str
) -> Iterator[tuple[_Device, FloatArray, FloatArray, bool]]:
    for device in devices:
        values: FloatArray = getattr(device, column)
        keep = envelope(device.times_s, values, DEFAULT_BUCKETS)
        yield device, device.times_s[keep], values[keep], len(keep) < len(values)


def _reduction_note(devices: list[_Device], drawn: int, reduced: bool) -> list[str]:
    if not reduced:
        return []
    samples = sum(len(d.times_s) for d in devices)
    return [
        f"Drawn as a min/max envelope per {DEFAULT_BUCKETS:,} slices of time: {drawn:,} of "
        f"{samples:,} samples (every peak and dip kept; the full series is in the Parquet file)."
    ]


@drawing
def power_over_time(experiment: Experiment | ExperimentResult) -> Figure:
    """Power (top) and temperature (bottom) of each GPU over time, with the energy window,
    the steady-state window where the run has one, and each GPU's idle baseline."""
    experiment, devices = _devices(experiment)
    result = experiment.result
    figure = new_figure(5.2)
    power_axes, temperature_axes = figure.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    _windows(power_axes, result, label=True)
    _windows(temperature_axes, result, label=False)
    drawn, reduced = 0, False
    for device, times, watts, cut in _reduced(devices, "power_w"):
        (line,) = power_axes.plot(times, watts, lw=0.9, label=device.name)
        drawn, reduced = drawn + len(times), reduced or cut
        if device.baseline_w is not None:
            power_axes.axhline(
                device.baseline_w,
                color=line.get_color(),
                ls="--",
                lw=0.8,
                label=f"idle baseline, GPU {device.index}: {device.baseline_w:.0f} W",
            )
    for _, times, degrees, cut in _reduced(devices, "temperature_c"):
        temperature_axes.plot(times, degrees, lw=0.9)
        reduced = reduced or cut
    power_axes.set_ylabel("power (W)")
    power_axes.set_ylim(bottom=0)
    temperature_axes.set_ylabel("temperature (°C)")
    temperature_axes.set_xlabel("time since the window's start (s)")
    power_axes.set_title(f"Power and temperature: {experiment.id}", fontsize=10, loc="left")
    power_axes.legend(fontsize=7, loc="lower right", ncols=2)
    for axes in (power_axes, temperature_axes):
        axes.grid(alpha=0.3)
    footnote(
        figure,
        _reduction_note(devices, drawn, reduced),
        warning_lines([experiment], POWER_WARNINGS),
    )
    return settle(figure)


def _window_energy(device: _Device, end_s: float) -> tuple[FloatArray, FloatArray]:
    """Times and cumulative energy (J) of the device over the window ``[0, end_s]``: its
    power integrated by trapezoids, the power at each edge of the window interpolated from
    the samples either side of it (where there are samples beyond the edge)."""
    known = np.isfinite(device.power_w)
    times, watts = device.times_s[known], device.power_w[known]
    if len(times) < 2:
        return times[:0], watts[:0]
    start, end = max(0.0, times[0]), min(end_s, times[-1])
    inside = (times > start) & (times < end)
    times = np.concatenate(([start], times[inside], [end]))
    watts = np.interp(times, device.times_s[known], device.power_w[known])
    steps = np.diff(times) * (watts[1:] + watts[:-1]) / 2.0
    return times, np.concatenate(([0.0], np.cumsum(steps)))


@drawing
def cumulative_energy(experiment: Experiment | ExperimentResult) -> Figure:
    """Energy used since the window's start, per GPU and in all, integrated from the sampled
    power over the energy window; the result's own figure beside it (from the counters where
    the GPUs have them; the integral of every sample, the one just after the window too,
    where they have none)."""
    experiment, devices = _devices(experiment)
    result = experiment.result
    figure = new_figure(3.6)
    axes = figure.subplots()
    _windows(axes, result, label=True)
    series = [(device, *_window_energy(device, result.duration_s)) for device in devices]
    scale, unit = (
        (1e3, "kJ")
        if max((j[-1] for _, _, j in series if len(j)), default=0.0) >= 1e4
        else (1.0, "J")
    )
    drawn, reduced, samples = 0, False, 0
    for device, times, joules in series:
        keep = envelope(times, joules, DEFAULT_BUCKETS)
        axes.plot(
            times[keep],
            joules[keep] / scale,
            lw=1.0,
            label=f"{device.name}: {_amount(joules, scale, unit)}",
        )
        drawn, reduced, samples = (
            drawn + len(keep),
            reduced or len(keep) < len(times),
            samples + len(times),
        )
    if len(series) > 1:
        grid = np.unique(np.concatenate([t for _, t, _ in series]))
        total = sum(
            (np.interp(grid, t, j) if len(t) else np.zeros(len(grid)) for _, t, j in series),
            np.zeros(len(grid)),
        )
        keep = envelope(grid, total, DEFAULT_BUCKETS)
        axes.plot(
            grid[keep],
            total[keep] / scale,
            lw=1.4,
            color="black",
            label=f"all GPUs: {_amount(total, scale, unit)}",
        )
    if result.gpu_energy_j is not None:
        axes.axhline(
            result.gpu_energy_j / scale,
            color="#555555",
            ls=":",
            lw=1.0,
            label=f"result's GPU energy: {result.gpu_energy_j / scale:,.1f} {unit}",
        )
    axes.set_ylabel(f"energy ({unit})")
    axes.set_xlabel("time since the window's start (s)")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left")
    axes.set_title(f"Cumulative GPU energy: {experiment.id}", fontsize=10, loc="left")
    notes = [
        "Integrated from the power samples inside the energy window (trapezoids); the result's "
        "figure comes from the energy counters where the GPU has them.",
    ]
    if reduced:
        notes.append(f"Drawn from {drawn:,} of {samples:,} points (min/max envelope).")
    footnote(figure, notes, warning_lines([experiment], ENERGY_WARNINGS))
    return settle(figure)


def _amount(joules: FloatArray, scale: float, unit: str) -> str:
    return f"{(joules[-1] if len(joules) else 0.0) / scale:,.1f} {unit}"


def has_power(experiment: Experiment) -> bool:
    """Whether the experiment has samples to draw (a timeseries with any power value)."""
    table = experiment.timeseries
    return (
        table is not None
        and table.num_rows > 0
        and table.column("gpu_power_w").null_count < table.num_rows
    )
