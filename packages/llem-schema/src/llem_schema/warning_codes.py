"""The documented list of measurement-warning codes, :data:`WARNING_CODES`, and how a
plain-text warning of a result before schema 1.3 gets its code. A warning itself is a
:class:`~llem_schema.MeasurementWarning`: a stable ``code``, a message that says what was
detected and what to do, and the figures involved. Nothing here needs pydantic, so the
CLI's fast paths can check a code.

Code compares codes, never message text: aggregation keeps one warning per code and
subject, the store indexes the code (``llem results list --warning CODE``), and a study can
count runs by code. Messages may be reworded between versions; codes are not renamed.
"""

import re
from collections.abc import Mapping
from typing import Final

__all__ = ["LEGACY_CODE", "WARNING_CODES", "classify_legacy"]

LEGACY_CODE: Final = "unclassified"
"""The code of a warning migrated from a result before schema 1.3 that no pattern matched."""

_CODES: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    # code: (what it means, phrases that identify it in results before schema 1.3)
    "no_energy": (
        "No energy source could be read; throughput and latency are still valid.",
        ("no energy measured",),
    ),
    "cpu_energy_only": (
        "No GPU was metered; the energy figures are the host CPU's (RAPL), labelled so.",
        ("no GPU energy, CPU energy (RAPL) only",),
    ),
    "rapl_unreadable": (
        "Host CPU energy (RAPL) is present but this user cannot read it; the message says "
        "how to grant access.",
        (),
    ),
    "simulated_gpus": (
        "The GPUs are simulated (LLEM_SIMULATED_GPUS): the energy figures are not a measurement.",
        (),
    ),
    "short_window": (
        "The measurement window was shorter than a minute: start and stop effects weigh on "
        "the energy figures.",
        ("measurement window was",),
    ),
    "few_prompts": (
        "A process measured fewer than 30 prompts: percentiles and per-token energy are unstable.",
        ("prompts were measured (fewer than",),
    ),
    "prompts_truncated": (
        "Prompts longer than max_input_tokens were cut to it: the model was sent fewer "
        "tokens than those prompts hold.",
        (),
    ),
    "no_baseline": (
        "A device has no idle baseline: baseline-adjusted figures are unavailable.",
        ("no idle baseline for",),
    ),
    "baseline_clamped": (
        "Idle power over the window came to more than the energy measured: adjusted energy "
        "clamped to 0 J and every adjusted efficiency figure withheld.",
        (),
    ),
    "persistence_off": (
        "Persistence mode is off on a metered GPU.",
        ("persistence mode is off",),
    ),
    "ecc_off": ("ECC is off on a metered GPU.", ("ECC is off",)),
    "mig_enabled": (
        "MIG is enabled on a metered GPU: its energy counter and power cover the whole GPU, "
        "every instance.",
        (),
    ),
    "foreign_process": (
        "A metered GPU ran compute processes that are not this run's at the window's start "
        "or end: their energy is in the figures.",
        (),
    ),
    "baseline_not_idle": (
        "A device did not look idle while its baseline was measured, even measured again: "
        "the baseline, and every adjusted figure, may be too high.",
        (),
    ),
    "power_out_of_bounds": (
        "A GPU's power in the window fell below its idle baseline or rose above its power "
        "limit: a reading, scope or baseline problem.",
        (),
    ),
    "module_power": (
        "A GPU's own power cannot be read, only its module's (a Grace Hopper superchip's "
        "GPU, CPU and memory): power and integrated energy cover the whole module.",
        (),
    ),
    "start_temperature": (
        "A GPU began its run far warmer than its idle temperature at an earlier baseline: "
        "still warm from earlier work, so runs start from different thermal states.",
        (),
    ),
    "thermal_drift": (
        "A GPU warmed by more than 10 °C during the window: it was not thermally steady.",
        ("during the window (more than",),
    ),
    "throttled": (
        "Thermal slowdown, hardware slowdown or the hardware power brake lowered a GPU's "
        "clocks during the window (the software power cap alone is reported, not warned).",
        ("GPU clocks were throttled",),
    ),
    "sample_gaps": (
        "The power sampler left gaps longer than twice its period.",
        ("the power sampler left",),
    ),
    "sample_read_errors": (
        "Reads of a GPU's power or temperature failed during the window.",
        ("sample read(s) failed",),
    ),
    "counter_mismatch": (
        "A GPU's energy counter and its integrated power differ by more than the tolerance.",
        ("and integrated power (",),
    ),
    "counter_coarse": (
        "The window is too short for the energy counter's update period.",
        ("too short for the energy counter",),
    ),
    "counter_unreadable": (
        "A GPU's energy counter could not be read at the window's start or end; integrated "
        "power was used.",
        ("energy counter unreadable",),
    ),
    "counter_backwards": (
        "A GPU's energy counter went backwards (driver reload or reset); integrated power "
        "was used.",
        ("energy counter went backwards",),
    ),
    "device_unmeasured": (
        "A metered device gave no energy figure and is left out of the totals.",
        ("no energy figure",),
    ),
    "processes_without_energy": (
        "Some processes reported no energy: efficiency figures are withheld.",
        ("reported no energy",),
    ),
    "shared_device": (
        "One physical GPU was measured by more than one process; it is counted once.",
        ("was measured by processes",),
    ),
    "window_overlap": (
        "The processes' windows overlapped for less than the gate: throughput spans idle gaps.",
        ("processes did not run together",),
    ),
    "window_skew": (
        "The processes' windows started or ended further apart than the gate allows.",
        (),
    ),
    "incomplete": (
        "Processes are missing from the result: the figures cover those that finished.",
        ("incomplete: processes",),
    ),
    "interrupted": (
        "The run was stopped (Ctrl-C, SIGTERM) before every request finished.",
        ("interrupted:", "incomplete: the run was stopped"),
    ),
    "failed_requests": (
        "Requests failed (HTTP errors, timeouts, dropped connections).",
        ("requests failed (first:",),
    ),
    "no_steady_state": (
        "A run under load never reached its steady state, or held it too briefly.",
        ("never reached a steady state", "the steady state lasted"),
    ),
    "backend": ("A warning the backend gave when it loaded the model.", ()),
    LEGACY_CODE: (
        "A warning from a result before schema 1.3 that matches no code; its message is kept.",
        (),
    ),
}

WARNING_CODES: Final[Mapping[str, str]] = {code: meaning for code, (meaning, _) in _CODES.items()}
"""Every code llem gives a warning, and what it means (the documented list)."""

_LEGACY: Final = [
    (code, re.compile("|".join(re.escape(phrase) for phrase in phrases)))
    for code, (_, phrases) in _CODES.items()
    if phrases
]


def classify_legacy(message: str) -> str:
    """The code of a warning written before schema 1.3 as plain text, from its wording
    (every message llem wrote then is recognised); :data:`LEGACY_CODE` for any other."""
    for code, pattern in _LEGACY:
        if pattern.search(message):
            return code
    return LEGACY_CODE
