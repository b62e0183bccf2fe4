"""Every shell command of the README runs as it is written, except those it marks as needing
what a test machine does not have.

The convention, stated in the README: a command in a ```sh block whose trailing comment starts
with ``needs`` (``# needs a GPU``, ``# needs a server``, ``# needs an id of yours``, ``# needs
minutes``, ...) is shown, not run, and its need must be one of :data:`NEEDS`. Every other
command is run, in the README's order, in one temporary directory that holds a copy of
``examples/``, so the paths the README names resolve and what one command writes (``results/``)
the next one reads. ``uv run X`` means "X in this project's environment": the commands run under
bash with this environment's ``bin`` first on ``PATH`` and ``uv`` a shell function that runs
``uv run X`` as ``X`` (any other ``uv`` command fails), so nothing is synced or installed. The
llem cache is the session's (``tests/conftest.py``): the tiny model is built once.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[1]
README: Final = ROOT / "README.md"

NEEDS: Final = re.compile(
    r"needs (a GPU|a server|an id|a study|a Slurm cluster|minutes|the network|the echo backend)\b"
)
"""What a command may need that this machine does not give it; ``# needs …`` leaves it out."""

_BLOCK: Final = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)

_SHIM: Final = (
    'uv() { if [ "$1" = run ]; then shift; "$@"; else '
    "echo \"tests/test_readme_commands.py runs 'uv run' only, not 'uv $1'\" >&2; "
    "return 127; fi; }\n"
)


@dataclass(frozen=True)
class ShellCommand:
    """One command of a ```sh block: its text without the comment, the comment, its line."""

    text: str
    comment: str
    line: int

    @property
    def runs(self) -> bool:
        return not self.comment.startswith("needs")


def _split_comment(line: str) -> tuple[str, str]:
    """``line`` as (command, comment): the comment starts at a ``#`` that follows whitespace
    outside quotes, as in bash."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].strip(), line[index + 1 :].strip()
    return line.strip(), ""


def shell_commands(markdown: str) -> list[ShellCommand]:
    """Every command in the ```sh blocks of ``markdown``; a line ending with ``\\`` goes on
    on the next one. A comment that starts with ``needs`` must name one of :data:`NEEDS`."""
    commands: list[ShellCommand] = []
    for block in _BLOCK.finditer(markdown):
        first_line = markdown.count("\n", 0, block.start(1)) + 1
        pending: list[str] = []
        start = first_line
        for offset, raw in enumerate(block.group(1).splitlines()):
            if not pending:
                start = first_line + offset
            if raw.rstrip().endswith("\\"):
                pending.append(raw.rstrip()[:-1].strip())
                continue
            text, comment = _split_comment(" ".join([*pending, raw.strip()]))
            pending = []
            if not text:  # a blank line or a comment of its own
                continue
            if comment.startswith("needs") and not NEEDS.match(comment):
                raise ValueError(
                    f"README.md:{start}: '# {comment}' names no known need "
                    f"({NEEDS.pattern}): run the command, or say what it needs in those words"
                )
            commands.append(ShellCommand(text, comment, start))
        if pending:
            raise ValueError(f"README.md:{start}: a command ends with '\\' and nothing follows")
    return commands


def test_commands_are_read_with_their_comments_continuations_and_marks() -> None:
    markdown = (
        "Text.\n\n```sh\n"
        "uv run llem run -n 2    # runs: a comment that is not a need\n"
        "# a comment line\n"
        "\n"
        "uv run llem run --backend openai \\\n"
        "    --set 'name=a#b' -n 5   # needs a server: vLLM\n"
        "uv run pytest    # needs minutes\n"
        "```\n\n```python\nprint('not shell')\n```\n"
    )
    assert shell_commands(markdown) == [
        ShellCommand("uv run llem run -n 2", "runs: a comment that is not a need", 4),
        ShellCommand(
            "uv run llem run --backend openai --set 'name=a#b' -n 5", "needs a server: vLLM", 7
        ),
        ShellCommand("uv run pytest", "needs minutes", 9),
    ]
    assert [c.runs for c in shell_commands(markdown)] == [True, False, False]


def test_a_need_outside_the_known_ones_is_refused() -> None:
    with pytest.raises(ValueError, match=r"README.md:2: '# needs coffee' names no known need"):
        shell_commands("```sh\nuv run llem env   # needs coffee\n```\n")


def test_the_quick_start_runs_and_the_test_suite_is_marked() -> None:
    commands = shell_commands(README.read_text(encoding="utf-8"))
    by_text = {command.text: command for command in commands}
    assert by_text["uv run llem run -n 20 --max-new-tokens 32"].runs
    assert not by_text["uv run pytest"].runs  # this test must never run the test suite
    assert sum(command.runs for command in commands) >= 10


def test_every_path_a_readme_command_names_exists() -> None:
    for command in shell_commands(README.read_text(encoding="utf-8")):
        for word in command.text.split():
            path = word.removeprefix("./")
            if path.startswith(("examples/", "docs/", "tests/", "bench/")):
                assert (ROOT / path).exists(), f"README.md:{command.line}: {path} does not exist"


@pytest.mark.slow
def test_every_unmarked_readme_command_runs(tmp_path: Path, llem_env: dict[str, str]) -> None:
    commands = [c for c in shell_commands(README.read_text(encoding="utf-8")) if c.runs]
    work = tmp_path / "checkout"
    shutil.copytree(ROOT / "examples", work / "examples")
    environment = {
        name: value
        for name, value in llem_env.items()
        if name not in ("LLEM_DB", "LLEM_SIMULATED_GPUS", "VIRTUAL_ENV")
    }
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    failures: list[str] = []
    timings: list[str] = []
    for command in commands:
        began = time.monotonic()
        completed = subprocess.run(
            ["bash", "-c", _SHIM + command.text],
            cwd=work,
            env=environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        timings.append(f"{time.monotonic() - began:6.1f} s  {command.text}")
        output = completed.stdout + completed.stderr
        if completed.returncode != 0 or "Traceback" in output:
            failures.append(
                f"README.md:{command.line}: `{command.text}` exited {completed.returncode}\n"
                f"{output[-3000:]}"
            )
    assert not failures, (
        "README commands that do not work as written (fix them, or mark one that needs a GPU, "
        "a server, an id or minutes with '# needs …'):\n\n" + "\n\n".join(failures)
    )
    assert (work / "results" / "llem.db").is_file(), "\n".join(timings)
    assert list((work / "results").glob("*/result.json")), "\n".join(timings)
