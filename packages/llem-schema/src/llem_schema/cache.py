"""Where llem keeps what it makes locally: the built-in tiny model, idle-power baselines.

One directory for all of it, so that ``LLEM_CACHE_DIR`` moves everything llem caches.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

__all__ = ["CACHE_DIR_ENV", "cache_dir"]

CACHE_DIR_ENV: Final = "LLEM_CACHE_DIR"
"""Environment variable that overrides llem's cache directory."""


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$LLEM_CACHE_DIR``, else ``$XDG_CACHE_HOME/llem``, else ``~/.cache/llem`` (read from
    ``environ``, the process's environment by default). Not created here."""
    env = os.environ if environ is None else environ
    from_env = env.get(CACHE_DIR_ENV)
    if from_env:
        return Path(from_env).expanduser()
    xdg = env.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "llem"
