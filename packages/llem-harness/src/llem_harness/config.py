"""Config files and overrides -> :class:`~llem_schema.ExperimentConfig` (step 1 of a run).

A YAML file gives the base, overrides (the ``llem`` command's flags) set single keys by their
dotted path, and the result is validated once and resolved against the installed backends
(the selected backend's settings validated by its own model, defaults filled in). Every
problem is a one-line :class:`~llem_schema.ConfigError` naming the file, line or key:
unreadable files, YAML syntax, duplicate keys (YAML would silently keep the last), unknown
keys, bad values.
"""

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel

from llem_harness.backends import SettingsModels
from llem_harness.errors import WrongFileKindError
from llem_schema import ConfigError, ExperimentConfig, StudyConfig, parse_config
from llem_schema.config import DEFAULT_BACKEND

__all__ = [
    "EXPERIMENT_ONLY_KEYS",
    "STUDY_ONLY_KEYS",
    "apply_overrides",
    "load_experiment_config",
    "read_config_file",
]

STUDY_ONLY_KEYS: Final = frozenset(StudyConfig.model_fields) - frozenset(
    ExperimentConfig.model_fields
)
"""Top-level keys that make a file a study (``sweep``, ``cycles``, ...)."""
EXPERIMENT_ONLY_KEYS: Final = frozenset(ExperimentConfig.model_fields) - frozenset(
    StudyConfig.model_fields
)
"""Top-level keys that make a file an experiment config (``model``, ``n``, ...)."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_config_file(path: str | PathLike[str]) -> dict[str, Any]:
    """Parse a YAML config file into a mapping (not yet validated)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read config: {exc}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{file}{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{file}: a config is a mapping of keys to values, not {type(data).__name__}"
        )
    return data


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with each dotted key of ``overrides`` set (``decoder.mode``)."""
    merged = _deep_copy(data)
    for dotted, value in overrides.items():
        node = merged
        parts = dotted.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"config key '{'.'.join(parts[: depth + 1])}' is a value, so "
                    f"'{dotted}' cannot be set inside it",
                    key=dotted,
                )
            node = child
        node[parts[-1]] = value
    return merged


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def load_experiment_config(
    path: str | PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    backend_overrides: Mapping[str, Any] | None = None,
    backends: Mapping[str, type[BaseModel]] | None = None,
) -> ExperimentConfig:
    """The resolved config of ``path`` (or the defaults) with ``overrides`` applied.

    ``backend_overrides`` set keys of the selected backend's section (``batch_size`` becomes
    ``mybackend.batch_size`` when the backend is ``mybackend``). ``backends`` maps backend names
    to settings models (default: the installed backends). Overrides whose value is ``None``
    are skipped, so unset flags change nothing.
    """
    base = read_config_file(path) if path is not None else {}
    study_keys = sorted(STUDY_ONLY_KEYS.intersection(base))
    if path is not None and study_keys and not EXPERIMENT_ONLY_KEYS.intersection(base):
        raise WrongFileKindError(Path(path), kind="study", keys=study_keys)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    merged = apply_overrides(base, given)
    backend = merged.get("backend", DEFAULT_BACKEND)
    if isinstance(backend, str):
        merged = apply_overrides(
            merged,
            {f"{backend}.{k}": v for k, v in (backend_overrides or {}).items() if v is not None},
        )
    try:
        return parse_config(merged, backends=SettingsModels() if backends is None else backends)
    except ConfigError as exc:
        if path is not None:  # the same error (its type and data kept), naming the file
            exc.args = (f"{path}: {exc}", *exc.args[1:])
        raise
