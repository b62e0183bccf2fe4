"""Installed backends, found through the entry-point group ``llem.backends``.

A backend package registers its class under its name::

    [project.entry-points."llem.backends"]
    mybackend = "my_package.backend:MyBackend"

and llem finds it there, its built-in backend exactly as any other: nothing here names
a backend. Listing the installed backends imports none of them; a backend's module is imported
when its class or its settings model is first needed, and an import that fails is reported
with the package and the reason.
"""

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Final

from pydantic import BaseModel

from llem_harness.errors import BackendLoadError, describe_exception
from llem_schema import BackendNotFoundError, InferenceBackend

__all__ = [
    "ENTRY_POINT_GROUP",
    "BackendInfo",
    "SettingsModels",
    "backend_class",
    "create_backend",
    "installed_backends",
    "settings_model_of",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP: Final = "llem.backends"
_INTERFACE: Final = (
    "prepare",
    "load",
    "count_tokens",
    "warmup",
    "run",
    "synchronize",
    "peak_memory",
    "estimate_flops",
    "unload",
)
"""The methods of :class:`~llem_schema.InferenceBackend` a backend class must have."""


@dataclass(frozen=True)
class BackendInfo:
    """An installed backend, as its entry point declares it (nothing imported)."""

    name: str
    target: str
    """``module:Class``, what the entry point names."""
    distribution: str | None
    """The package that registers it."""
    version: str | None
    """That package's version."""


def installed_backends() -> dict[str, BackendInfo]:
    """Every backend registered in ``llem.backends``, by name, sorted by name.

    Two packages registering one name are both reported when that name is used
    (:func:`backend_class`); here the first one found is listed.
    """
    found: dict[str, BackendInfo] = {}
    for entry in sorted(_entries(), key=lambda e: e.name):
        found.setdefault(entry.name, _info(entry))
    return found


def backend_class(name: str) -> type[InferenceBackend]:
    """The class of the installed backend ``name``, imported now.

    An unknown name is a :class:`BackendNotFoundError` listing the installed ones; a module
    that fails to import, or an entry point that names no backend class, a
    :class:`BackendLoadError` naming the package and the reason.
    """
    return _load(name)


def create_backend(name: str) -> InferenceBackend:
    """A new instance of the installed backend ``name``."""
    cls = backend_class(name)
    try:
        return cls()
    except Exception as exc:  # a third party's constructor: report, do not crash
        raise BackendLoadError(
            name, installed_backends()[name].distribution, describe_exception(exc)
        ) from exc


def settings_model_of(backend: type[InferenceBackend] | InferenceBackend) -> type[BaseModel]:
    """The settings model a backend class (or instance) declares; a :class:`TypeError` when it
    declares none."""
    model = getattr(backend, "settings_model", None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(
            "it has no settings_model (a pydantic model class of its settings, set in the "
            "class body: settings_model = MySettings)"
        )
    return model


class SettingsModels(Mapping[str, type[BaseModel]]):
    """The installed backends' settings models by name, each imported when first looked up.

    What :func:`llem_schema.parse_config` and :func:`llem_schema.expand_study` take as
    ``backends``: knowing a name costs nothing, validating its section imports its backend.
    ``extra`` adds backends that are not installed (an object handed to ``measure``).
    """

    def __init__(self, extra: Mapping[str, type[BaseModel]] | None = None) -> None:
        self._extra = dict(extra or {})
        self._names = sorted(set(installed_backends()) | set(self._extra))

    def __getitem__(self, name: str) -> type[BaseModel]:
        if name in self._extra:
            return self._extra[name]
        if name not in self._names:
            raise KeyError(name)
        return _settings_model(name)

    def __contains__(self, name: object) -> bool:
        return name in self._names  # without importing it, as Mapping's own would

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


@cache
def _settings_model(name: str) -> type[BaseModel]:
    cls = _load(name)
    try:
        return settings_model_of(cls)
    except TypeError as exc:
        raise BackendLoadError(name, installed_backends()[name].distribution, str(exc)) from None


@cache
def _load(name: str) -> type[InferenceBackend]:
    matches = [entry for entry in _entries() if entry.name == name]
    if not matches:
        raise BackendNotFoundError(name, sorted(installed_backends()))
    if len(matches) > 1:
        packages = ", ".join(sorted(_info(e).distribution or e.value for e in matches))
        raise BackendLoadError(
            name, None, f"more than one package registers it ({packages}); uninstall all but one"
        )
    (entry,) = matches
    info = _info(entry)
    try:
        loaded = entry.load()
    except Exception as exc:  # ImportError, or whatever the module raises on import
        logger.debug("importing backend %s failed", name, exc_info=True)
        raise BackendLoadError(name, info.distribution, describe_exception(exc)) from None
    if not isinstance(loaded, type):
        raise BackendLoadError(
            name, info.distribution, f"{info.target} is not a class but {type(loaded).__name__}"
        )
    missing = [member for member in _INTERFACE if not callable(getattr(loaded, member, None))]
    if missing:
        raise BackendLoadError(
            name,
            info.distribution,
            f"{info.target} does not implement the backend interface (missing: "
            f"{', '.join(missing)})",
        )
    backend: type[InferenceBackend] = loaded
    return backend


def _entries() -> list[EntryPoint]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def _info(entry: EntryPoint) -> BackendInfo:
    dist = entry.dist
    return BackendInfo(
        name=entry.name,
        target=entry.value,
        distribution=dist.name if dist is not None else None,
        version=dist.version if dist is not None else None,
    )
