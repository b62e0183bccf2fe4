"""Crash-safe file writing and versioned document loading, standard library only.

A reader never sees a partial file: every write goes to a temporary file in the same
directory, is flushed and fsynced, then renamed over the target (``os.replace`` is atomic on
POSIX and Windows). A process killed mid-write leaves the previous file, or none.
"""

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from llem_schema.errors import ResultFormatError, SchemaVersionError
from llem_schema.versions import SCHEMA_VERSION, MigrationRegistry, parse_version

__all__ = [
    "MAX_UNIQUE_SUFFIX",
    "atomic_copy",
    "atomic_path",
    "atomic_write_bytes",
    "create_unique_dir",
    "document_file",
    "file_in_the_way",
    "load_document",
    "load_document_file",
    "parse_json_object",
    "read_document_text",
    "read_json_object",
    "write_document",
]

MAX_UNIQUE_SUFFIX: Final = 100_000
_COPY_CHUNK: Final = 1 << 20

ModelT = TypeVar("ModelT", bound=BaseModel)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; directories cannot be opened on Windows.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE: Final = 0o666 & ~_current_umask()
"""What ``open()`` would give a new file; ``mkstemp`` alone would make it owner-only (0600)."""


@contextlib.contextmanager
def _temporary_beside(path: Path) -> Iterator[tuple[int, Path]]:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, _FILE_MODE)
    temporary = Path(name)
    try:
        yield fd, temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed to ``path``.

    For writers that want a file name (pyarrow, xlsxwriter, csv streams): whatever they write
    appears at ``path`` all at once or not at all. On an exception the temporary is removed.
    """
    with _temporary_beside(path) as (fd, temporary):
        os.close(fd)
        yield temporary
        with temporary.open("rb+") as handle:
            os.fsync(handle.fileno())
        temporary.replace(path)
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either the old file or the new one."""
    with _temporary_beside(path) as (fd, temporary):
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    _fsync_dir(path.parent)


def atomic_copy(source: Path, destination: Path) -> None:
    """Copy ``source`` to ``destination`` with the same all-or-nothing guarantee."""
    with _temporary_beside(destination) as (fd, temporary):
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, _COPY_CHUNK)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(destination)
    _fsync_dir(destination.parent)


def create_unique_dir(parent: Path, name: str) -> Path:
    """Create and return ``parent/name``, or ``name_1``, ``name_2``, ... if taken.

    ``os.mkdir`` either creates the directory or fails, so concurrent callers (threads or
    processes) asking for the same name each get a distinct directory and none is reused.
    """
    parent.mkdir(parents=True, exist_ok=True)
    for suffix in range(MAX_UNIQUE_SUFFIX):
        candidate = parent / (name if suffix == 0 else f"{name}_{suffix}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{parent / name}: every suffix up to {MAX_UNIQUE_SUFFIX} is taken")


def document_file(path: str | os.PathLike[str], name: str) -> Path:
    """``path`` when it is the document itself, ``path/name`` when it is its directory."""
    file = Path(path)
    return file / name if file.is_dir() else file


def write_document(model: BaseModel, directory: str | os.PathLike[str], name: str) -> Path:
    """Write ``model`` as indented JSON to ``directory/name`` atomically, creating
    ``directory``; return the file's path."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    atomic_write_bytes(path, model.model_dump_json(indent=2).encode("utf-8") + b"\n")
    return path


def load_document_file(
    model: type[ModelT],
    path: str | os.PathLike[str],
    name: str,
    *,
    kind: str,
    migrations: MigrationRegistry,
) -> ModelT:
    """Read, migrate and validate the ``kind`` document at ``path`` (the file, or the
    directory holding ``name``), with the one-line errors of :func:`read_json_object` and
    :func:`load_document`."""
    file = document_file(path, name)
    document = read_json_object(file, kind=kind)
    return load_document(model, document, migrations=migrations, source=file)


def read_json_object(path: Path, *, kind: str) -> dict[str, Any]:
    """Read a JSON object, turning every way it can be unreadable into one-line errors."""
    return parse_json_object(read_document_text(path, kind=kind), path, kind=kind)


def read_document_text(path: Path, *, kind: str) -> str:
    """The text of ``path`` (UTF-8), or the one-line error :func:`read_json_object` gives."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultFormatError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultFormatError(f"{path}: cannot read {kind}: {exc}") from None


def parse_json_object(text: str, path: Path, *, kind: str) -> dict[str, Any]:
    """Parse ``text`` (read from ``path``) as a JSON object with a ``schema_version``."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultFormatError(
            f"{path}: corrupt {kind}: invalid JSON at line {exc.lineno}, column {exc.colno} "
            f"({exc.msg})"
        ) from None
    if not isinstance(document, dict) or "schema_version" not in document:
        raise ResultFormatError(f"{path}: not an llem {kind} (no schema_version)")
    return document


def load_document(
    model: type[ModelT],
    document: dict[str, Any],
    *,
    migrations: MigrationRegistry,
    source: object,
) -> ModelT:
    """Validate ``document`` as ``model``, migrating older schema versions first.

    A newer major version is a :class:`SchemaVersionError`; a newer minor version loads when
    it only carries fields this reader knows. ``source`` names the document in messages.
    """
    kind = migrations.kind
    version = document.get("schema_version")
    try:
        found = parse_version(version)
    except ResultFormatError as exc:
        raise ResultFormatError(f"{source}: {exc}") from None
    current = parse_version(SCHEMA_VERSION)
    upgrade = (
        f"{source}: written with llem schema {version}, newer than {SCHEMA_VERSION} which this "
        "llem-schema reads; upgrade llem-schema (pip install -U llem-schema)"
    )
    if found[0] > current[0]:
        raise SchemaVersionError(upgrade)
    if found < current:
        try:
            document = migrations.migrate(document)
        except ResultFormatError as exc:
            raise ResultFormatError(f"{source}: {exc}") from None
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        if found > current:
            raise SchemaVersionError(upgrade) from None
        raise ResultFormatError(f"{source}: invalid {kind}: {_first_problem(exc)}") from None


def _first_problem(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "document"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg'].removeprefix('Value error, ')}{more}"


def file_in_the_way(directory: Path) -> Path | None:
    """The file that stops ``directory`` from being made: the nearest of ``directory`` and
    its parents that exists, when it is not a directory; None when it can be made."""
    holder = next((path for path in (directory, *directory.parents) if path.exists()), None)
    return holder if holder is not None and not holder.is_dir() else None
