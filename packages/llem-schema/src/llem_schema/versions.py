"""Schema versions and the migrations that bring old documents up to date.

Versions are ``"major.minor"``. A minor version only adds optional fields; a major version may
rename or remove. Every version that ever shipped keeps a fixture in the tests and a chain of
migrations to :data:`SCHEMA_VERSION`, so ``llem-schema`` alone reads any result ever written.

The versions:

- 1.0: the first.
- 1.1: backends are plugins. ``ExperimentConfig.backend`` names any installed backend and a
  config holds each backend's settings in a section under its name (the ``pytorch`` section
  reads as before); ``energy.devices`` names the GPUs to meter; a process result records the
  backend's ``model_info`` and may name its own ``peak_memory_source``. Documents of 1.0
  read unchanged.
- 1.2: load and serving. A config's ``load`` (arrival rate, burstiness, concurrency,
  duration, seed) and ``slo``; per request ``start_s``, ``scheduled_s`` and ``error``; per
  experiment ``request_metrics`` (request throughput, requested and achieved rate, failures,
  energy per request, goodput), ``steady_state`` and ``measurement_methodology``, and
  ``files`` kept beside the result (a managed server's log); a process stopped by Ctrl-C is
  ``interrupted`` and its result incomplete (``aggregation.interrupted_processes``).
  Documents of 1.1 read unchanged.
- 1.3: numbers a researcher can defend. Measurement warnings are objects with a stable
  ``code``, a ``message`` and their ``figures`` (the strings of 1.2 migrate to the code their
  wording names, else ``unclassified``); energy scopes apart: ``gpu_energy_j``,
  ``cpu_energy_j`` (host-wide RAPL), ``energy_domains`` and ``energy_scope``, the efficiency
  figures being of the GPU energy (of the CPU energy for a run that metered no GPU; a 1.2
  result that added both keeps its figures under scope ``total``); per device what power
  was read, its scope and the achieved sampling rate; the windows' start and end skew;
  hardware slowdown and the power cap's time apart from the slowdowns warned about;
  ``simulated`` for runs on simulated GPUs.
- 1.4: a study's manifest records ``paused_s``, the time it spent stopped between an
  interruption and its resume, and ``study.json``'s ``wall_time_s`` leaves it out. Documents
  of 1.3 read unchanged (nothing paused).
- 1.5: a study may run on a Slurm cluster: its manifest records the ``executor`` it ran with
  and each entry its ``slurm_job_id``. Documents of 1.4 read unchanged (every run ran
  locally).
"""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from llem_schema.errors import ResultFormatError, SchemaVersionError

__all__ = [
    "MANIFEST_MIGRATIONS",
    "RAW_MIGRATIONS",
    "RESULT_MIGRATIONS",
    "SCHEMA_VERSION",
    "STUDY_MIGRATIONS",
    "Migration",
    "MigrationRegistry",
    "parse_version",
]

SCHEMA_VERSION: Final = "1.5"
"""The version this package writes."""

_VERSION_RE: Final = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")

Migration = Callable[[dict[str, Any]], dict[str, Any]]
"""Takes a document of one version and returns it at the next (``schema_version`` is set for
it by the registry)."""


def parse_version(version: object) -> tuple[int, int]:
    """``"1.2"`` -> ``(1, 2)``; anything else is a :class:`ResultFormatError`."""
    match = _VERSION_RE.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise ResultFormatError(f"schema_version {version!r} is not of the form 'major.minor'")
    return int(match[1]), int(match[2])


@dataclass(frozen=True)
class _Step:
    to_version: str
    migrate: Migration


class MigrationRegistry:
    """The migrations of one kind of document, each from one version to the next."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._steps: dict[str, _Step] = {}

    def register(self, from_version: str, to_version: str) -> Callable[[Migration], Migration]:
        """Decorator: ``@RESULT_MIGRATIONS.register("1.0", "1.1")`` on ``def f(doc) -> doc``."""
        if parse_version(to_version) <= parse_version(from_version):
            raise ValueError(f"migration must go forward: {from_version} -> {to_version}")
        if from_version in self._steps:
            raise ValueError(f"{self.kind}: a migration from {from_version} is already registered")

        def decorator(migrate: Migration) -> Migration:
            self._steps[from_version] = _Step(to_version, migrate)
            return migrate

        return decorator

    def migrate(self, document: dict[str, Any], target: str = SCHEMA_VERSION) -> dict[str, Any]:
        """Apply migrations until ``document`` is at ``target``; returns a new dict.

        A newer minor version is returned as it is (validation decides whether this reader
        knows all its fields); a newer major version is a :class:`SchemaVersionError`.
        """
        version = document.get("schema_version")
        found, wanted = parse_version(version), parse_version(target)
        if found[0] > wanted[0]:
            raise SchemaVersionError(
                f"{self.kind} schema version {version} is newer than {target}, which this "
                "llem-schema reads; upgrade llem-schema (pip install -U llem-schema)"
            )
        if found > wanted:
            return dict(document)
        migrated = dict(document)
        while version != target:
            step = self._steps.get(str(version))
            if step is None:
                raise ResultFormatError(
                    f"no migration of {self.kind} schema version {version} to {target}"
                )
            migrated = step.migrate(migrated)
            migrated["schema_version"] = version = step.to_version
        return migrated


RESULT_MIGRATIONS: Final = MigrationRegistry("result")
"""Migrations of ``result.json`` (:class:`~llem_schema.ExperimentResult`)."""

RAW_MIGRATIONS: Final = MigrationRegistry("raw process result")
"""Migrations of staged per-process results (:class:`~llem_schema.RawProcessResult`)."""

STUDY_MIGRATIONS: Final = MigrationRegistry("study result")
"""Migrations of ``study.json`` (:class:`~llem_schema.StudyResult`)."""

MANIFEST_MIGRATIONS: Final = MigrationRegistry("study manifest")
"""Migrations of a study's ``manifest.json`` (:class:`~llem_schema.StudyManifest`)."""


def _unchanged(document: dict[str, Any]) -> dict[str, Any]:
    return document


# 1.1 and 1.2 only added optional fields: a document of one is valid at the next.
for _registry in (RESULT_MIGRATIONS, RAW_MIGRATIONS, STUDY_MIGRATIONS, MANIFEST_MIGRATIONS):
    _registry.register("1.0", "1.1")(_unchanged)
    _registry.register("1.1", "1.2")(_unchanged)
for _registry in (STUDY_MIGRATIONS, MANIFEST_MIGRATIONS):  # nothing of theirs changed in 1.3
    _registry.register("1.2", "1.3")(_unchanged)
# 1.4 only added an optional field (the manifest's paused_s): a 1.3 document is valid at 1.4.
for _registry in (RESULT_MIGRATIONS, RAW_MIGRATIONS, STUDY_MIGRATIONS, MANIFEST_MIGRATIONS):
    _registry.register("1.3", "1.4")(_unchanged)
# 1.5 only added optional fields (the manifest's executor, an entry's slurm_job_id).
for _registry in (RESULT_MIGRATIONS, RAW_MIGRATIONS, STUDY_MIGRATIONS, MANIFEST_MIGRATIONS):
    _registry.register("1.4", "1.5")(_unchanged)


def _warning(message: object) -> object:
    from llem_schema.warning_codes import classify_legacy

    if isinstance(message, str):  # anything else fails validation, as it did before
        return {"code": classify_legacy(message), "message": message}
    return message


def _warnings_of(document: dict[str, Any], *path: str) -> None:
    """Turn the plain-text warnings at ``path`` in ``document`` into warning objects."""
    *parents, key = path
    holder: Any = document
    for name in parents:
        holder = holder.get(name) if isinstance(holder, dict) else None
    if isinstance(holder, dict) and isinstance(holder.get(key), list):
        holder[key] = [_warning(m) for m in holder[key]]


@RAW_MIGRATIONS.register("1.2", "1.3")
def _raw_1_3(document: dict[str, Any]) -> dict[str, Any]:
    _warnings_of(document, "measurement_warnings")
    return document


@RESULT_MIGRATIONS.register("1.2", "1.3")
def _result_1_3(document: dict[str, Any]) -> dict[str, Any]:
    """Warnings become objects; the energy is split by scope, the figures keeping theirs."""
    document = {**document}
    if isinstance(document.get("aggregation"), dict):
        document["aggregation"] = {**document["aggregation"]}
    _warnings_of(document, "measurement_warnings")
    _warnings_of(document, "aggregation", "warnings")
    if document.get("total_energy_j") is None:
        return document
    domains: dict[str, str] = {}
    for process in document.get("process_results") or []:
        for energy in (process.get("energy") or []) if isinstance(process, dict) else []:
            if isinstance(energy, dict) and isinstance(energy.get("device_uuid"), str):
                domains[energy["device_uuid"]] = str(energy.get("domain"))
    per_device = document.get("energy_per_device_j") or {}
    for uuid in per_device:  # a device no process names: RAPL ids say so themselves
        domains.setdefault(uuid, "cpu_package" if str(uuid).startswith("rapl:") else "gpu")
    gpu = [j for uuid, j in per_device.items() if domains[uuid] == "gpu"]
    cpu = [j for uuid, j in per_device.items() if domains[uuid] != "gpu"]
    document["gpu_energy_j"] = math.fsum(gpu) if gpu else None
    document["cpu_energy_j"] = math.fsum(cpu) if cpu else None
    order = ["gpu", "cpu_package", "dram"]
    document["energy_domains"] = sorted(
        {domains[uuid] for uuid in per_device},
        key=lambda d: order.index(d) if d in order else len(order),
    )
    # The figures of 1.2 divided the energy of every domain: a result with both keeps them,
    # labelled total; one with a single scope was of that scope all along.
    scope = "total" if gpu and cpu else "gpu" if gpu else "cpu"
    if not per_device:  # a total without its devices: nothing to split it by
        scope, document["gpu_energy_j"] = "gpu", document["total_energy_j"]
        document["energy_domains"] = ["gpu"]
    document["energy_scope"] = scope
    _withhold_clamped(document)
    return document


def _withhold_clamped(document: dict[str, Any]) -> None:
    """1.2 gave 0 J/token where adjusted energy clamped to 0: withheld now, and said."""
    adjusted, efficiency = document.get("energy_adjusted_j"), document.get("efficiency")
    if adjusted != 0 or not isinstance(efficiency, dict):
        return
    document["efficiency"] = efficiency | {
        "output_tokens_per_j_adjusted": None,
        "energy_per_output_token_adjusted_j": None,
    }
    if not document.get("total_energy_j"):
        return  # nothing measured, nothing clamped
    clamped = {
        "code": "baseline_clamped",
        "message": (
            "idle power over the window came to more than the energy measured: adjusted "
            "energy is clamped to 0 J and every adjusted efficiency figure withheld "
            "(withheld when this result was read; it was written before schema 1.3)"
        ),
    }
    for holder in (document, document.get("aggregation")):
        if isinstance(holder, dict):
            key = "measurement_warnings" if holder is document else "warnings"
            holder[key] = [*(holder.get(key) or []), clamped]
