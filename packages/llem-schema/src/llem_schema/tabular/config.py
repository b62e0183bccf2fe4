"""Reading settings out of a result's ``effective_config`` (a JSON object).

``effective_config`` is the resolved :class:`~llem_schema.ExperimentConfig` as JSON, so a
setting may be absent (a backend without it, a config from another version) or of another
type than expected. Every reader here returns ``None`` then and never raises: a missing
setting is a missing cell.
"""

import json
from collections.abc import Callable, Iterator, Mapping

from llem_schema import ExperimentResult

__all__ = [
    "ConfigScalar",
    "backend_int",
    "config_bool",
    "config_float",
    "config_int",
    "config_str",
    "flatten_config",
]

ConfigScalar = str | int | float | bool | None
"""A flattened config value: lists and objects become JSON text."""


def _lookup(config: Mapping[str, object], path: tuple[str, ...]) -> object:
    value: object = config
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def config_str(*path: str) -> Callable[[ExperimentResult], str | None]:
    """Reader of the string at ``path`` in ``effective_config``."""

    def get(result: ExperimentResult) -> str | None:
        value = _lookup(result.effective_config, path)
        return value if isinstance(value, str) else None

    return get


def config_int(*path: str) -> Callable[[ExperimentResult], int | None]:
    """Reader of the integer at ``path`` (a boolean is not an integer here)."""

    def get(result: ExperimentResult) -> int | None:
        return _as_int(_lookup(result.effective_config, path))

    return get


def config_float(*path: str) -> Callable[[ExperimentResult], float | None]:
    """Reader of the number at ``path``, as a float."""

    def get(result: ExperimentResult) -> float | None:
        value = _lookup(result.effective_config, path)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    return get


def config_bool(*path: str) -> Callable[[ExperimentResult], bool | None]:
    """Reader of the boolean at ``path``."""

    def get(result: ExperimentResult) -> bool | None:
        value = _lookup(result.effective_config, path)
        return value if isinstance(value, bool) else None

    return get


def backend_int(key: str) -> Callable[[ExperimentResult], int | None]:
    """Reader of ``effective_config[<the result's backend>][key]`` as an integer.

    Backend-specific settings live under the backend's name (``pytorch.batch_size``), so one
    column covers every backend that has the setting.
    """

    def get(result: ExperimentResult) -> int | None:
        return _as_int(_lookup(result.effective_config, (result.backend, key)))

    return get


def flatten_config(
    config: Mapping[str, object], prefix: str = ""
) -> Iterator[tuple[str, ConfigScalar]]:
    """Every setting of ``config`` as ``(dotted.key, value)``, depth first, in stored order.

    Nested objects become dotted keys (``decoder.temperature``); a list or an empty object is
    kept whole as compact JSON text, so no setting disappears.
    """
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from flatten_config(value, f"{name}.")
        elif value is None or isinstance(value, str | int | float):
            yield name, value
        else:
            yield name, json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
