"""Where llem keeps what it builds locally (the built-in tiny model)."""

from pathlib import Path

from llem_schema.cache import CACHE_DIR_ENV, cache_dir

__all__ = ["CACHE_DIR_ENV", "resolve_cache_dir"]


def resolve_cache_dir(directory: Path | str | None = None) -> Path:
    """llem's cache directory: ``directory`` if given, else :func:`llem_schema.cache.cache_dir`
    (``$LLEM_CACHE_DIR``, ``$XDG_CACHE_HOME/llem`` or ``~/.cache/llem``). Not created here."""
    if directory is not None:
        return Path(directory).expanduser()
    return cache_dir()
