"""What a study measures: :class:`StudyConfig`, parsed from a study YAML by :func:`parse_study`.

A study is a base experiment (partial :class:`~llem_schema.ExperimentConfig` settings shared
by every point), a ``sweep`` of dotted keys whose values form a Cartesian product, and/or an
explicit ``experiments`` list; each point is measured ``cycles`` times. Like the experiment
config it is frozen and strict: a misspelt key, in the study itself or in any experiment
setting it names, is a one-line :class:`~llem_schema.ConfigError` naming the key.
"""

from collections.abc import Mapping
from itertools import combinations
from typing import Annotated, Any, Final, Literal, Self

from pydantic import BaseModel, Field, JsonValue, ValidationError, field_validator, model_validator

from llem_schema._base import FrozenModel
from llem_schema.config import ExperimentConfig, config_error, unknown_key_message
from llem_schema.errors import ConfigError
from llem_schema.ids import validate_study_name

__all__ = [
    "STUDY_ORDERS",
    "CooldownConfig",
    "ExecutorConfig",
    "LocalExecutorConfig",
    "SlurmExecutorConfig",
    "StudyConfig",
    "StudyOrder",
    "check_study_keys",
    "leaf_settings",
    "parse_study",
]

StudyOrder = Literal["sequential", "interleaved", "shuffled"]
STUDY_ORDERS: Final = ("sequential", "interleaved", "shuffled")


class CooldownConfig(FrozenModel):
    """Wait for the GPUs to cool between runs, after the fixed gap."""

    until_temperature_c: float = Field(
        gt=0.0,
        description=(
            "Start the next run once every GPU it runs on reads at most this, deg C (after "
            "the fixed gap)."
        ),
    )
    max_s: float = Field(
        default=300.0,
        gt=0.0,
        description="Wait no longer than this after the previous run ended, s; then go on.",
    )


class LocalExecutorConfig(FrozenModel):
    """Run the study's runs on this machine, each in its own process (the default)."""

    kind: Literal["local"] = Field(default="local", description="This machine.")


class SlurmExecutorConfig(FrozenModel):
    """Run each run of the study as a job of a Slurm cluster. The ``llem study`` process
    submits the runs, follows them in Slurm, and alone writes the manifest and the store;
    the study directory must lie on a filesystem every node shares."""

    kind: Literal["slurm"] = Field(default="slurm", description="A Slurm cluster.")
    partition: str | None = Field(
        default=None, min_length=1, description="sbatch --partition; None: the cluster's default."
    )
    account: str | None = Field(
        default=None, min_length=1, description="sbatch --account; None: the user's default."
    )
    gpus_per_run: int = Field(
        default=1, ge=0, description="GPUs each run's job asks for (sbatch --gpus); 0: none."
    )
    cpus_per_run: int = Field(
        default=4, ge=1, description="CPUs each run's job asks for (sbatch --cpus-per-task)."
    )
    mem: str | None = Field(
        default=None,
        pattern=r"^[0-9]+[KMGT]?$",
        description="Memory each run's job asks for (sbatch --mem, such as 32G); None: the default.",
    )
    time_limit: str | None = Field(
        default=None,
        pattern=r"^([0-9]+-)?[0-9]+(:[0-9]{1,2}){0,2}$",
        description=(
            "Wall-time limit of each run's job (sbatch --time: minutes, MM:SS, HH:MM:SS or "
            "D-HH:MM:SS); None: the study's timeout_s and 10 minutes more."
        ),
    )
    extra_sbatch: list[Annotated[str, Field(pattern=r"^--?[A-Za-z]")]] = Field(
        default_factory=list,
        description="More sbatch options, each as one argument (such as --constraint=a100).",
    )
    max_parallel: int | None = Field(
        default=None,
        ge=1,
        description="Runs Slurm may run at once (the job array's %N limit); None: no limit.",
    )

    @field_validator("extra_sbatch")
    @classmethod
    def _not_llems_own(cls, value: list[str]) -> list[str]:
        for option in value:
            name = option.split("=", 1)[0]
            if name in _LLEMS_SBATCH_OPTIONS:
                raise ValueError(
                    f"{name} is llem's to set (it names, numbers and logs the runs' jobs)"
                )
        return value


_LLEMS_SBATCH_OPTIONS: Final = frozenset(
    {
        "--job-name",
        "-J",
        "--array",
        "-a",
        "--output",
        "-o",
        "--error",
        "-e",
        "--open-mode",
        "--chdir",
        "-D",
        "--parsable",
        "--wrap",
        "--ntasks",
        "-n",
    }
)
"""sbatch options llem sets itself: the array's name, tasks, logs and directory."""


ExecutorConfig = Annotated[LocalExecutorConfig | SlurmExecutorConfig, Field(discriminator="kind")]
"""Where a study's runs run: ``{kind: local}`` or ``{kind: slurm, ...}``."""


class StudyConfig(FrozenModel):
    """A study: which experiments to run, how often, in which order, and how far apart."""

    name: str = Field(
        description=(
            "Study name, used in the study directory's name: letters, digits, '.', '_' and '-', "
            "starting with a letter or digit."
        )
    )
    base: dict[str, JsonValue] = Field(
        default_factory=dict,
        description=(
            "Experiment settings shared by every point (a partial experiment config, nested or "
            "with dotted keys); alone, it is the study's one point."
        ),
    )
    sweep: dict[str, Annotated[list[JsonValue], Field(min_length=1)]] = Field(
        default_factory=dict,
        description=(
            "Dotted experiment keys (pytorch.batch_size, precision) and the values each takes; "
            "every combination of values, set onto base, is a point."
        ),
    )
    experiments: list[dict[str, JsonValue]] = Field(
        default_factory=list,
        description=(
            "Explicit points, each a set of experiment settings (nested or dotted keys) merged "
            "onto base; they follow the sweep's points."
        ),
    )
    cycles: int = Field(default=1, ge=1, description="Times each point is measured.")
    order: StudyOrder = Field(
        default="interleaved",
        description=(
            "sequential: every cycle of a point before the next point; interleaved: cycle 1 of "
            "every point, then cycle 2, ...; shuffled: like interleaved, each cycle's points in "
            "a random order seeded from the design hash (reproducible)."
        ),
    )
    gap_between_experiments_s: float = Field(
        default=0.0, ge=0.0, description="Pause between two experiments (thermal settling), s."
    )
    gap_between_cycles_s: float = Field(
        default=0.0,
        ge=0.0,
        description=(
            "Pause before a new cycle, s, instead of the experiment gap: between passes over "
            "the points (interleaved, shuffled), or between two cycles of one point (sequential)."
        ),
    )
    gap: CooldownConfig | None = Field(
        default=None,
        description=(
            "A temperature-based cooldown between runs, beside the fixed gaps: "
            "{until_temperature_c, max_s}; None: the fixed gaps alone."
        ),
    )
    skip_invalid: bool = Field(
        default=False,
        description=(
            "Skip a point whose values are not a valid experiment (with its reason) instead "
            "of refusing the study: for sweeps whose combinations are knowingly partly invalid."
        ),
    )
    timeout_s: float = Field(
        default=3600.0,
        gt=0.0,
        description="Wall-time limit of one experiment, s; past it the experiment fails.",
    )
    cv_warning_threshold: float = Field(
        default=0.05,
        gt=0.0,
        description=(
            "Coefficient of variation (std / mean, as a fraction) of a metric across cycles "
            "above which the study result warns that cycles disagree."
        ),
    )
    output_dir: str = Field(
        default="results", min_length=1, description="Directory the study directory goes into."
    )
    executor: ExecutorConfig = Field(
        default_factory=LocalExecutorConfig,
        description=(
            "Where the runs run: {kind: local} (this machine, the default) or {kind: slurm, "
            "partition, account, gpus_per_run, cpus_per_run, mem, time_limit, extra_sbatch, "
            "max_parallel} (one Slurm job each)."
        ),
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return validate_study_name(value)

    @field_validator("sweep")
    @classmethod
    def _dotted_sweep_keys(cls, value: dict[str, list[JsonValue]]) -> dict[str, list[JsonValue]]:
        for key in value:
            if not key or any(not part for part in key.split(".")):
                raise ValueError(f"sweep key {key!r} is not a dotted key like 'pytorch.batch_size'")
        for a, b in combinations(sorted(value), 2):
            if b.startswith(a + "."):
                raise ValueError(
                    f"sweep keys '{a}' and '{b}' overlap: sweep one of them, or list the "
                    "combinations under experiments"
                )
        return value

    @model_validator(mode="after")
    def _has_a_point(self) -> Self:
        if not (self.base or self.sweep or self.experiments):
            raise ValueError(
                "a study needs at least one point: give base settings, a sweep, or experiments"
            )
        return self


def parse_study(
    document: Mapping[str, Any],
    *,
    source: object | None = None,
    backends: Mapping[str, type[BaseModel]] | None = None,
) -> StudyConfig:
    """Validate a mapping (a parsed study YAML) into a :class:`StudyConfig`.

    Raises :class:`ConfigError` with one line naming the first bad key and what is allowed,
    prefixed with ``source`` (the file) when given. Experiment keys in ``base``, ``sweep`` and
    ``experiments`` are checked too (:func:`check_study_keys`, with the installed
    ``backends``' settings models when given), so a misspelt sweep key fails here, before
    anything runs.
    """
    prefix = f"{source}: " if source is not None else ""
    try:
        study = StudyConfig.model_validate(document)
        check_study_keys(study, backends=backends)
    except ValidationError as exc:
        error = config_error(exc, StudyConfig, noun="study")
        raise ConfigError(prefix + str(error), key=error.key) from None
    except ConfigError as exc:
        raise ConfigError(prefix + str(exc), key=exc.key) from None
    return study


def check_study_keys(
    study: StudyConfig, *, backends: Mapping[str, type[BaseModel]] | None = None
) -> None:
    """Raise :class:`ConfigError` if ``base``, ``sweep`` or ``experiments`` name a key that
    :class:`~llem_schema.ExperimentConfig` does not have (or, given the installed
    ``backends``' settings models, that no backend section has).

    A misspelt key would make every point it touches invalid, so it fails the whole study
    (with a did-you-mean) instead of skipping points one by one.
    """
    leaf_settings(study.base, where="base", backends=backends)
    for key, values in study.sweep.items():
        for value in values:
            leaf_settings({key: value}, where="sweep", backends=backends)
    for index, experiment in enumerate(study.experiments):
        leaf_settings(experiment, where=f"experiments.{index}", backends=backends)


def leaf_settings(
    settings: Mapping[str, JsonValue],
    *,
    where: str,
    backends: Mapping[str, type[BaseModel]] | None = None,
) -> dict[str, JsonValue]:
    """Flatten experiment settings (nested, dotted, or both) to ``{dotted leaf key: value}``.

    ``{"pytorch": {"batch_size": 8}, "decoder.mode": "greedy"}`` becomes
    ``{"pytorch.batch_size": 8, "decoder.mode": "greedy"}``. A section given a non-mapping
    value stays a leaf (validation then says what is wrong with the value). Every key is
    checked against :class:`~llem_schema.ExperimentConfig`, and a backend section's keys
    against that backend's settings model when ``backends`` maps names to them (without it,
    any top-level name may be a backend section). An unknown key, the same setting given
    twice, or a section set both whole and by its keys is a :class:`ConfigError` whose
    message starts with ``where`` (``sweep``, ``experiments.2``).
    """
    leaves = _flatten(settings, (), where, backends)
    for a, b in combinations(sorted(leaves), 2):
        if b.startswith(a + "."):
            raise ConfigError(
                f"{where}: '{a}' and '{b}' are both set: set the section or its keys, not both",
                key=f"{where}.{a}",
            )
    return leaves


def _flatten(
    settings: Mapping[str, JsonValue],
    prefix: tuple[str, ...],
    where: str,
    backends: Mapping[str, type[BaseModel]] | None,
) -> dict[str, JsonValue]:
    leaves: dict[str, JsonValue] = {}
    for raw_key, value in settings.items():
        parts = tuple(raw_key.split("."))
        if any(not part for part in parts):
            raise ConfigError(
                f"{where}: {raw_key!r} is not a dotted key like 'pytorch.batch_size'",
                key=f"{where}.{raw_key}",
            )
        path = (*prefix, *parts)
        section = _section(path, where, backends)
        found = (
            _flatten(value, path, where, backends)
            if section and isinstance(value, dict)
            else {".".join(path): value}
        )
        for key, leaf in found.items():
            if key in leaves:
                raise ConfigError(f"{where}: '{key}' is set twice", key=f"{where}.{key}")
            leaves[key] = leaf
    return leaves


def _section(
    path: tuple[str, ...], where: str, backends: Mapping[str, type[BaseModel]] | None
) -> bool:
    """Whether ``path`` names a section (nested model) of ExperimentConfig or a backend's
    settings; raises if unknown."""
    root: type[BaseModel] = ExperimentConfig
    start = 0
    if path[0] not in ExperimentConfig.model_fields:
        if backends is None:  # an opaque backend section: its keys are checked when resolved
            return len(path) == 1
        if path[0] in backends:
            if len(path) == 1:
                return True
            root, start = backends[path[0]], 1
    model = root
    for depth, part in enumerate(path[start:], start=start):
        field = model.model_fields.get(part)
        if field is None:
            unknown = list(path[start : depth + 1])
            message = unknown_key_message(
                root, unknown, prefix=path[:start], sections=None if start else backends
            )
            key = ".".join(path[: depth + 1])
            raise ConfigError(f"{where}: {message}", key=f"{where}.{key}")
        last = depth == len(path) - 1
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if last:
                return True
            model = annotation
            continue
        if last:
            return False
        setting = ".".join(path[: depth + 1])
        raise ConfigError(
            f"{where}: unknown config key '{'.'.join(path)}': '{setting}' is a single "
            "setting, not a section with keys",
            key=f"{where}.{'.'.join(path)}",
        )
    return False
