"""The flattened summary row: one row per experiment, in one documented, stable column order.

:data:`SUMMARY_COLUMNS` is the column order of every tabular export: the CSV file, the
Parquet table and the ``summary`` sheet of the xlsx workbook. It is defined here once.

Naming: a nested field is its path joined by underscores (``latency.ttft.p95_ms`` ->
``latency_ttft_p95_ms``, ``efficiency.output_tokens_per_j`` ->
``efficiency_output_tokens_per_j``); settings read from ``effective_config`` start with
``config_``; counts start with ``num_``. Units end the name: ``_j``, ``_w``, ``_s``, ``_ms``,
``_mb``, ``_c``, ``_hz``, ``_flops``, ``_utc`` (a timestamp in UTC).

The groups, in order: identity and time; key config settings; tokens and counts; energy;
throughput; efficiency; latency (ttft, itl, tpot, e2e, each count, mean, median, p90, p95,
p99, min, max); compute and memory; multi-GPU; throttling; warmup; environment; aggregation.

Stability: within a major llem schema version a column is never renamed, retyped, removed
or moved; new columns are only appended at the end. Read columns by name all the same.
"""

from typing import Final

from llem_schema import ExperimentResult, LatencyStats
from llem_schema.tabular.columns import (
    Cell,
    Column,
    boolean,
    integer,
    number,
    row_values,
    text,
    timestamp,
)
from llem_schema.tabular.config import (
    backend_int,
    config_bool,
    config_float,
    config_int,
    config_str,
)

__all__ = ["SUMMARY_BY_NAME", "SUMMARY_COLUMNS", "SUMMARY_COLUMN_NAMES", "summary_row"]

R = ExperimentResult

LATENCY_METRICS: Final = ("ttft", "itl", "tpot", "e2e")
_LATENCY_LABELS: Final = {
    "ttft": "time to first token",
    "itl": "inter-token latency (every gap)",
    "tpot": "time per output token after the first",
    "e2e": "end-to-end request latency",
}
_STAT_LABELS: Final = {
    "mean_ms": "mean, ms",
    "median_ms": "median, ms",
    "p90_ms": "90th percentile, ms",
    "p95_ms": "95th percentile, ms",
    "p99_ms": "99th percentile, ms",
    "min_ms": "smallest, ms",
    "max_ms": "largest, ms",
}


def _stats(result: R, metric: str) -> LatencyStats | None:
    stats: LatencyStats | None = getattr(result.latency, metric)
    return stats


def _latency_columns() -> list[Column[R]]:
    columns: list[Column[R]] = []
    for metric in LATENCY_METRICS:
        label = _LATENCY_LABELS[metric]

        def count(result: R, metric: str = metric) -> int | None:
            stats = _stats(result, metric)
            return None if stats is None else stats.count

        columns.append(
            integer(f"latency_{metric}_count", f"Values in the {label} statistics.", count)
        )
        for stat, stat_label in _STAT_LABELS.items():

            def value(result: R, metric: str = metric, stat: str = stat) -> float | None:
                stats = _stats(result, metric)
                figure: float | None = None if stats is None else getattr(stats, stat)
                return figure

            columns.append(
                number(f"latency_{metric}_{stat}", f"{label.capitalize()}: {stat_label}.", value)
            )
    return columns


def _num_requests(result: R) -> int:
    return sum(len(process.requests) for process in result.process_results)


def _peak_memory_mb(result: R) -> float | None:
    peaks = [p.peak_memory_mb for p in result.process_results if p.peak_memory_mb is not None]
    return max(peaks) if peaks else None


def _peak_memory_source(result: R) -> str | None:
    sources = sorted({p.peak_memory_source for p in result.process_results if p.peak_memory_source})
    return ";".join(sources) or None


def _gpu_names(result: R) -> str | None:
    snapshot = result.environment_snapshot
    if snapshot is None or not snapshot.gpus:
        return None
    return ";".join(sorted({gpu.name for gpu in snapshot.gpus}))


def _missing_processes(result: R) -> str | None:
    missing = result.aggregation.missing_processes
    return ";".join(str(index) for index in missing) or None


SUMMARY_COLUMNS: Final[tuple[Column[ExperimentResult], ...]] = (
    # identity and time
    text("experiment_id", "Unique id of the experiment run.", lambda r: r.experiment_id),
    text("model", "Model name or path as configured.", lambda r: r.model),
    text("backend", "Inference backend.", lambda r: r.backend),
    text("backend_version", "Backend version.", lambda r: r.backend_version),
    text("schema_version", "llem schema version of the result.", lambda r: r.schema_version),
    text(
        "measurement_config_hash",
        "Hash of every setting that changes the measurement: equal hashes measured the same thing.",
        lambda r: r.measurement_config_hash,
    ),
    timestamp("start_time_utc", "Earliest measurement-window start, UTC.", lambda r: r.start_time),
    timestamp("end_time_utc", "Latest measurement-window end, UTC.", lambda r: r.end_time),
    number("duration_s", "Earliest start to latest end, s.", lambda r: r.duration_s),
    # key config settings
    text("config_name", "Free-form experiment label.", config_str("name")),
    text("config_precision", "Weight and activation dtype.", config_str("precision")),
    integer("config_batch_size", "Prompts per batch (backend setting).", backend_int("batch_size")),
    integer("config_n", "Prompts measured.", config_int("n")),
    integer("config_num_processes", "Worker processes launched.", config_int("num_processes")),
    integer(
        "config_max_input_tokens",
        "Prompt truncation length, tokens.",
        config_int("max_input_tokens"),
    ),
    integer(
        "config_max_new_tokens", "Output tokens allowed per request.", config_int("max_new_tokens")
    ),
    text("config_decoder_mode", "greedy or sampling.", config_str("decoder", "mode")),
    number(
        "config_decoder_temperature",
        "Sampling temperature.",
        config_float("decoder", "temperature"),
    ),
    number("config_decoder_top_p", "Nucleus sampling mass.", config_float("decoder", "top_p")),
    integer("config_decoder_top_k", "Top-k sampling (0: off).", config_int("decoder", "top_k")),
    boolean(
        "config_decoder_ignore_eos",
        "Generation continued past end-of-sequence.",
        config_bool("decoder", "ignore_eos"),
    ),
    text(
        "config_prompts_source",
        "builtin, synthetic or a prompt file.",
        config_str("prompts", "source"),
    ),
    integer("config_warmup_count", "Warmup batches always run.", config_int("warmup", "count")),
    boolean(
        "config_baseline_enabled",
        "Idle baseline power measured or reused.",
        config_bool("baseline", "enabled"),
    ),
    text("config_energy_source", "auto, nvml, rapl or none.", config_str("energy", "source")),
    number(
        "config_energy_sample_rate_hz",
        "Power sampler rate, Hz.",
        config_float("energy", "sample_rate_hz"),
    ),
    integer("config_seed", "Seed for prompts and sampling.", config_int("seed")),
    # tokens and counts
    integer("input_tokens", "Prompt tokens, all processes.", lambda r: r.input_tokens),
    integer("output_tokens", "Generated tokens, all processes.", lambda r: r.output_tokens),
    integer("total_tokens", "input_tokens + output_tokens.", lambda r: r.total_tokens),
    integer("num_requests", "Requests measured, all processes.", _num_requests),
    integer(
        "num_processes",
        "Processes whose results were aggregated.",
        lambda r: r.aggregation.num_processes,
    ),
    integer(
        "num_warnings",
        "Measurement warnings (see the warnings).",
        lambda r: len(r.measurement_warnings),
    ),
    # energy
    number(
        "total_energy_j",
        "Energy of every metered domain (GPUs plus host-wide CPU where read), J.",
        lambda r: r.total_energy_j,
    ),
    number("gpu_energy_j", "Energy of the metered GPUs, J.", lambda r: r.gpu_energy_j),
    number(
        "cpu_energy_j",
        "Host-wide CPU energy (RAPL package + DRAM), J.",
        lambda r: r.cpu_energy_j,
    ),
    text(
        "energy_scope",
        "What the efficiency and adjusted figures are of: gpu, cpu, or total (before 1.3).",
        lambda r: r.energy_scope,
    ),
    number(
        "energy_adjusted_j",
        "The energy_scope's energy less idle power x the window, at least 0, J.",
        lambda r: r.energy_adjusted_j,
    ),
    number(
        "baseline_power_w",
        "Idle power of the energy_scope's devices, W.",
        lambda r: r.baseline_power_w,
    ),
    integer(
        "num_energy_devices",
        "Devices (or RAPL domains) with an energy figure.",
        lambda r: len(r.energy_per_device_j) if r.total_energy_j is not None else None,
    ),
    text(
        "energy_breakdown_energy_method",
        "counter, integrated or mixed.",
        lambda r: None if r.energy_breakdown is None else r.energy_breakdown.energy_method,
    ),
    text(
        "energy_breakdown_baseline_method",
        "fresh, cached or unavailable.",
        lambda r: None if r.energy_breakdown is None else r.energy_breakdown.baseline_method,
    ),
    number(
        "energy_breakdown_baseline_age_s",
        "Age of the oldest cached baseline used, s.",
        lambda r: None if r.energy_breakdown is None else r.energy_breakdown.baseline_age_s,
    ),
    number(
        "energy_breakdown_duration_s",
        "Window the baseline was subtracted over, s.",
        lambda r: None if r.energy_breakdown is None else r.energy_breakdown.duration_s,
    ),
    # throughput
    number("output_tokens_per_s", "Output tokens / duration_s.", lambda r: r.output_tokens_per_s),
    number(
        "total_tokens_per_s",
        "Input plus output tokens / duration_s (input-inclusive).",
        lambda r: r.total_tokens_per_s,
    ),
    number(
        "mean_process_output_tokens_per_s",
        "Mean over processes of each one's own throughput.",
        lambda r: r.mean_process_output_tokens_per_s,
    ),
    # efficiency
    number(
        "efficiency_output_tokens_per_j",
        "Output tokens per joule of the energy_scope's raw energy.",
        lambda r: r.efficiency.output_tokens_per_j,
    ),
    number(
        "efficiency_energy_per_output_token_j",
        "Raw joules per output token.",
        lambda r: r.efficiency.energy_per_output_token_j,
    ),
    number(
        "efficiency_output_tokens_per_j_adjusted",
        "Output tokens per joule of baseline-adjusted energy.",
        lambda r: r.efficiency.output_tokens_per_j_adjusted,
    ),
    number(
        "efficiency_energy_per_output_token_adjusted_j",
        "Baseline-adjusted joules per output token.",
        lambda r: r.efficiency.energy_per_output_token_adjusted_j,
    ),
    # latency
    *_latency_columns(),
    # compute and memory
    number(
        "flops_total_flops",
        "Estimated floating-point operations.",
        lambda r: None if r.flops is None else r.flops.total_flops,
    ),
    text(
        "flops_method",
        "How FLOPs were estimated.",
        lambda r: None if r.flops is None else r.flops.method,
    ),
    number("peak_memory_mb", "Largest peak memory over processes, MiB.", _peak_memory_mb),
    text(
        "peak_memory_source",
        "cuda (device memory) or rss (process memory); ';'-joined if mixed.",
        _peak_memory_source,
    ),
    # multi-GPU
    integer(
        "multi_gpu_num_gpus",
        "Distinct GPUs measured (only when more than one).",
        lambda r: None if r.multi_gpu is None else r.multi_gpu.num_gpus,
    ),
    number(
        "multi_gpu_energy_max_over_min",
        "Highest over lowest per-GPU energy; 1.0 is even.",
        lambda r: None if r.multi_gpu is None else r.multi_gpu.energy_max_over_min,
    ),
    # throttling
    boolean(
        "thermal_throttle_detected",
        "Any throttle reason seen in the window, the software power cap included.",
        lambda r: None if r.thermal_throttle is None else r.thermal_throttle.detected,
    ),
    number(
        "thermal_throttle_slowdown_s",
        "Seconds of thermal or hardware slowdown or power brake (warned about).",
        lambda r: None if r.thermal_throttle is None else r.thermal_throttle.slowdown_s,
    ),
    number(
        "thermal_throttle_power_cap_s",
        "Seconds at the software power cap (information: normal at full load).",
        lambda r: None if r.thermal_throttle is None else r.thermal_throttle.power_cap_s,
    ),
    number(
        "thermal_throttle_throttled_s",
        "Seconds with a throttle reason active.",
        lambda r: None if r.thermal_throttle is None else r.thermal_throttle.throttled_s,
    ),
    number(
        "thermal_throttle_temperature_start_c",
        "Highest device temperature at the start, deg C.",
        lambda r: None if r.thermal_throttle is None else r.thermal_throttle.temperature_start_c,
    ),
    number(
        "thermal_throttle_temperature_peak_c",
        "Highest device temperature in the window, deg C.",
        lambda r: None if r.thermal_throttle is None else r.thermal_throttle.temperature_peak_c,
    ),
    # warmup
    integer(
        "warmup_result_batches",
        "Warmup batches run.",
        lambda r: None if r.warmup_result is None else r.warmup_result.batches,
    ),
    number(
        "warmup_result_duration_s",
        "Warmup wall time, s.",
        lambda r: None if r.warmup_result is None else r.warmup_result.duration_s,
    ),
    boolean(
        "warmup_result_converged",
        "Warmup latency CV reached its target (empty: not asked).",
        lambda r: None if r.warmup_result is None else r.warmup_result.converged,
    ),
    number(
        "warmup_result_final_cv",
        "Warmup latency coefficient of variation at the end.",
        lambda r: None if r.warmup_result is None else r.warmup_result.final_cv,
    ),
    # environment
    text(
        "environment_snapshot_hostname",
        "Host measured on.",
        lambda r: None if r.environment_snapshot is None else r.environment_snapshot.hostname,
    ),
    text("environment_snapshot_gpu_names", "Distinct GPU models visible, ';'-joined.", _gpu_names),
    integer(
        "environment_snapshot_num_gpus",
        "GPUs visible to NVML.",
        lambda r: None if r.environment_snapshot is None else len(r.environment_snapshot.gpus),
    ),
    text(
        "environment_snapshot_driver_version",
        "NVIDIA driver version.",
        lambda r: None if r.environment_snapshot is None else r.environment_snapshot.driver_version,
    ),
    text(
        "environment_snapshot_cuda_version",
        "CUDA driver API version.",
        lambda r: None if r.environment_snapshot is None else r.environment_snapshot.cuda_version,
    ),
    # aggregation
    text("aggregation_method", "How processes were combined.", lambda r: r.aggregation.method),
    integer(
        "aggregation_expected_processes",
        "Processes the experiment launched.",
        lambda r: r.aggregation.expected_processes,
    ),
    boolean(
        "aggregation_complete",
        "Every launched process contributed.",
        lambda r: r.aggregation.complete,
    ),
    text(
        "aggregation_missing_processes",
        "Indices of processes with no result, ';'-joined.",
        _missing_processes,
    ),
    boolean(
        "aggregation_temporal_overlap_verified",
        "Processes overlapped in time as required.",
        lambda r: r.aggregation.temporal_overlap_verified,
    ),
    boolean(
        "aggregation_device_attribution_verified",
        "No device was measured by two processes.",
        lambda r: r.aggregation.device_attribution_verified,
    ),
    integer(
        "aggregation_num_warnings",
        "Warnings aggregation raised (see the warnings).",
        lambda r: len(r.aggregation.warnings),
    ),
    text(
        "timeseries",
        "Power/temperature Parquet sidecar beside result.json.",
        lambda r: r.timeseries,
    ),
    # appended in schema 1.3
    number(
        "energy_j",
        "The energy_scope's energy, J: what the efficiency figures divide.",
        lambda r: r.scope_energy_j(),
    ),
)
"""Every summary column, in export order (see the module docstring for the rules)."""

SUMMARY_COLUMN_NAMES: Final[tuple[str, ...]] = tuple(column.name for column in SUMMARY_COLUMNS)
"""The names of :data:`SUMMARY_COLUMNS`, in order."""

SUMMARY_BY_NAME: Final[dict[str, Column[ExperimentResult]]] = {c.name: c for c in SUMMARY_COLUMNS}
"""Each summary column by its name (for reading a few values without the whole row)."""


def summary_row(result: ExperimentResult) -> list[Cell]:
    """The summary values of ``result`` in column order (``None`` where missing)."""
    return row_values(SUMMARY_COLUMNS, result)
