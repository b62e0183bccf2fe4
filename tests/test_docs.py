"""The documentation stays true to the code: the generated pages are current, the command-line
reference holds every command and option, and every file and anchor a page names exists."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from llem.cli import command as llem_command
from llem_schema import TIMESERIES_COLUMNS, WARNING_CODES, ExperimentResult

ROOT: Final = Path(__file__).resolve().parents[1]
GENERATOR: Final = ROOT / "scripts" / "generate_docs.py"
CLI_MD: Final = ROOT / "docs" / "cli.md"
RESULT_FORMAT_MD: Final = ROOT / "docs" / "result-format.md"
PAGES: Final = sorted([ROOT / "README.md", ROOT / "bench" / "README.md", *ROOT.glob("docs/*.md")])

_LINK: Final = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_CODE_PATH: Final = re.compile(
    r"`(\.?/?(?:examples|docs|tests|bench|scripts|packages|apps|\.ci)/[^`\s<>*{}]+)`"
)
_HEADING: Final = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)
_FENCE: Final = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def test_the_generated_documents_are_current() -> None:
    """A narrow terminal that asks for colours must not change a byte of them."""
    completed = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        cwd=ROOT / "docs",
        env=os.environ | {"COLUMNS": "37", "FORCE_COLOR": "1", "TERM": "xterm-256color"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr  # "docs/cli.md is out of date: run ..."
    assert completed.stderr == ""


def test_the_check_names_a_stale_document_and_how_to_renew_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run on a copy of the documents, one edited: the check fails naming it and the command
    that renews it, writes nothing, and the command then makes it current again."""
    spec = importlib.util.spec_from_file_location("generate_docs", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    (tmp_path / "docs").mkdir()
    edited = CLI_MD.read_text(encoding="utf-8").replace("Measure energy", "Measure joy", 1)
    (tmp_path / "docs" / "cli.md").write_text(edited, encoding="utf-8")
    shutil.copy(RESULT_FORMAT_MD, tmp_path / "docs" / "result-format.md")

    assert generator.main(["--check"], root=tmp_path) == 1
    assert capsys.readouterr().err == (
        "docs/cli.md is out of date: run `uv run python scripts/generate_docs.py`\n"
    )
    assert (tmp_path / "docs" / "cli.md").read_text(encoding="utf-8") == edited

    assert generator.main([], root=tmp_path) == 0
    assert (tmp_path / "docs" / "cli.md").read_text(encoding="utf-8") == CLI_MD.read_text(
        encoding="utf-8"
    )
    assert generator.main(["--check"], root=tmp_path) == 0


def _commands() -> Iterator[tuple[str, typer.Context]]:
    root = llem_command()

    def walk(command: object, context: typer.Context) -> Iterator[tuple[str, typer.Context]]:
        yield context.command_path, context
        if isinstance(command, TyperGroup):
            for name, child in command.commands.items():
                if not child.hidden:
                    yield from walk(child, typer.Context(child, info_name=name, parent=context))

    yield from walk(root, typer.Context(root, info_name="llem"))


def _sections(markdown: str) -> dict[str, str]:
    """The text under each heading of ``markdown``, by the heading's text."""
    headings = list(_HEADING.finditer(markdown))
    return {
        heading.group(1): markdown[heading.end() : following.start() if following else None]
        for heading, following in zip(headings, [*headings[1:], None], strict=True)
    }


def test_the_cli_reference_holds_every_command_with_its_usage_and_options() -> None:
    sections = _sections(CLI_MD.read_text(encoding="utf-8"))
    commands = list(_commands())
    assert len(commands) > 20
    for path, context in commands:
        section = sections.get(f"`{path}`")
        assert section is not None, f"docs/cli.md has no section `{path}`"
        command = context.command
        usage = " ".join([path, *command.collect_usage_pieces(context)])
        assert f"```text\n{usage}\n```" in section, path
        for parameter in command.params:
            if isinstance(parameter, TyperOption) and not parameter.hidden:
                for name in [*parameter.opts, *parameter.secondary_opts]:
                    assert re.search(rf"`[^`]*{re.escape(name)}\b", section), (path, name)
            if isinstance(parameter, TyperArgument):
                shown = parameter.metavar or str(parameter.name).upper()
                assert f"`{shown}`" in section, (path, shown)
            help_text = getattr(parameter, "help", None)
            if help_text:
                first_words = " ".join(help_text.split()[:3])
                assert first_words.replace("<", "&lt;") in section, (path, first_words)


def test_the_cli_reference_is_plain_markdown() -> None:
    text = CLI_MD.read_text(encoding="utf-8")
    assert "\x1b" not in text
    assert not set("╭╰│━┃") & set(text)
    assert max(len(line) for line in text.splitlines() if line.startswith("```")) <= 10


def test_the_result_format_documents_every_field_column_and_warning_code() -> None:
    sections = _sections(RESULT_FORMAT_MD.read_text(encoding="utf-8"))
    result_fields = sections["ExperimentResult"]
    for field in ExperimentResult.model_fields:
        assert f"| `{field}` |" in result_fields, field
    timeseries = sections["The timeseries"]
    for column in TIMESERIES_COLUMNS:
        assert f"| `{column}` |" in timeseries, column
    warnings = sections["Measurement warnings"]
    for code in WARNING_CODES:
        assert f"| `{code}` |" in warnings, code


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in _HEADING.findall(_FENCE.sub("", page.read_text(encoding="utf-8")))}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_file_and_anchor_a_page_names_exists(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text, "a clone has no ../shared: say it in the repository"
    prose = _FENCE.sub("", text)
    for target in _LINK.findall(prose):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        assert linked.exists(), f"{page.relative_to(ROOT)}: link to {target}: no such file"
        assert linked.is_relative_to(ROOT), f"{page.relative_to(ROOT)}: {target} leaves the repo"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page.relative_to(ROOT)}: no anchor {target}"
    for path in _CODE_PATH.findall(text):
        assert (ROOT / path.removeprefix("./")).exists(), f"{page.relative_to(ROOT)}: {path}"
