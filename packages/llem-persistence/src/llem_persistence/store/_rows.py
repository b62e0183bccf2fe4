"""From an :class:`~llem_schema.ExperimentResult` to the store's rows."""

import json
from datetime import datetime
from typing import Any

from llem_persistence.store.models import utc_text
from llem_schema import ExperimentConfig, ExperimentResult, LatencyStats

__all__ = ["config_row", "experiment_row", "request_rows", "warning_rows"]

Row = dict[str, Any]


def _stat(stats: LatencyStats | None, name: str) -> float | None:
    return None if stats is None else float(getattr(stats, name))


def _batch_size(config: dict[str, Any], backend: str) -> int | None:
    section = config.get(backend)
    value = section.get("batch_size") if isinstance(section, dict) else None
    return value if isinstance(value, int) else None


def experiment_row(result: ExperimentResult) -> Row:
    """The ``experiments`` row of a saved result (without path, hash and indexing time)."""
    config = result.effective_config
    latency = result.latency
    efficiency = result.efficiency
    peaks = [p.peak_memory_mb for p in result.process_results if p.peak_memory_mb is not None]
    name = config.get("name")
    precision = config.get("precision")
    return {
        "experiment_id": result.experiment_id,
        "name": name if isinstance(name, str) else None,
        "status": "completed" if result.aggregation.complete else "incomplete",
        "model": result.model,
        "backend": result.backend,
        "backend_version": result.backend_version,
        "precision": precision if isinstance(precision, str) else None,
        "batch_size": _batch_size(config, result.backend),
        "num_processes": result.aggregation.expected_processes,
        "created_at": utc_text(result.start_time),
        "end_time": utc_text(result.end_time),
        "duration_s": result.duration_s,
        "config_hash": result.measurement_config_hash,
        "config_json": json.dumps(config, sort_keys=True, separators=(",", ":")),
        "schema_version": result.schema_version,
        "requests": sum(len(p.requests) for p in result.process_results),
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "total_energy_j": result.total_energy_j,
        "energy_adjusted_j": result.energy_adjusted_j,
        "baseline_power_w": result.baseline_power_w,
        "output_tokens_per_s": result.output_tokens_per_s,
        "output_tokens_per_j": efficiency.output_tokens_per_j,
        "energy_per_output_token_j": efficiency.energy_per_output_token_j,
        "output_tokens_per_j_adjusted": efficiency.output_tokens_per_j_adjusted,
        "ttft_median_ms": _stat(latency.ttft, "median_ms"),
        "ttft_p95_ms": _stat(latency.ttft, "p95_ms"),
        "itl_median_ms": _stat(latency.itl, "median_ms"),
        "itl_p95_ms": _stat(latency.itl, "p95_ms"),
        "tpot_median_ms": _stat(latency.tpot, "median_ms"),
        "e2e_median_ms": _stat(latency.e2e, "median_ms"),
        "e2e_p95_ms": _stat(latency.e2e, "p95_ms"),
        "peak_memory_mb": max(peaks) if peaks else None,
        "warning_count": len(result.measurement_warnings) + len(result.aggregation.warnings),
        "error": None,
    }


def config_row(
    experiment_id: str,
    config: ExperimentConfig,
    *,
    status: str,
    created: datetime,
    error: str | None = None,
) -> Row:
    """The ``experiments`` row of a run that has no result yet (running, or failed)."""
    dumped = config.model_dump(mode="json")
    return {
        "experiment_id": experiment_id,
        "name": config.name,
        "status": status,
        "model": config.model,
        "backend": config.backend,
        "precision": config.precision,
        "batch_size": _batch_size(dumped, config.backend),
        "num_processes": config.num_processes,
        "created_at": utc_text(created),
        "config_hash": config.measurement_config_hash(),
        "config_json": json.dumps(dumped, sort_keys=True, separators=(",", ":")),
        "error": error,
    }


def request_rows(result: ExperimentResult) -> list[tuple[object, ...]]:
    """One ``requests`` row per measured request, in the table's column order."""
    rows: list[tuple[object, ...]] = []
    experiment_id = result.experiment_id
    for process in result.process_results:
        index = process.process_index
        for r in process.requests:
            gaps = r.itl_ms
            rows.append(
                (
                    experiment_id,
                    index,
                    r.request_index,
                    r.batch_index,
                    r.input_tokens,
                    r.output_tokens,
                    r.ttft_ms,
                    r.e2e_ms,
                    r.tpot_ms,
                    max(gaps) if gaps else None,
                )
            )
    return rows


def warning_rows(result: ExperimentResult) -> list[tuple[object, ...]]:
    """The result's measurement and aggregation warnings, in order: (experiment id,
    position, source, message, code)."""
    warnings = [("measurement", w) for w in result.measurement_warnings]
    warnings += [("aggregation", w) for w in result.aggregation.warnings]
    return [
        (result.experiment_id, position, source, w.message, w.code)
        for position, (source, w) in enumerate(warnings)
    ]
