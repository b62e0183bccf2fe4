"""What an experiment measures: :class:`ExperimentConfig` and its sections.

The configuration is frozen and strict: a misspelt key is an error naming the key and the keys
that are allowed (:func:`parse_config`), never a silently ignored setting. Its
:func:`measurement_config_hash` identifies everything that changes a measurement, so two
results with the same hash measured the same thing.

Each backend owns its settings: they sit in a section under the backend's name
(``pytorch: {batch_size: 8}``) and are validated by the backend's own pydantic model. This
package knows no backend, so on its own it keeps such sections as plain JSON objects; given the
installed backends' settings models (``parse_config(data, backends=...)``, which the harness
does), a section that names no installed backend is an unknown key, and the selected backend's
section is validated and filled with its defaults (:func:`resolve_backend_settings`).
"""

import contextlib
import difflib
import hashlib
import json
import re
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from llem_schema._base import FrozenModel
from llem_schema.errors import BackendNotFoundError, ConfigError

__all__ = [
    "BACKEND_NAME_PATTERN",
    "BUILTIN_PROMPTS",
    "DECODER_PRESETS",
    "DEFAULT_BACKEND",
    "SYNTHETIC_PROMPTS",
    "TINY_MODEL",
    "BaselineConfig",
    "DecoderConfig",
    "DecoderPreset",
    "EnergyConfig",
    "EnergySource",
    "ExperimentConfig",
    "LoadConfig",
    "Precision",
    "PromptsConfig",
    "SloConfig",
    "WarmupConfig",
    "config_error",
    "measurement_config_hash",
    "parse_config",
    "resolve_backend_settings",
    "unknown_key_message",
]

TINY_MODEL: Final = "llem/tiny"
"""Reserved model name: a small Llama-architecture model built locally, no download."""

BUILTIN_PROMPTS: Final = "builtin"
SYNTHETIC_PROMPTS: Final = "synthetic"
PROMPT_FILE_SUFFIXES: Final = (".jsonl", ".csv")

DEFAULT_BACKEND: Final = "pytorch"
"""The backend a config without ``backend:`` selects."""
BACKEND_NAME_PATTERN: Final = r"[a-z][a-z0-9_]*(-[a-z0-9_]+)*"
"""A backend name (and the name of its settings section): lowercase, digits, ``_`` and ``-``."""
_BACKEND_NAME: Final = re.compile(BACKEND_NAME_PATTERN)

Precision = Literal["fp32", "fp16", "bf16"]
EnergySource = Literal["auto", "nvml", "rapl", "none"]
DecoderPreset = Literal["deterministic", "standard", "creative", "factual"]

DECODER_PRESETS: Final[Mapping[str, Mapping[str, Any]]] = {
    "deterministic": {"mode": "greedy"},
    "standard": {"mode": "sampling", "temperature": 1.0, "top_p": 1.0, "top_k": 50},
    "creative": {"mode": "sampling", "temperature": 0.9, "top_p": 0.95, "top_k": 0},
    "factual": {"mode": "sampling", "temperature": 0.3, "top_p": 0.9, "top_k": 40},
}
"""Decoder presets: a preset fills the settings a config leaves out; explicit ones win."""

_SAMPLING_DEFAULTS: Final[Mapping[str, Any]] = {"temperature": 1.0, "top_p": 1.0, "top_k": 0}

# Settings that name, place or judge a run but do not change what is measured. A decoder
# preset is left out because it is already resolved into the settings it stands for.
_NOT_MEASURED: Final[Mapping[str, Any]] = {
    "name": True,
    "output_dir": True,
    "slo": True,
    "decoder": {"preset"},
    "energy": {"mismatch_tolerance"},
    "baseline": {"cache_ttl_s"},
}
# Settings added after the first schema version whose default keeps the earlier behaviour:
# hashed only when they differ from that default, so a config that does not use them keeps
# the hash it always had. (Path in the dumped config, default as dumped.)
_HASHED_WHEN_SET: Final[tuple[tuple[tuple[str, ...], JsonValue], ...]] = (
    (("energy", "devices"), None),
    (("load",), {"request_rate": "inf", "burstiness": 1.0, "max_concurrency": None,
                 "duration_s": None, "seed": None}),
)  # fmt: skip

SettingsT = TypeVar("SettingsT", bound=BaseModel)


class PromptsConfig(FrozenModel):
    """Where the prompts come from. How many are used is :attr:`ExperimentConfig.n`."""

    source: str = Field(
        default=BUILTIN_PROMPTS,
        min_length=1,
        description=(
            "'builtin' (the prompt set shipped with llem), 'synthetic' (prompts of exactly "
            "synthetic_input_tokens tokens, counted by the backend's tokenizer), or a path to a "
            "local .jsonl or .csv file."
        ),
    )
    column: str = Field(
        default="prompt",
        min_length=1,
        description="Field (JSONL) or column (CSV) holding the prompt text in a prompt file.",
    )
    synthetic_input_tokens: int = Field(
        default=128,
        gt=0,
        description="Input length in tokens of each synthetic prompt.",
    )

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value in (BUILTIN_PROMPTS, SYNTHETIC_PROMPTS):
            return value
        if not value.lower().endswith(PROMPT_FILE_SUFFIXES):
            raise ValueError(
                f"must be 'builtin', 'synthetic' or a path to a .jsonl or .csv file, got {value!r}"
            )
        return value


class DecoderConfig(FrozenModel):
    """How tokens are chosen. Greedy decoding takes no sampling settings."""

    preset: DecoderPreset | None = Field(
        default=None,
        description=(
            "Named settings (deterministic, standard, creative, factual) that fill in what is "
            "not set explicitly."
        ),
    )
    mode: Literal["greedy", "sampling"] = Field(
        default="greedy", description="Greedy (argmax) or sampling decoding."
    )
    temperature: float | None = Field(
        default=None,
        gt=0.0,
        le=10.0,
        description="Sampling temperature; set only in sampling mode (default 1.0 there).",
    )
    top_p: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="Nucleus sampling probability mass; sampling mode only (default 1.0).",
    )
    top_k: int | None = Field(
        default=None,
        ge=0,
        description="Sample from the k most likely tokens, 0 disables; sampling mode only.",
    )
    ignore_eos: bool = Field(
        default=False,
        description=(
            "Keep generating past the end-of-sequence token so every request produces exactly "
            "max_new_tokens tokens (comparable work across runs)."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_preset_and_defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        resolved = dict(data)
        preset = resolved.get("preset")
        if isinstance(preset, str) and preset in DECODER_PRESETS:
            for key, value in DECODER_PRESETS[preset].items():
                resolved.setdefault(key, value)
        if resolved.get("mode") == "sampling":
            for key, value in _SAMPLING_DEFAULTS.items():
                if resolved.get(key) is None:
                    resolved[key] = value
        return resolved

    @model_validator(mode="after")
    def _greedy_has_no_sampling_settings(self) -> "DecoderConfig":
        if self.mode == "greedy":
            given = [k for k in ("temperature", "top_p", "top_k") if getattr(self, k) is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)} only apply to sampling: set decoder.mode to 'sampling' "
                    "or remove them"
                )
        return self


class WarmupConfig(FrozenModel):
    """Batches run before the energy window opens, so caches and clocks are warm."""

    count: int = Field(default=3, ge=0, description="Warmup batches always run.")
    until_converged: bool = Field(
        default=False,
        description=(
            "After `count` batches, keep warming up until the coefficient of variation of the "
            "last `cv_window` batch latencies is below `cv_target`, or `max_count` is reached."
        ),
    )
    cv_target: float = Field(
        default=0.05, gt=0.0, lt=1.0, description="Target latency coefficient of variation."
    )
    cv_window: int = Field(
        default=5, ge=2, description="Number of most recent batch latencies in the CV."
    )
    max_count: int = Field(
        default=30, ge=1, description="Upper bound on warmup batches when converging."
    )

    @model_validator(mode="after")
    def _max_covers_count(self) -> "WarmupConfig":
        if self.until_converged and self.max_count < self.count:
            raise ValueError(
                f"warmup.max_count ({self.max_count}) is smaller than warmup.count ({self.count})"
            )
        return self


class BaselineConfig(FrozenModel):
    """Idle power measured before the run and subtracted for the adjusted energy figure."""

    enabled: bool = Field(default=True, description="Measure (or reuse) idle baseline power.")
    duration_s: float = Field(
        default=15.0, gt=0.0, le=600.0, description="Seconds of idle power sampling."
    )
    cache_ttl_s: float = Field(
        default=3600.0,
        ge=0.0,
        description="Reuse a cached baseline of the same device younger than this; 0 never reuses.",
    )


class EnergyConfig(FrozenModel):
    """Which energy source is read and how often power is sampled."""

    source: EnergySource = Field(
        default="auto",
        description=(
            "auto (NVML when GPUs are present, plus RAPL when readable), nvml, rapl, or none."
        ),
    )
    sample_rate_hz: float = Field(
        default=10.0,
        gt=0.0,
        le=1000.0,
        description="Power/temperature sampler rate in hertz; feeds the timeseries.",
    )
    mismatch_tolerance: float = Field(
        default=0.10,
        gt=0.0,
        lt=1.0,
        description=(
            "Relative difference between counter energy and integrated power above which a "
            "warning is recorded."
        ),
    )
    devices: Literal["all"] | list[NonNegativeInt | str] | None = Field(
        default=None,
        description=(
            "The GPUs to meter. None (default): those the backend placed the model on, by "
            "UUID. 'all': every GPU on the host; or a list of NVML indices and GPU UUIDs "
            "('GPU-...'), for a server whose GPUs belong to another process."
        ),
    )

    @field_validator("devices")
    @classmethod
    def _distinct_devices(
        cls, value: Literal["all"] | list[int | str] | None
    ) -> Literal["all"] | list[int | str] | None:
        if isinstance(value, list):
            if not value:
                raise ValueError("name at least one device, or leave energy.devices out")
            for device in value:
                if isinstance(device, str) and not device.startswith(("GPU-", "MIG-")):
                    raise ValueError(
                        f"{device!r} is neither an NVML index nor a GPU UUID ('GPU-...'); "
                        "`nvidia-smi -L` lists them"
                    )
            if len(set(value)) != len(value):
                raise ValueError("a device is named twice")
        return value


class LoadConfig(FrozenModel):
    """How requests arrive, for every backend (``load:`` in a config).

    Arrival times are drawn up front from the seed, so two runs send the same schedule: the
    gaps between requests follow a gamma distribution of shape ``burstiness`` and mean
    ``1 / request_rate`` (``burstiness`` 1 is a Poisson process; below 1 the arrivals come
    in bursts, above 1 more evenly). A client of a server sends each request at its time;
    an offline engine takes the requests as fast as it can.
    """

    request_rate: float | Literal["inf"] = Field(
        default="inf",
        description="Requests sent per second on average; 'inf' sends them all at once.",
    )
    burstiness: PositiveFloat = Field(
        default=1.0,
        le=1000.0,
        description="Gamma shape of the gaps between arrivals: 1 Poisson, < 1 burstier.",
    )
    max_concurrency: PositiveInt | None = Field(
        default=None,
        description=(
            "Requests in flight at most (a request due while the limit is reached waits); "
            "None: no limit."
        ),
    )
    duration_s: PositiveFloat | None = Field(
        default=None,
        description=(
            "Send requests for this long, s: every arrival of the schedule before it, the "
            "prompts repeated as needed (needs a finite request_rate); None: n requests."
        ),
    )
    seed: NonNegativeInt | None = Field(
        default=None, description="Seed of the arrival schedule; None: the experiment's seed."
    )

    @field_validator("request_rate", mode="before")
    @classmethod
    def _rate(cls, value: object) -> object:
        # Checked here, whole, so that a bad rate is named as the key (not as one member of
        # the union). JSON has no infinity, so an infinite rate is kept as 'inf'.
        if isinstance(value, str) and value.strip().lower() in ("inf", "infinity"):
            return "inf"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number of requests per second or 'inf'")
        if value == float("inf"):
            return "inf"
        if not value > 0:
            raise ValueError("must be above 0 requests per second")
        return float(value)

    @model_validator(mode="after")
    def _duration_needs_a_rate(self) -> "LoadConfig":
        if self.duration_s is not None and self.request_rate == "inf":
            raise ValueError(
                "load.duration_s needs a finite load.request_rate (with 'inf' every request is "
                "sent at once)"
            )
        return self

    @property
    def rate_per_s(self) -> float | None:
        """``request_rate`` as a number; None for 'inf'."""
        return None if self.request_rate == "inf" else float(self.request_rate)


class SloConfig(FrozenModel):
    """Service-level objectives a request must meet to count toward goodput (``slo:``).

    They judge a measurement and do not change it, so they are not in the config hash.
    """

    ttft_ms: PositiveFloat | None = Field(
        default=None, description="Time to first token at most this, ms."
    )
    tpot_ms: PositiveFloat | None = Field(
        default=None, description="Time per output token (after the first) at most this, ms."
    )

    @model_validator(mode="after")
    def _one_at_least(self) -> "SloConfig":
        if self.ttft_ms is None and self.tpot_ms is None:
            raise ValueError("an SLO needs ttft_ms, tpot_ms or both")
        return self


class ExperimentConfig(FrozenModel):
    """One experiment: a model, a backend, prompts and how the measurement is taken.

    Besides the fields below, a config holds one section per backend it configures, under the
    backend's name (``pytorch: {batch_size: 8}``): a JSON object here, validated by that
    backend's settings model when the config is resolved (:func:`resolve_backend_settings`).
    Only the selected backend's section is measured (and hashed).
    """

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, dict[str, JsonValue]] = Field(init=False)

    name: str | None = Field(
        default=None, description="Free-form label; not part of the measurement hash."
    )
    model: str = Field(
        default=TINY_MODEL,
        min_length=1,
        description=(
            "Local directory or hub id already in the local cache; 'llem/tiny' builds a small "
            "model locally."
        ),
    )
    backend: str = Field(
        default=DEFAULT_BACKEND,
        pattern=f"^{BACKEND_NAME_PATTERN}$",
        description=(
            "Inference engine: the name of an installed backend (`llem backends` lists them); "
            "its settings sit in the section of that name."
        ),
    )
    prompts: PromptsConfig = Field(default_factory=PromptsConfig, description="Prompt source.")
    n: int = Field(default=100, gt=0, description="Number of prompts measured.")
    precision: Precision = Field(default="fp32", description="Weight and activation dtype.")
    max_input_tokens: int = Field(
        default=512, gt=0, description="Prompts are truncated to this many tokens."
    )
    max_new_tokens: int = Field(
        default=128, gt=0, description="Maximum output tokens generated per request."
    )
    decoder: DecoderConfig = Field(default_factory=DecoderConfig, description="Decoding.")
    warmup: WarmupConfig = Field(default_factory=WarmupConfig, description="Warmup.")
    baseline: BaselineConfig = Field(
        default_factory=BaselineConfig, description="Idle baseline power."
    )
    energy: EnergyConfig = Field(default_factory=EnergyConfig, description="Energy source.")
    num_processes: int = Field(
        default=1,
        gt=0,
        le=1024,
        description="Worker processes, one device each; prompts are split between them.",
    )
    output_dir: str = Field(
        default="results", min_length=1, description="Directory result directories go into."
    )
    seed: int = Field(default=42, ge=0, description="Seed for prompt selection and sampling.")
    load: LoadConfig = Field(
        default_factory=LoadConfig, description="How requests arrive (rate, bursts, bound)."
    )
    slo: SloConfig | None = Field(
        default=None, description="Objectives goodput counts against; None: no goodput."
    )

    @model_validator(mode="after")
    def _consistent(self) -> "ExperimentConfig":
        if self.n < self.num_processes:
            raise ValueError(
                f"n ({self.n}) is smaller than num_processes ({self.num_processes}): "
                "every process needs at least one prompt"
            )
        if self.backend in type(self).model_fields:
            raise ValueError(f"backend {self.backend!r} would clash with the setting of that name")
        for name in self.backend_sections:
            if not _BACKEND_NAME.fullmatch(name):
                raise ValueError(
                    f"{name!r} is neither a setting nor a backend name (a backend section is "
                    "named in lowercase letters, digits, '_' and '-')"
                )
        return self

    @property
    def backend_sections(self) -> dict[str, dict[str, JsonValue]]:
        """Every backend section the config holds, by backend name (selected or not)."""
        return dict(self.model_extra or {})

    def backend_section(self, name: str | None = None) -> dict[str, JsonValue]:
        """The section of backend ``name`` (default: the selected one) as given; ``{}`` when
        the config has none."""
        return dict(self.backend_sections.get(name or self.backend, {}))

    def backend_settings(self, model: type[SettingsT]) -> SettingsT:
        """The selected backend's section validated by ``model`` (its settings model).

        A bad key or value is a one-line :class:`ConfigError` naming it under the backend's
        name (``unknown config key 'pytorch.batch_sise'; did you mean 'batch_size'? ...``).
        """
        try:
            return model.model_validate(self.backend_section())
        except ValidationError as exc:
            raise config_error(exc, model, prefix=(self.backend,)) from None

    def measurement_config_hash(self) -> str:
        """See :func:`measurement_config_hash`."""
        return measurement_config_hash(self)


def measurement_config_hash(config: ExperimentConfig) -> str:
    """A stable 16-hex-digit hash of everything in ``config`` that changes a measurement.

    Computed from the canonical JSON of the config (sorted keys, defaults filled in, presets
    resolved), leaving out what does not change a measurement: the name, the output
    directory, the preset's name, warning thresholds, the baseline cache's lifetime, and the
    sections of backends other than the selected one. Equal configs written differently (key
    order, a preset versus its explicit settings) hash the same. A prompts file counts by its
    content where it can be read (the same prompts under another path hash the same, edited
    prompts under the same path do not), by its path where it cannot.

    The selected backend's section counts as it stands: hash a resolved config (with the
    backend's defaults filled in, as the harness and ``llem config show`` do) so that leaving
    a default out and writing it hash the same.
    """
    exclude = dict(_NOT_MEASURED) | {
        name: True for name in config.backend_sections if name != config.backend
    }
    canonical = config.model_dump(mode="json", exclude=exclude)
    for path, default in _HASHED_WHEN_SET:
        *parents, key = path
        node = canonical
        for part in parents:
            node = node[part]
        if node[key] == default:
            del node[key]
    source = config.prompts.source
    if source not in (BUILTIN_PROMPTS, SYNTHETIC_PROMPTS):
        # not readable here (validated elsewhere, say): the path stands for it
        with contextlib.suppress(OSError):
            canonical["prompts"]["source"] = (
                "sha256:" + hashlib.sha256(Path(source).read_bytes()).hexdigest()
            )
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def parse_config(
    data: Mapping[str, Any], *, backends: Mapping[str, type[BaseModel]] | None = None
) -> ExperimentConfig:
    """Validate a mapping (parsed YAML, CLI overrides) into an :class:`ExperimentConfig`.

    ``backends`` maps each installed backend's name to its settings model; given it, the
    config is resolved as :func:`resolve_backend_settings` says. Raises :class:`ConfigError`
    with one line naming the first bad key and what is allowed.
    """
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, ExperimentConfig, sections=backends) from None
    return config if backends is None else resolve_backend_settings(config, backends)


def resolve_backend_settings(
    config: ExperimentConfig, backends: Mapping[str, type[BaseModel]]
) -> ExperimentConfig:
    """``config`` with its selected backend's section validated by that backend's settings
    model and written out in full (defaults filled in), the sections of other backends left
    out.

    ``backends`` maps each installed backend's name to its settings model. A section that
    names no installed backend is an unknown key (a misspelt setting, most likely), and a
    selected backend that is not installed a :class:`BackendNotFoundError`; both are
    :class:`ConfigError`.
    Resolving a resolved config changes nothing.
    """
    if config.backend not in backends:
        raise BackendNotFoundError(config.backend, sorted(backends))
    for name in config.backend_sections:
        if name not in backends:
            raise ConfigError(
                unknown_key_message(ExperimentConfig, [name], sections=backends), key=name
            )
    settings = config.backend_settings(backends[config.backend])
    data = config.model_dump(exclude=set(config.backend_sections))
    return ExperimentConfig.model_validate(
        data | {config.backend: settings.model_dump(mode="json")}
    )


def config_error(
    exc: ValidationError,
    model: type[BaseModel],
    *,
    noun: str = "config",
    prefix: tuple[str, ...] = (),
    sections: Collection[str] | None = None,
) -> ConfigError:
    """Turn a pydantic ``ValidationError`` on ``model`` into a one-line :class:`ConfigError`.

    ``noun`` names the document in the message (``config key 'n'``, ``study key 'cycles'``);
    ``prefix`` is where ``model`` sits in it (``("pytorch",)`` for a backend's settings);
    ``sections``, the backend sections that are allowed besides the model's own keys.
    """
    errors = exc.errors(include_url=False)
    first = errors[0]
    key = ".".join([*prefix, *(str(part) for part in first["loc"])]) or None
    message = _describe(first, model, noun, prefix, sections)
    more = len(errors) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(message, key=key)


def unknown_key_message(
    model: type[BaseModel],
    loc: list[str],
    *,
    noun: str = "config",
    prefix: tuple[str, ...] = (),
    sections: Collection[str] | None = None,
) -> str:
    """``unknown config key 'a.b'; did you mean 'c'? (allowed under a: ...)`` for ``loc``.

    ``loc`` is the path of the unknown key in ``model``, which sits at ``prefix`` in the
    document; every part of ``loc`` before the last must name a nested model. ``sections``
    are the backend sections allowed at the top level besides the model's keys (listed, and
    suggested, when given).
    """
    key = ".".join([*prefix, *loc])
    allowed = _allowed_keys(model, loc[:-1])
    candidates = allowed + (sorted(sections) if sections and not loc[:-1] else [])
    hint = difflib.get_close_matches(loc[-1], candidates, n=1)
    suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
    where = [*prefix, *loc[:-1]]
    under = f" under {'.'.join(where)}" if where else ""
    listed = ", ".join(allowed)
    if sections is not None and not loc[:-1] and not prefix:
        listed += f"; backend sections: {', '.join(sorted(sections)) or 'none installed'}"
    return f"unknown {noun} key '{key}'{suggestion} (allowed{under}: {listed})"


def _describe(
    error: ErrorDetails,
    model: type[BaseModel],
    noun: str,
    prefix: tuple[str, ...],
    sections: Collection[str] | None,
) -> str:
    loc = [str(part) for part in error["loc"]]
    key = ".".join([*prefix, *loc])
    if _not_a_section(error, model, loc):
        if sections is not None and loc[0] in sections:
            return (
                f"{noun} key '{key}': the settings of backend {loc[0]!r} are a mapping of keys "
                f"to values (got {error['input']!r})"
            )
        return unknown_key_message(model, loc, noun=noun, prefix=prefix, sections=sections)
    if error["type"] == "extra_forbidden":
        return unknown_key_message(model, loc, noun=noun, prefix=prefix, sections=sections)
    text = error["msg"].removeprefix("Value error, ")
    if not key:
        return f"invalid {noun}: {text}"
    if error["type"] == "missing":
        return f"{noun} key '{key}' is required"
    return f"{noun} key '{key}': {text} (got {error['input']!r})"


def _not_a_section(error: ErrorDetails, model: type[BaseModel], loc: list[str]) -> bool:
    """An unknown top-level key whose value is no mapping, so no backend section either."""
    return (
        error["type"] == "dict_type"
        and len(loc) == 1
        and loc[0] not in model.model_fields
        and model.model_config.get("extra") == "allow"
    )


def _allowed_keys(model: type[BaseModel], path: list[str]) -> list[str]:
    current: type[BaseModel] = model
    for part in path:
        field = current.model_fields.get(part)
        nested = _model_of(field.annotation) if field is not None else None
        if nested is None:
            return []
        current = nested
    return sorted(current.model_fields)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds: the model itself, or the one of an optional
    (``Settings | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    models = [
        a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)
    ]
    return models[0] if len(models) == 1 else None
