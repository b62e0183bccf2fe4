"""Fixtures of the end-to-end tests: a private cache (tiny model, baselines) shared by the
session, and the environment every `llem` subprocess runs with (offline, wide terminal)."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def llem_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llem-cache")


@pytest.fixture
def llem_env(llem_cache: Path) -> dict[str, str]:
    return os.environ | {
        "LLEM_CACHE_DIR": str(llem_cache),
        "XDG_CACHE_HOME": str(llem_cache),
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "200",
    }
