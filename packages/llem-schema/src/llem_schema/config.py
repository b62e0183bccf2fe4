"""What an experiment measures: :class:`ExperimentConfig` and its sections.

The configuration is frozen and strict: a misspelt key is an error naming the key and the keys
that are allowed (:func:`parse_config`), never a silently ignored setting. Its
:func:`measurement_config_hash` identifies everything that changes a measurement, so two
results with the same hash measured the same thing.
"""

import contextlib
import difflib
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from llem_schema._base import FrozenModel
from llem_schema.errors import ConfigError

__all__ = [
    "BACKEND_SECTIONS",
    "BUILTIN_PROMPTS",
    "DECODER_PRESETS",
    "SYNTHETIC_PROMPTS",
    "TINY_MODEL",
    "BackendName",
    "BaselineConfig",
    "DecoderConfig",
    "DecoderPreset",
    "EnergyConfig",
    "EnergySource",
    "ExperimentConfig",
    "Precision",
    "PromptsConfig",
    "PyTorchConfig",
    "WarmupConfig",
    "config_error",
    "measurement_config_hash",
    "parse_config",
    "unknown_key_message",
]

TINY_MODEL: Final = "llem/tiny"
"""Reserved model name: a small Llama-architecture model built locally, no download."""

BUILTIN_PROMPTS: Final = "builtin"
SYNTHETIC_PROMPTS: Final = "synthetic"
PROMPT_FILE_SUFFIXES: Final = (".jsonl", ".csv")

BackendName = Literal["pytorch"]
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
    "decoder": {"preset"},
    "energy": {"mismatch_tolerance"},
    "baseline": {"cache_ttl_s"},
}
BACKEND_SECTIONS: Final = ("pytorch",)
"""Config sections that belong to one backend; only the selected one is part of the hash."""


class PromptsConfig(FrozenModel):
    """Where the prompts come from. How many are used is :attr:`ExperimentConfig.n`."""

    source: str = Field(
        default=BUILTIN_PROMPTS,
        min_length=1,
        description=(
            "'builtin' (the prompt set shipped with the backend), 'synthetic' (prompts of "
            "exactly synthetic_input_tokens tokens), or a path to a local .jsonl or .csv file."
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


class PyTorchConfig(FrozenModel):
    """Settings that only the PyTorch + transformers backend reads."""

    batch_size: int = Field(default=1, gt=0, description="Prompts generated together per batch.")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] | None = Field(
        default=None, description="Attention kernel passed to transformers; None: its default."
    )
    torch_compile: bool = Field(
        default=False, description="Compile the model's forward with torch.compile."
    )


class ExperimentConfig(FrozenModel):
    """One experiment: a model, a backend, prompts and how the measurement is taken."""

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
    backend: BackendName = Field(default="pytorch", description="Inference engine.")
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
    pytorch: PyTorchConfig = Field(
        default_factory=PyTorchConfig, description="PyTorch backend settings."
    )

    @model_validator(mode="after")
    def _every_process_has_a_prompt(self) -> "ExperimentConfig":
        if self.n < self.num_processes:
            raise ValueError(
                f"n ({self.n}) is smaller than num_processes ({self.num_processes}): "
                "every process needs at least one prompt"
            )
        return self

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
    """
    exclude = dict(_NOT_MEASURED) | {
        section: True for section in BACKEND_SECTIONS if section != config.backend
    }
    canonical = config.model_dump(mode="json", exclude=exclude)
    source = config.prompts.source
    if source not in (BUILTIN_PROMPTS, SYNTHETIC_PROMPTS):
        # not readable here (validated elsewhere, say): the path stands for it
        with contextlib.suppress(OSError):
            canonical["prompts"]["source"] = (
                "sha256:" + hashlib.sha256(Path(source).read_bytes()).hexdigest()
            )
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def parse_config(data: Mapping[str, Any]) -> ExperimentConfig:
    """Validate a mapping (parsed YAML, CLI overrides) into an :class:`ExperimentConfig`.

    Raises :class:`ConfigError` with one line naming the first bad key and what is allowed.
    """
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, ExperimentConfig) from None


def config_error(
    exc: ValidationError, model: type[BaseModel], *, noun: str = "config"
) -> ConfigError:
    """Turn a pydantic ``ValidationError`` on ``model`` into a one-line :class:`ConfigError`.

    ``noun`` names the document in the message (``config key 'n'``, ``study key 'cycles'``).
    """
    errors = exc.errors(include_url=False)
    first = errors[0]
    key = ".".join(str(part) for part in first["loc"]) or None
    message = _describe(first, model, noun)
    more = len(errors) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(message, key=key)


def unknown_key_message(model: type[BaseModel], loc: list[str], *, noun: str = "config") -> str:
    """``unknown config key 'a.b'; did you mean 'c'? (allowed under a: ...)`` for ``loc``.

    ``loc`` is the path of the unknown key; every part before the last must name a nested
    model of ``model``.
    """
    key = ".".join(loc)
    allowed = _allowed_keys(model, loc[:-1])
    hint = difflib.get_close_matches(loc[-1], allowed, n=1)
    suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
    under = f" under {'.'.join(loc[:-1])}" if loc[:-1] else ""
    return f"unknown {noun} key '{key}'{suggestion} (allowed{under}: {', '.join(allowed)})"


def _describe(error: ErrorDetails, model: type[BaseModel], noun: str) -> str:
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        return unknown_key_message(model, loc, noun=noun)
    text = error["msg"].removeprefix("Value error, ")
    if not key:
        return f"invalid {noun}: {text}"
    if error["type"] == "missing":
        return f"{noun} key '{key}' is required"
    return f"{noun} key '{key}': {text} (got {error['input']!r})"


def _allowed_keys(model: type[BaseModel], path: list[str]) -> list[str]:
    current: type[BaseModel] = model
    for part in path:
        annotation = current.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return sorted(current.model_fields)
