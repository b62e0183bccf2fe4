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


@pytest.fixture
def fresh_baselines(tmp_path: Path, llem_cache: Path) -> Path:
    """A cache directory for ``LLEM_CACHE_DIR`` that shares the session's built models but
    has no idle-power baselines yet (they are cached beside the models, for an hour)."""
    cache = tmp_path / "cache"
    (llem_cache / "models").mkdir(parents=True, exist_ok=True)
    cache.mkdir()
    (cache / "models").symlink_to(llem_cache / "models", target_is_directory=True)
    return cache
