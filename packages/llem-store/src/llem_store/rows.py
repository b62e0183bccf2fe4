"""From an :class:`~llem_schema.ExperimentResult` to the store's rows.

An experiment's row takes its figures from the summary columns (:mod:`llem_schema.tabular`),
the one flattening of a result that the exporters write too; this module only says which
summary column fills which store column. It imports pydantic: the store loads it to ingest,
never to query.
"""

import json
from datetime import datetime
from typing import Any, Final

from llem_schema import ExperimentConfig, ExperimentResult
from llem_schema.tabular import SUMMARY_BY_NAME
from llem_store.models import utc_text

__all__ = ["config_row", "experiment_row", "requests_table_rows", "warnings_table_rows"]

Row = dict[str, Any]

FROM_SUMMARY: Final[dict[str, str]] = {
    "experiment_id": "experiment_id",
    "name": "config_name",
    "model": "model",
    "backend": "backend",
    "backend_version": "backend_version",
    "precision": "config_precision",
    "batch_size": "config_batch_size",
    "num_processes": "aggregation_expected_processes",
    "created_at": "start_time_utc",
    "end_time": "end_time_utc",
    "duration_s": "duration_s",
    "config_hash": "measurement_config_hash",
    "schema_version": "schema_version",
    "requests": "num_requests",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "total_energy_j": "total_energy_j",
    "energy_j": "energy_j",
    "energy_scope": "energy_scope",
    "gpu_energy_j": "gpu_energy_j",
    "cpu_energy_j": "cpu_energy_j",
    "energy_adjusted_j": "energy_adjusted_j",
    "baseline_power_w": "baseline_power_w",
    "output_tokens_per_s": "output_tokens_per_s",
    "output_tokens_per_j": "efficiency_output_tokens_per_j",
    "energy_per_output_token_j": "efficiency_energy_per_output_token_j",
    "output_tokens_per_j_adjusted": "efficiency_output_tokens_per_j_adjusted",
    "ttft_median_ms": "latency_ttft_median_ms",
    "ttft_p95_ms": "latency_ttft_p95_ms",
    "itl_median_ms": "latency_itl_median_ms",
    "itl_p95_ms": "latency_itl_p95_ms",
    "tpot_median_ms": "latency_tpot_median_ms",
    "e2e_median_ms": "latency_e2e_median_ms",
    "e2e_p95_ms": "latency_e2e_p95_ms",
    "peak_memory_mb": "peak_memory_mb",
    "warning_count": "num_warnings",
}
"""Each store column filled from a summary column: store column -> summary column."""

_COLUMNS: Final = tuple(
    (store, SUMMARY_BY_NAME[summary].get) for store, summary in FROM_SUMMARY.items()
)


def experiment_row(result: ExperimentResult) -> Row:
    """The ``experiments`` row of a saved result (without path, hash and indexing time)."""
    row: Row = {column: get(result) for column, get in _COLUMNS}
    for column in ("created_at", "end_time"):
        if row[column] is not None:
            row[column] = utc_text(row[column])
    row |= {
        "status": "completed" if result.aggregation.complete else "incomplete",
        "config_json": _json(result.effective_config),
        "error": None,
    }
    return row


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
    section = dumped.get(config.backend)
    batch_size = section.get("batch_size") if isinstance(section, dict) else None
    return {
        "experiment_id": experiment_id,
        "name": config.name,
        "status": status,
        "model": config.model,
        "backend": config.backend,
        "precision": config.precision,
        "batch_size": batch_size if isinstance(batch_size, int) else None,
        "num_processes": config.num_processes,
        "created_at": utc_text(created),
        "config_hash": config.measurement_config_hash(),
        "config_json": _json(dumped),
        "error": error,
    }


def requests_table_rows(result: ExperimentResult) -> list[tuple[object, ...]]:
    """One ``requests`` table row per measured request, in the table's column order."""
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


def warnings_table_rows(result: ExperimentResult) -> list[tuple[object, ...]]:
    """The result's warnings, each once, in order: (experiment id, position, source, message,
    code). ``measurement_warnings`` holds every warning, aggregation's notes included; those
    are marked with the source ``aggregation``."""
    from_aggregation = result.aggregation.warnings
    return [
        (
            result.experiment_id,
            position,
            "aggregation" if w in from_aggregation else "measurement",
            w.message,
            w.code,
        )
        for position, w in enumerate(result.measurement_warnings)
    ]


def _json(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"))
