"""Where llem keeps what it builds locally (the built-in tiny model)."""

import os
from pathlib import Path
from typing import Final

__all__ = ["CACHE_DIR_ENV", "resolve_cache_dir"]

CACHE_DIR_ENV: Final = "LLEM_CACHE_DIR"
"""Environment variable that overrides llem's cache directory."""


def resolve_cache_dir(cache_dir: Path | str | None = None) -> Path:
    """llem's cache directory: ``cache_dir`` if given, else ``$LLEM_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/llem``, else ``~/.cache/llem``. Not created here."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from_env = os.environ.get(CACHE_DIR_ENV)
    if from_env:
        return Path(from_env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "llem"
