"""Every command that writes, pointed where it cannot write (a regular file in the way of a
directory, which stops root too): one line naming the path, exit 2 (a mistake in what was
asked) as for `llem study -o`, and no traceback."""

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest

ROOT = Path(__file__).resolve().parents[3]


class Outcome(Protocol):
    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


Llem = Callable[..., Outcome]


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    """A regular file where a directory is expected."""
    path = tmp_path / "a-file"
    path.write_text("not a directory\n")
    return path


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (
            ["run", "-n", "2", "-o", "{blocker}"],
            2,
            "error: cannot write results to {blocker} (a file is in the way of the directory); "
            "choose another --output",
        ),
        (
            ["study", str(ROOT / "examples" / "study.yaml"), "-o", "{blocker}"],
            2,
            "error: cannot create the study directory {blocker}/study-example_",
        ),
        (
            ["results", "export", "--all", "-o", "{blocker}/all.csv", "--db", "{db}"],
            2,
            "error: cannot write csv export {blocker}/all.csv: {blocker} is a file, not a "
            "directory",
        ),
        (
            ["results", "import", "{results}", "--db", "{blocker}/llem.db"],
            2,
            "error: cannot create {blocker}/llem.db: a file is in the way of its directory",
        ),
        (
            ["db", "init", "--db", "{blocker}/llem.db"],
            2,
            "error: cannot create {blocker}/llem.db: a file is in the way of its directory",
        ),
        (
            ["db", "backup", "{blocker}/copy.db", "--db", "{db}"],
            2,
            "error: cannot write {blocker}/copy.db: {blocker} is a file",
        ),
        (
            ["schema", "export", "-o", "{blocker}/schema.json"],
            2,
            "error: cannot write {blocker}/schema.json: Not a directory",
        ),
    ],
    ids=["run", "study", "export", "import", "db-init", "db-backup", "schema-export"],
)
def test_an_output_that_cannot_be_written_is_one_line(
    llem: Llem, results: Path, blocker: Path, args: list[str], code: int, expected: str
) -> None:
    values = {"blocker": str(blocker), "db": str(results / "llem.db"), "results": str(results)}
    outcome = llem(*(arg.format(**values) for arg in args))
    assert outcome.exit_code == code, outcome.stderr
    assert "Traceback" not in outcome.stderr
    (line,) = outcome.stderr.splitlines()
    assert line.startswith(expected.format(**values)), line
    assert str(blocker) in line


def test_any_other_file_error_is_one_line_naming_the_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import errno

    from llem import cli

    class FullDisk:  # what writing raises when the disk fills, wherever it happens
        def main(self, **kwargs: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device", "results/run/result.json")

    monkeypatch.setattr(cli, "command", FullDisk)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == ("error: results/run/result.json: No space left on device\n")
