"""A study expanded into points and runs: :func:`expand_study` -> :class:`StudyPlan`.

The points, in this order:

1. the sweep's points: every combination of the sweep's values (the first sweep key varies
   slowest), each set onto ``base``; with no sweep and no explicit experiments, ``base``
   alone is the one point;
2. then each entry of ``experiments``, merged onto ``base`` as it is (the sweep does not
   apply to it; list the combinations you want explicitly).

Merging works on dotted leaf keys (:func:`~llem_schema.study_config.leaf_settings`): a point's
setting replaces base's setting of the same key, and a mapping merges key by key (sweeping
``decoder: [{mode: greedy}, {preset: factual}]`` keeps base's other ``decoder`` keys). A point
whose values are invalid (``pytorch.batch_size: 0``) refuses the study with the
:class:`~llem_schema.ConfigError` message, or, where the study says ``skip_invalid: true``, is
skipped with it; a point measuring the same thing as an earlier one (equal
``measurement_config_hash``) is skipped as a duplicate. Point indices
count every point in this order, skipped ones included, so messages and the manifest agree.
"""

import copy
import hashlib
import json
from collections.abc import Mapping
from itertools import product
from typing import Final, Self

from pydantic import BaseModel, Field, JsonValue, NonNegativeInt, model_validator

from llem_schema._base import FrozenModel
from llem_schema.config import ExperimentConfig, parse_config
from llem_schema.errors import ConfigError
from llem_schema.study_config import StudyConfig, StudyOrder, check_study_keys, leaf_settings

__all__ = [
    "PlannedRun",
    "SkippedPoint",
    "StudyPlan",
    "StudyPoint",
    "design_hash",
    "expand_study",
    "format_overrides",
]

_HASH_LENGTH: Final = 16
_HEX16: Final = r"^[0-9a-f]{16}$"


class StudyPoint(FrozenModel):
    """One configuration of a study, measured once per cycle."""

    index: NonNegativeInt = Field(
        description="0-based position of the point in the expansion (skipped points count too)."
    )
    config: ExperimentConfig = Field(description="The complete experiment configuration.")
    overrides: dict[str, JsonValue] = Field(
        description=(
            "Dotted key -> value that defines the point: its sweep values, or an explicit "
            "experiment's settings."
        )
    )
    config_hash: str = Field(
        pattern=_HEX16, description="measurement_config_hash of config (16 hex digits)."
    )


class SkippedPoint(FrozenModel):
    """A point that is not run: its configuration is invalid or repeats an earlier point."""

    index: NonNegativeInt = Field(description="0-based position of the point in the expansion.")
    overrides: dict[str, JsonValue] = Field(description="Dotted key -> value of the point.")
    reason: str = Field(min_length=1, description="Why it is skipped (one line).")
    config_hash: str | None = Field(
        default=None,
        pattern=_HEX16,
        description="measurement_config_hash for a duplicate; None for an invalid config.",
    )


class PlannedRun(FrozenModel):
    """One experiment run of a study: a point in one cycle."""

    run_index: NonNegativeInt = Field(description="0-based position in the run order.")
    point_index: NonNegativeInt = Field(description="StudyPoint.index of the point it runs.")
    cycle: NonNegativeInt = Field(description="0-based cycle.")


class StudyPlan(FrozenModel):
    """Every point of a study, the points skipped, and the order the runs go in."""

    points: list[StudyPoint] = Field(
        min_length=1, description="Points that run, in expansion order."
    )
    skipped: list[SkippedPoint] = Field(description="Points that do not run, and why.")
    runs: list[PlannedRun] = Field(description="Every run, in the order they go.")
    design_hash: str = Field(
        pattern=_HEX16,
        description=(
            "First 16 hex digits of the SHA-256 of the points' config hashes (in order), "
            "cycles and order; seeds the shuffled order."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        indices = {point.index for point in self.points}
        if len(indices) != len(self.points) or indices & {s.index for s in self.skipped}:
            raise ValueError("point indices must be unique across points and skipped points")
        if [run.run_index for run in self.runs] != list(range(len(self.runs))):
            raise ValueError("runs must be numbered 0, 1, 2, ... in order")
        if any(run.point_index not in indices for run in self.runs):
            raise ValueError("every run must run one of the points")
        return self

    def point(self, index: int) -> StudyPoint:
        """The point with ``StudyPoint.index == index``."""
        for point in self.points:
            if point.index == index:
                return point
        raise KeyError(index)


def expand_study(
    study: StudyConfig, *, backends: Mapping[str, type[BaseModel]] | None = None
) -> StudyPlan:
    """Expand ``study`` into its points and its runs (see the module docstring for the rules).

    ``backends`` maps the installed backends' names to their settings models: each point's
    config is then resolved (its backend's settings validated, defaults filled in) before it
    is hashed, so that a point is judged, and deduplicated, as it will run.

    Raises :class:`ConfigError` for a key unknown to :class:`~llem_schema.ExperimentConfig`
    anywhere in the study (it would make every point it touches fail; the message names the
    key and suggests the right one), for a point that is not a valid experiment unless the
    study says ``skip_invalid``, and when no point at all is a valid experiment.
    """
    check_study_keys(study, backends=backends)
    base = leaf_settings(study.base, where="base", backends=backends)
    candidates: list[tuple[dict[str, JsonValue], dict[str, JsonValue]]] = []
    if study.sweep or not study.experiments:
        keys = list(study.sweep)
        for values in product(*study.sweep.values()):
            overrides = dict(zip(keys, values, strict=True))
            candidates.append(
                (overrides, leaf_settings(overrides, where="sweep", backends=backends))
            )
    for index, experiment in enumerate(study.experiments):
        leaves = leaf_settings(experiment, where=f"experiments.{index}", backends=backends)
        candidates.append((leaves, leaves))

    points: list[StudyPoint] = []
    skipped: list[SkippedPoint] = []
    first_with_hash: dict[str, int] = {}
    for index, (overrides, leaves) in enumerate(candidates):
        try:
            config = parse_config(_nest(_apply(base, leaves)), backends=backends)
        except ConfigError as exc:
            if not study.skip_invalid:
                raise ConfigError(
                    f"study {study.name!r}: point {index} ({format_overrides(overrides)}) is not "
                    f"a valid experiment: {exc}; correct the value, or set skip_invalid: true in "
                    "the study to skip such points",
                    key=exc.key,
                ) from None
            skipped.append(SkippedPoint(index=index, overrides=overrides, reason=str(exc)))
            continue
        config_hash = config.measurement_config_hash()
        if config_hash in first_with_hash:
            skipped.append(
                SkippedPoint(
                    index=index,
                    overrides=overrides,
                    reason=f"same measurement as point {first_with_hash[config_hash]}",
                    config_hash=config_hash,
                )
            )
            continue
        first_with_hash[config_hash] = index
        points.append(
            StudyPoint(index=index, config=config, overrides=overrides, config_hash=config_hash)
        )
    if not points:
        first = skipped[0]
        which = (
            "its only point is"
            if len(candidates) == 1
            else f"none of its {len(candidates)} points is"
        )
        raise ConfigError(
            f"study {study.name!r}: {which} a valid experiment "
            f"(point {first.index} ({format_overrides(first.overrides)}): {first.reason})"
        )
    digest = design_hash([p.config_hash for p in points], study.cycles, study.order)
    return StudyPlan(
        points=points,
        skipped=skipped,
        runs=_schedule([p.index for p in points], study.cycles, study.order, digest),
        design_hash=digest,
    )


def design_hash(config_hashes: list[str], cycles: int, order: StudyOrder) -> str:
    """16 hex digits of the SHA-256 of the canonical JSON of the design."""
    canonical = json.dumps(
        {"config_hashes": config_hashes, "cycles": cycles, "order": order},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:_HASH_LENGTH]


def format_overrides(overrides: dict[str, JsonValue]) -> str:
    """``pytorch.batch_size=8, precision=fp16``; ``base`` for a point with no overrides."""
    if not overrides:
        return "base"
    return ", ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value, sort_keys=True)}"
        for key, value in overrides.items()
    )


def _apply(base: dict[str, JsonValue], leaves: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """``base`` with ``leaves`` set: each leaf replaces the same key, the keys below it, and a
    section above it that base set whole."""
    merged = dict(base)
    for key, value in leaves.items():
        for existing in list(merged):
            if existing == key or existing.startswith(key + ".") or key.startswith(existing + "."):
                del merged[existing]
        merged[key] = value
    return merged


def _nest(leaves: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}`` (no key is a prefix of another)."""
    nested: dict[str, JsonValue] = {}
    for key, value in leaves.items():
        *sections, last = key.split(".")
        target = nested
        for section in sections:
            child = target.get(section)
            if not isinstance(child, dict):  # absent: leaf_settings keeps leaves prefix-free
                child = target[section] = {}
            target = child
        target[last] = copy.deepcopy(value)
    return nested


def _schedule(
    point_indices: list[int], cycles: int, order: StudyOrder, seed: str
) -> list[PlannedRun]:
    pairs: list[tuple[int, int]]
    if order == "sequential":
        pairs = [(point, cycle) for point in point_indices for cycle in range(cycles)]
    else:
        pairs = []
        for cycle in range(cycles):
            ordered = (
                _shuffled(point_indices, f"{seed}:{cycle}")
                if order == "shuffled"
                else point_indices
            )
            pairs.extend((point, cycle) for point in ordered)
    return [
        PlannedRun(run_index=run, point_index=point, cycle=cycle)
        for run, (point, cycle) in enumerate(pairs)
    ]


def _shuffled(items: list[int], seed: str) -> list[int]:
    """Fisher-Yates driven by SHA-256 of ``seed``: the same on every Python version."""
    result = list(items)
    for i in range(len(result) - 1, 0, -1):
        digest = hashlib.sha256(f"{seed}:{i}".encode()).digest()
        j = int.from_bytes(digest, "big") % (i + 1)
        result[i], result[j] = result[j], result[i]
    return result
