"""The aggregated result of one experiment: :class:`ExperimentResult`, and its save/load."""

import math
import shutil
import warnings
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any, Final, Literal, Self

from pydantic import (
    AwareDatetime,
    Field,
    JsonValue,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from llem_schema._base import FrozenModel
from llem_schema.errors import LlemError, LlemWarning, ResultFormatError
from llem_schema.ids import ExperimentId, validate_sidecar_name
from llem_schema.io import (
    atomic_copy,
    atomic_write_bytes,
    create_unique_dir,
    document_file,
    load_document,
    parse_json_object,
    read_document_text,
)
from llem_schema.measurement import (
    EnergyBreakdown,
    EnergyDomain,
    EnvironmentSnapshot,
    FlopsEstimate,
    MeasurementWarning,
    ThermalThrottleInfo,
    WarmupResult,
)
from llem_schema.metrics import (
    EfficiencyMetrics,
    LatencyMetrics,
    RequestMetrics,
    SteadyStateMetrics,
)
from llem_schema.raw import RawProcessResult
from llem_schema.versions import RAW_MIGRATIONS, RESULT_MIGRATIONS, SCHEMA_VERSION, parse_version

__all__ = [
    "RESULT_FILE",
    "TIMESERIES_FILE",
    "AggregationMetadata",
    "ExperimentResult",
    "MultiGPUMetrics",
]

RESULT_FILE: Final = "result.json"
TIMESERIES_FILE: Final = "timeseries.parquet"

_REL_TOL = 1e-9


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=_REL_TOL, abs_tol=1e-12)


def _file_names(names: list[str]) -> list[str]:
    """``names`` if each is a plain file name, none llem's own, none twice."""
    for name in names:
        validate_sidecar_name(name)
        if name in (RESULT_FILE, TIMESERIES_FILE):
            raise ValueError(f"files: {name!r} is llem's own file")
    if len(set(names)) != len(names):
        raise ValueError("files names a file twice")
    return names


class AggregationMetadata(FrozenModel):
    """How per-process results became one, and what was verified on the way."""

    method: str = Field(
        default="late_concatenation",
        description="late_concatenation: raw per-request data concatenated, statistics computed once.",
    )
    num_processes: PositiveInt = Field(description="Processes whose results were aggregated.")
    expected_processes: PositiveInt = Field(description="Processes the experiment launched.")
    temporal_overlap_verified: bool = Field(
        description="Processes overlap for at least half of the shortest one (True for one process)."
    )
    device_attribution_verified: bool = Field(
        description="No physical device was measured by more than one process."
    )
    complete: bool = Field(
        description="Every launched process contributed, each with all of its requests."
    )
    missing_processes: list[NonNegativeInt] = Field(
        default_factory=list, description="Indices of processes with no result."
    )
    interrupted_processes: list[NonNegativeInt] = Field(
        default_factory=list,
        description="Indices of processes stopped before all their requests finished.",
    )
    start_skew_s: NonNegativeFloat | None = Field(
        default=None,
        description=(
            "Latest minus earliest window start across processes, s; None for one process "
            "or before schema 1.3."
        ),
    )
    end_skew_s: NonNegativeFloat | None = Field(
        default=None,
        description=(
            "Latest minus earliest window end across processes, s (processes close their "
            "windows together); None for one process or before schema 1.3."
        ),
    )
    warnings: list[MeasurementWarning] = Field(
        default_factory=list, description="What aggregation noticed."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.complete != (not self.missing_processes and not self.interrupted_processes):
            raise ValueError(
                "complete must be true exactly when no process is missing or interrupted"
            )
        if self.num_processes + len(self.missing_processes) != self.expected_processes:
            raise ValueError("num_processes + missing processes must equal expected_processes")
        return self


class MultiGPUMetrics(FrozenModel):
    """How work and energy were spread when more than one GPU ran."""

    num_gpus: PositiveInt = Field(description="Distinct GPUs measured.")
    gpu_uuids: list[str] = Field(description="Their UUIDs.")
    energy_max_over_min: PositiveFloat | None = Field(
        default=None,
        description="Highest over lowest per-GPU energy; 1.0 is perfectly even. None if unmeasured.",
    )


class ExperimentResult(FrozenModel):
    """One experiment's complete, schema-versioned result (``result.json``)."""

    # identity
    schema_version: str = Field(
        default=SCHEMA_VERSION, description="llem schema version, 'major.minor'."
    )
    experiment_id: ExperimentId = Field(description="Unique id of this experiment run.")
    measurement_config_hash: str = Field(
        min_length=1, description="Hash of every config setting that changes the measurement."
    )
    model: str = Field(min_length=1, description="Model name or path as configured.")
    backend: str = Field(min_length=1, description="Inference backend name.")
    backend_version: str = Field(description="Backend version (e.g. transformers and torch).")
    effective_config: dict[str, JsonValue] = Field(
        description="The full resolved ExperimentConfig, defaults included, as JSON."
    )
    # time
    start_time: AwareDatetime = Field(description="Earliest measurement-window start.")
    end_time: AwareDatetime = Field(description="Latest measurement-window end.")
    duration_s: PositiveFloat = Field(description="Earliest start to latest end, s.")
    # tokens
    input_tokens: NonNegativeInt = Field(description="Prompt tokens, all processes.")
    output_tokens: NonNegativeInt = Field(description="Generated tokens, all processes.")
    total_tokens: NonNegativeInt = Field(description="input_tokens + output_tokens.")
    # energy
    total_energy_j: NonNegativeFloat | None = Field(
        description=(
            "Energy of every metered domain summed, distinct physical devices once, J: GPUs "
            "plus host-wide CPU energy where RAPL was read, so its scope depends on who ran "
            "it. The efficiency figures use energy_scope's energy instead. None without an "
            "energy source."
        )
    )
    gpu_energy_j: NonNegativeFloat | None = Field(
        default=None,
        description="Energy of the metered GPUs, J; None where no GPU was metered.",
    )
    cpu_energy_j: NonNegativeFloat | None = Field(
        default=None,
        description=(
            "Host-wide CPU energy (RAPL package + DRAM), J: every process on the host, not "
            "only this run; None where RAPL was not read."
        ),
    )
    energy_domains: list[EnergyDomain] = Field(
        default_factory=list, description="The energy domains metered (gpu, cpu_package, dram)."
    )
    energy_scope: Literal["gpu", "cpu", "total"] | None = Field(
        default=None,
        description=(
            "The energy efficiency, energy_adjusted_j, energy_breakdown and energy per "
            "request are of: gpu (gpu_energy_j) where a GPU was metered, else cpu "
            "(cpu_energy_j). total (total_energy_j, GPU and CPU summed) only in results "
            "migrated from before schema 1.3. None without energy."
        ),
    )
    energy_per_device_j: dict[str, NonNegativeFloat] = Field(
        default_factory=dict, description="Energy per device UUID (or RAPL domain id), J."
    )
    baseline_power_w: NonNegativeFloat | None = Field(
        default=None, description="Idle power of the energy_scope's devices, W."
    )
    energy_adjusted_j: NonNegativeFloat | None = Field(
        default=None,
        description="The energy_scope's energy less idle power over the window, at least 0, J.",
    )
    energy_breakdown: EnergyBreakdown | None = Field(
        default=None, description="How the energy_scope's figures were obtained."
    )
    # throughput
    output_tokens_per_s: NonNegativeFloat = Field(
        description="Output tokens / measurement-window wall time (duration_s)."
    )
    total_tokens_per_s: NonNegativeFloat = Field(
        description="Input plus output tokens / duration_s (input-inclusive)."
    )
    mean_process_output_tokens_per_s: NonNegativeFloat = Field(
        description="Mean over processes of each one's output tokens / its own window, labelled as such."
    )
    # latency, compute, efficiency
    latency: LatencyMetrics = Field(description="TTFT, ITL, TPOT and E2E over all requests.")
    flops: FlopsEstimate | None = Field(default=None, description="FLOPs and how estimated.")
    efficiency: EfficiencyMetrics = Field(description="Tokens per joule and joules per token.")
    measurement_methodology: Literal["total"] = Field(
        default="total",
        description="The figures above cover the whole measurement window (see steady_state).",
    )
    steady_state: SteadyStateMetrics | None = Field(
        default=None,
        description=(
            "Throughput and energy over the steady-state window of a run under load; None "
            "where the load defines none (requests taken at once) or it was never reached."
        ),
    )
    request_metrics: RequestMetrics | None = Field(
        default=None,
        description=(
            "Requests sent, failed, their throughput, arrival rate, energy each and goodput; "
            "None in results before schema 1.2."
        ),
    )
    # context
    multi_gpu: MultiGPUMetrics | None = Field(
        default=None, description="Present when more than one GPU was measured."
    )
    environment_snapshot: EnvironmentSnapshot | None = Field(
        default=None, description="Machine and software measured on."
    )
    thermal_throttle: ThermalThrottleInfo | None = Field(
        default=None, description="Throttling over all processes."
    )
    warmup_result: WarmupResult | None = Field(default=None, description="Warmup of process 0.")
    measurement_warnings: list[MeasurementWarning] = Field(
        default_factory=list,
        description="Each: a code, what was detected and what to do about it.",
    )
    simulated: bool = Field(
        default=False,
        description=(
            "The GPUs were simulated (LLEM_SIMULATED_GPUS): no energy figure is a measurement."
        ),
    )
    timeseries: str | None = Field(
        default=None,
        description="File name of the power/temperature Parquet sidecar beside result.json.",
    )
    files: list[str] = Field(
        default_factory=list,
        description="Other files kept beside result.json, by name (a managed server's log).",
    )
    process_results: list[RawProcessResult] = Field(
        min_length=1, description="Every process's raw measurement."
    )
    aggregation: AggregationMetadata = Field(description="How processes were combined.")

    @field_validator("timeseries")
    @classmethod
    def _plain_file_name(cls, value: str | None) -> str | None:
        return None if value is None else validate_sidecar_name(value)

    @field_validator("files")
    @classmethod
    def _plain_file_names(cls, value: list[str]) -> list[str]:
        return _file_names(value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        parse_version(self.schema_version)
        for key, value in (("model", self.model), ("backend", self.backend)):
            if self.effective_config.get(key) != value:
                raise ValueError(f"effective_config.{key} must be {value!r}")
        if self.end_time < self.start_time:
            raise ValueError("end_time precedes start_time")
        if self.total_tokens != self.input_tokens + self.output_tokens:
            raise ValueError("total_tokens must equal input_tokens + output_tokens")
        if not _close(self.output_tokens_per_s, self.output_tokens / self.duration_s):
            raise ValueError("output_tokens_per_s must equal output_tokens / duration_s")
        if not _close(self.total_tokens_per_s, self.total_tokens / self.duration_s):
            raise ValueError("total_tokens_per_s must equal total_tokens / duration_s")
        self._check_energy()
        if len(self.process_results) != self.aggregation.num_processes:
            raise ValueError("process_results must hold aggregation.num_processes entries")
        return self

    def scope_energy_j(self) -> float | None:
        """The energy of :attr:`energy_scope`, J: what the efficiency figures divide by."""
        return {
            "gpu": self.gpu_energy_j,
            "cpu": self.cpu_energy_j,
            "total": self.total_energy_j,
            None: None,
        }[self.energy_scope]

    def _check_energy(self) -> None:
        breakdown = self.energy_breakdown
        if self.total_energy_j is None:
            if breakdown or self.energy_per_device_j or self.baseline_power_w is not None:
                raise ValueError("energy details need total_energy_j")
            if self.energy_adjusted_j is not None or self.energy_scope is not None:
                raise ValueError("energy_adjusted_j and energy_scope need total_energy_j")
            if self.gpu_energy_j is not None or self.cpu_energy_j is not None:
                raise ValueError("gpu_energy_j and cpu_energy_j need total_energy_j")
        else:
            scope_j = self.scope_energy_j()
            if scope_j is None:
                raise ValueError("total_energy_j needs an energy_scope whose energy is given")
            parts = [j for j in (self.gpu_energy_j, self.cpu_energy_j) if j is not None]
            if not _close(math.fsum(parts), self.total_energy_j):
                raise ValueError("gpu_energy_j and cpu_energy_j must sum to total_energy_j")
            if breakdown is None:
                raise ValueError("total_energy_j needs an energy_breakdown")
            if not _close(breakdown.raw_j, scope_j):
                raise ValueError(
                    f"energy_breakdown.raw_j must equal the {self.energy_scope} energy"
                )
            if not _close(breakdown.baseline_power_w, self.baseline_power_w):
                raise ValueError("baseline_power_w must equal energy_breakdown.baseline_power_w")
            if not _close(breakdown.adjusted_j, self.energy_adjusted_j):
                raise ValueError("energy_adjusted_j must equal energy_breakdown.adjusted_j")
            if self.energy_per_device_j and not _close(
                math.fsum(self.energy_per_device_j.values()), self.total_energy_j
            ):
                raise ValueError("energy_per_device_j must sum to total_energy_j")
        if self.energy_adjusted_j == 0.0 and (
            self.efficiency.output_tokens_per_j_adjusted is not None
            or self.efficiency.energy_per_output_token_adjusted_j is not None
        ):
            raise ValueError(
                "adjusted energy clamped to 0 J: the adjusted efficiency figures must be None"
            )
        expected = EfficiencyMetrics.from_energy(
            self.output_tokens, self.scope_energy_j(), self.energy_adjusted_j
        )
        for name in EfficiencyMetrics.model_fields:
            stored = getattr(self.efficiency, name)
            # None is allowed: a figure is withheld when its energy does not cover every
            # process's tokens, or when adjusted energy clamped to 0.
            if stored is not None and not _close(stored, getattr(expected, name)):
                raise ValueError(f"efficiency.{name} does not follow from tokens and energy")

    def directory_name(self) -> str:
        """The experiment id: the name :meth:`save` starts from, so the directory a run prints
        and the id the store knows it by are one name (ids are path-safe by construction)."""
        return self.experiment_id

    def save(
        self,
        output_dir: str | PathLike[str],
        *,
        timeseries_source: str | PathLike[str] | None = None,
        file_sources: Mapping[str, str | PathLike[str]] | None = None,
    ) -> Path:
        """Write a new result directory under ``output_dir`` and return its path.

        The directory is :meth:`directory_name` (the experiment id), or that name with ``_1``,
        ``_2``, ... when taken: an existing result is never overwritten, also when many processes save the
        same name at once. ``timeseries_source`` (a Parquet file) is copied in beside
        ``result.json`` and ``timeseries`` names it; each of ``file_sources`` (name -> path)
        is copied in under its name and ``files`` lists them. ``result.json`` is written last
        and atomically, so a directory with one is complete.
        """
        extra = {name: Path(path) for name, path in (file_sources or {}).items()}
        missing = [str(path) for path in extra.values() if not path.is_file()]
        if missing:
            raise LlemError(f"files to keep beside the result do not exist: {', '.join(missing)}")
        _file_names(sorted(extra))
        source = None if timeseries_source is None else Path(timeseries_source)
        if self.timeseries is not None and source is None:
            raise LlemError(
                f"this result names a timeseries sidecar ({self.timeseries!r}): pass "
                "timeseries_source=<path of that Parquet file> to save() to keep it"
            )
        if source is not None and not source.is_file():
            raise LlemError(f"timeseries source {source} does not exist or is not a file")
        target = create_unique_dir(Path(output_dir), self.directory_name())
        try:
            result = self
            if source is not None:
                name = self.timeseries or TIMESERIES_FILE
                atomic_copy(source, target / name)
                result = self.model_copy(update={"timeseries": name})
            for name, path in sorted(extra.items()):
                atomic_copy(path, target / name)
            if extra:
                result = result.model_copy(update={"files": sorted({*result.files, *extra})})
            atomic_write_bytes(target / RESULT_FILE, result.model_dump_json(indent=2).encode())
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        return target

    @classmethod
    def from_json(cls, path: str | PathLike[str]) -> Self:
        """Load a result from ``result.json`` or the directory holding it.

        Older schema versions are migrated. A missing sidecar loads with ``timeseries=None``
        and a :class:`LlemWarning`. A corrupt file, a file that is not a result, or a newer
        major schema version raises a one-line :class:`~llem_schema.ResultFormatError`.
        """
        file = document_file(path, RESULT_FILE)
        text = read_document_text(file, kind="result")
        result = cls._validate_current_json(text)
        if result is None:
            result = cls._load_document(parse_json_object(text, file, kind="result"), file)
        if result.timeseries is not None and not (file.parent / result.timeseries).is_file():
            warnings.warn(
                f"{file.parent}: timeseries sidecar {result.timeseries!r} is missing; "
                "loaded without it (timeseries=None)",
                LlemWarning,
                stacklevel=2,
            )
            result = result.model_copy(update={"timeseries": None})
        return result

    @classmethod
    def _validate_current_json(cls, text: str) -> Self | None:
        """The result in ``text`` if it is valid and of the current schema version throughout.

        The fast path of :meth:`from_json`: pydantic validates the JSON text directly, without
        building Python dicts first. It applies only where no migration could apply: the
        document and every embedded process result are of :data:`SCHEMA_VERSION`, which the
        document states (a missing ``schema_version`` is not a result). In every other case,
        and on any problem at all, it returns ``None`` and :meth:`_load_document` decides, so
        what is loaded and every error message stay those of the general path.
        """
        try:
            result = cls.model_validate_json(text)
        except Exception:  # the general path reports it, word for word
            return None
        current = (
            "schema_version" in result.model_fields_set
            and result.schema_version == SCHEMA_VERSION
            and all(raw.schema_version == SCHEMA_VERSION for raw in result.process_results)
        )
        return result if current else None

    @classmethod
    def _load_document(cls, document: dict[str, Any], file: Path) -> Self:
        """Migrate (the document and each embedded process result) and validate."""
        processes = document.get("process_results")
        if isinstance(processes, list):  # embedded raw results follow their own versions
            try:
                migrated = [
                    RAW_MIGRATIONS.migrate(p)
                    if isinstance(p, dict) and "schema_version" in p
                    else p
                    for p in processes
                ]
            except ResultFormatError as exc:
                raise type(exc)(f"{file}: {exc}") from None
            document = document | {"process_results": migrated}
        return load_document(cls, document, migrations=RESULT_MIGRATIONS, source=file)
