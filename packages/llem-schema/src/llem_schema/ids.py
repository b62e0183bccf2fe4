"""Experiment ids and directory-name slugs that are safe to use as path components."""

import re
import secrets
from datetime import UTC, datetime
from typing import Annotated, Final

from pydantic import AfterValidator

from llem_schema.errors import InvalidExperimentIdError

__all__ = [
    "MAX_EXPERIMENT_ID_LENGTH",
    "ExperimentId",
    "model_slug",
    "new_experiment_id",
    "timestamp_slug",
    "validate_experiment_id",
    "validate_sidecar_name",
    "validate_study_name",
]

MAX_EXPERIMENT_ID_LENGTH: Final = 128
_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SLUG_UNSAFE: Final = re.compile(r"[^a-z0-9._-]+")


def validate_experiment_id(value: str) -> str:
    """Return ``value`` if it is a safe single path component, else raise.

    Refused: empty, longer than 128 characters, ``..`` anywhere, separators, NUL, whitespace,
    a leading dot or dash, and anything outside ``[A-Za-z0-9._-]``.
    """
    return _validate_component(value, "experiment id")


def validate_study_name(value: str) -> str:
    """A study name follows the experiment-id rules (:func:`validate_experiment_id`): it names
    the study's directory."""
    return _validate_component(value, "study name")


def _validate_component(value: str, what: str) -> str:
    if not value:
        raise InvalidExperimentIdError(f"{what} is empty")
    if len(value) > MAX_EXPERIMENT_ID_LENGTH:
        raise InvalidExperimentIdError(
            f"{what} is {len(value)} characters long; at most "
            f"{MAX_EXPERIMENT_ID_LENGTH} are allowed"
        )
    if ".." in value or not _ID_RE.fullmatch(value):
        raise InvalidExperimentIdError(
            f"{what} {value!r} is not allowed: use letters, digits, '.', '_' and '-' "
            "only, starting with a letter or digit, and no '..'"
        )
    return value


ExperimentId = Annotated[str, AfterValidator(validate_experiment_id)]
"""A ``str`` field type that only accepts :func:`validate_experiment_id`-safe ids."""


def model_slug(model: str) -> str:
    """A lowercase directory-safe name for a model: ``meta-llama/Llama-3.2-1B`` -> ``llama-3.2-1b``.

    Only the last path component is kept; anything else unsafe becomes ``-``.
    """
    last = model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    slug = _SLUG_UNSAFE.sub("-", last.lower()).strip("-.")
    return slug[:64] or "model"


def timestamp_slug(when: datetime) -> str:
    """``2026-11-22T14-03-05``: an ISO timestamp that is safe in a file name, in UTC (a naive
    ``when`` is taken as UTC)."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H-%M-%S")


def new_experiment_id(model: str, backend: str, when: datetime) -> str:
    """A fresh, unique, path-safe experiment id: ``{model}_{backend}_{time}_{6 hex}``."""
    backend_slug = _SLUG_UNSAFE.sub("-", backend.lower()).strip("-.") or "backend"
    return validate_experiment_id(
        f"{model_slug(model)}_{backend_slug}_{timestamp_slug(when)}_{secrets.token_hex(3)}"
    )


def validate_sidecar_name(value: str) -> str:
    """A file name that stays beside its JSON document: no directories, no hidden files,
    not ``result.json`` itself."""
    if (
        not value
        or value.startswith(".")
        or value == "result.json"
        or any(c in value for c in "/\\\0")
    ):
        raise ValueError(f"must be a plain file name beside the JSON document, got {value!r}")
    return value
