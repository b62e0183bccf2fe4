"""JSON Schema of llem's documents, for readers in other languages and for validation."""

from typing import Any, Literal

from pydantic import BaseModel

from llem_schema.config import ExperimentConfig
from llem_schema.raw import RawProcessResult
from llem_schema.result import ExperimentResult
from llem_schema.study_config import StudyConfig
from llem_schema.study_manifest import StudyManifest
from llem_schema.study_result import StudyResult
from llem_schema.versions import SCHEMA_VERSION

__all__ = ["DocumentKind", "json_schema"]

DocumentKind = Literal["result", "raw", "config", "study", "manifest", "study-config"]

_MODELS: dict[str, type[BaseModel]] = {
    "result": ExperimentResult,
    "raw": RawProcessResult,
    "config": ExperimentConfig,
    "study": StudyResult,
    "manifest": StudyManifest,
    "study-config": StudyConfig,
}


def json_schema(kind: DocumentKind = "result") -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one of llem's documents.

    ``result``: ``result.json``; ``raw``: a staged per-process result; ``config``: an
    experiment config; ``study``: a study's ``study.json``; ``manifest``: a study's
    ``manifest.json``; ``study-config``: a study file.
    """
    schema = _MODELS[kind].model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "x-llem-schema-version": SCHEMA_VERSION,
        **schema,
    }
