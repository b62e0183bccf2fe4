"""Write the reference parts of llem's documentation from the code, or check that they are current.

- ``docs/cli.md``, whole: every ``llem`` command and subcommand, its usage line, its help, and
  its arguments and options with their help and defaults, read from the Typer app's command
  tree (what ``llem COMMAND --help`` prints, without a terminal: no width, no colours).
- ``docs/result-format.md``, between its ``<!-- generated: NAME -->`` and
  ``<!-- end generated: NAME -->`` markers: the fields of ``result.json`` (from the JSON Schema
  of ``llem_schema.ExperimentResult`` and the models it holds, their descriptions included)
  and the measurement-warning codes (``llem_schema.WARNING_CODES``). The prose around them is
  written by hand.

Run from anywhere in the workspace::

    uv run python scripts/generate_docs.py           # rewrite what is out of date
    uv run python scripts/generate_docs.py --check   # exit 1 naming what is out of date

``tests/test_docs.py`` runs the check, so a changed command or field fails the tests until the
documents are regenerated.
"""

import argparse
import inspect
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from llem.cli import command as llem_command
from llem.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE
from llem_schema import WARNING_CODES
from llem_schema.json_schema import json_schema

__all__ = [
    "DOCUMENTS",
    "ROOT",
    "Document",
    "main",
    "render_cli_reference",
    "render_result_format",
]

ROOT: Final = Path(__file__).resolve().parents[1]
COMMAND: Final = "uv run python scripts/generate_docs.py"

Command = TyperCommand | TyperGroup


# --- Markdown ------------------------------------------------------------------------------

_CODE_SPAN: Final = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_RST_ROLE: Final = re.compile(r":[a-z]+:`~?(?:[\w.]*\.)?([^`]+)`")


def _prose(text: str, *, in_table: bool = False) -> str:
    """``text`` (a docstring or a help string) as one line of Markdown: reST's ``x`` and
    :role:`x` become code spans; outside code spans ``<`` is escaped (GitHub would take
    ``<output>`` for an HTML tag), and in a table ``|`` is escaped everywhere."""
    text = _RST_ROLE.sub(r"`\1`", text.replace("``", "`"))
    text = " ".join(text.split())
    parts: list[str] = []
    position = 0
    for match in _CODE_SPAN.finditer(text):
        parts.append(_escape(text[position : match.start()], in_table=in_table))
        code = match.group(0)
        parts.append(code.replace("|", r"\|") if in_table else code)
        position = match.end()
    parts.append(_escape(text[position:], in_table=in_table))
    return "".join(parts)


def _escape(text: str, *, in_table: bool) -> str:
    text = text.replace("<", "&lt;")
    return text.replace("|", r"\|") if in_table else text


def _code(text: str, *, in_table: bool = False) -> str:
    return f"`{text.replace('|', chr(92) + '|')}`" if in_table else f"`{text}`"


def _paragraphs(text: str | None) -> list[str]:
    """A docstring's paragraphs, each joined into one line (``\\f`` ends the help, as in
    click)."""
    if not text:
        return []
    text = inspect.cleandoc(text.split("\f", 1)[0])
    return [_prose(block) for block in re.split(r"\n\s*\n", text) if block.strip()]


def _table(header: tuple[str, str], rows: Sequence[tuple[str, str]]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {left} | {right} |" for left, right in rows]
    return lines


# --- The command line ----------------------------------------------------------------------


def _command_tree() -> Iterator[tuple[Command, typer.Context, int]]:
    """Every command that is not hidden, depth first in the order ``--help`` lists them, with
    its context (whose ``command_path`` is ``llem results list``) and its depth (0: ``llem``)."""
    root = llem_command()
    if not isinstance(root, TyperGroup):
        raise TypeError(f"llem.cli.app should be a group of commands, not {type(root)}")

    def walk(
        command: Command, context: typer.Context, depth: int
    ) -> Iterator[tuple[Command, typer.Context, int]]:
        yield command, context, depth
        if isinstance(command, TyperGroup):
            for name in command.list_commands(context):
                child = command.get_command(context, name)
                if child is None or child.hidden:
                    continue
                if not isinstance(child, TyperCommand | TyperGroup):
                    raise TypeError(f"{context.command_path} {name}: not a Typer command")
                yield from walk(
                    child, typer.Context(child, info_name=name, parent=context), depth + 1
                )

    yield from walk(root, typer.Context(root, info_name="llem"), 0)


def _anchor(command_path: str) -> str:
    """GitHub's anchor of a heading ``llem results list`` (in a code span)."""
    return command_path.replace(" ", "-")


def _parameter_rows(
    command: Command, context: typer.Context
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The arguments' and the options' (name with type, help with default) as ``--help`` has
    them, ``--help`` itself left out."""
    arguments: list[tuple[str, str]] = []
    options: list[tuple[str, str]] = []
    for parameter in command.get_params(context):
        if parameter.name == "help":
            continue
        if not isinstance(parameter, TyperArgument | TyperOption):
            raise TypeError(f"{context.command_path}: {parameter.name} is not a Typer parameter")
        record = parameter.get_help_record(context)
        if record is None:  # hidden
            continue
        name, help_text = record
        row = (_code(" ".join(name.split()), in_table=True), _prose(help_text, in_table=True))
        (arguments if isinstance(parameter, TyperArgument) else options).append(row)
    return arguments, options


def render_cli_reference() -> str:
    """``docs/cli.md``."""
    commands = list(_command_tree())
    lines = [
        "# Command-line reference",
        "",
        f"<!-- Generated from the commands themselves by scripts/generate_docs.py; do not edit "
        f"by hand. After changing a command, run `{COMMAND}`. -->",
        "",
        "Every command, as `llem COMMAND --help` prints it. In a usage line `[X]` may be left "
        "out, `{X}` must be given, and `X...` may be given more than once; every command also "
        "takes `--help`. Where the help says `env var`, that environment variable is read when "
        "the option is not given.",
        "",
        f"Exit codes: {EXIT_OK} done; {EXIT_FAILURE} a failure (a run or a file that failed); "
        f"{EXIT_USAGE} a mistake in the command or its config (one line says which); "
        f"{EXIT_INTERRUPTED} interrupted (Ctrl-C; {EXIT_TERMINATED} for a run stopped by "
        "SIGTERM).",
        "",
        "## Commands",
        "",
    ]
    for command, context, depth in commands[1:]:
        summary = (_paragraphs(command.help) or [""])[0]
        path = context.command_path
        lines.append(f"{'  ' * (depth - 1)}- [`{path}`](#{_anchor(path)}): {summary}")
    for command, context, depth in commands:
        path = context.command_path
        usage = " ".join([path, *command.collect_usage_pieces(context)])
        lines += ["", f"{'#' * (2 if depth <= 1 else 3)} `{path}`", "", "```text", usage, "```"]
        for paragraph in _paragraphs(command.help):
            lines += ["", paragraph]
        arguments, options = _parameter_rows(command, context)
        if arguments:
            lines += ["", *_table(("argument", "what it is"), arguments)]
        if options:
            lines += ["", *_table(("option", "what it does"), options)]
        children = [ctx.command_path for _, ctx, _ in commands if ctx.parent is context]
        if children and depth > 0:
            links = ", ".join(f"[`{child}`](#{_anchor(child)})" for child in children)
            lines += ["", f"Subcommands: {links}."]
    return "\n".join(lines) + "\n"


# --- The result format ---------------------------------------------------------------------


def _type(schema: dict[str, Any]) -> str:
    """A JSON Schema type in words: ``number ≥ 0 or null``, ``array of [RequestRecord](#...)``."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return "any JSON value" if name == "JsonValue" else f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_type(option) for option in schema["anyOf"])
    if "const" in schema:
        return f"`{schema['const']}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        if "prefixItems" in schema:
            return "[" + ", ".join(_type(item) for item in schema["prefixItems"]) + "]"
        return "array of " + _type(schema.get("items", {}))
    if kind == "object":
        values = schema.get("additionalProperties")
        return "object of " + _type(values) if isinstance(values, dict) else "object"
    if kind == "string" and schema.get("format") == "date-time":
        return "date-time string (ISO 8601, with its UTC offset)"
    words = str(kind) if kind else "any JSON value"
    if "minimum" in schema:
        words += f" ≥ {schema['minimum']}"
    if "exclusiveMinimum" in schema:
        words += f" > {schema['exclusiveMinimum']}"
    if "minLength" in schema:
        words += ", not empty"
    if "pattern" in schema:
        words += f" matching `{schema['pattern']}`"
    return words


def _models(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``ExperimentResult`` and every model it holds, each once, in the order they are first
    met going through the fields."""
    definitions: dict[str, dict[str, Any]] = schema["$defs"]
    order: list[str] = []
    pending: list[tuple[str, dict[str, Any]]] = [("ExperimentResult", schema)]
    found: dict[str, dict[str, Any]] = {}
    while pending:
        name, model = pending.pop(0)
        if name in found:
            continue
        found[name] = model
        order.append(name)
        for field in model.get("properties", {}).values():
            for reference in re.findall(r"#/\$defs/(\w+)", repr(field)):
                if reference != "JsonValue" and reference not in found:
                    pending.append((reference, definitions[reference]))
    return [(name, found[name]) for name in order]


def render_result_fields() -> str:
    """The generated section ``result fields`` of ``docs/result-format.md``."""
    schema = json_schema("result")
    lines: list[str] = []
    for name, model in _models(schema):
        required = set(model.get("required", []))
        lines += [f"### {name}", ""]
        for paragraph in _paragraphs(model.get("description")):
            lines += [paragraph, ""]
        lines += ["| field | type | meaning |", "|---|---|---|"]
        for field, spec in model["properties"].items():
            kind = _type(spec)
            if field not in required and "default" in spec:
                kind += f"; default {_code(_json(spec['default']))}"
            meaning = spec.get("description", "")
            lines.append(
                f"| {_code(field)} | {_prose(kind, in_table=True)} | "
                f"{_prose(meaning, in_table=True)} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def _json(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def render_warning_codes() -> str:
    """The generated section ``warning codes`` of ``docs/result-format.md``."""
    rows = [
        (_code(code), _prose(meaning, in_table=True)) for code, meaning in WARNING_CODES.items()
    ]
    return "\n".join(_table(("code", "what it means"), rows))


SECTIONS: Final[dict[str, Callable[[], str]]] = {
    "result fields": render_result_fields,
    "warning codes": render_warning_codes,
}


def render_result_format(current: str) -> str:
    """``docs/result-format.md`` as ``current`` is, its generated sections rendered anew."""
    text = current
    for name, render in SECTIONS.items():
        begin = f"<!-- generated: {name} (scripts/generate_docs.py; do not edit by hand) -->"
        end = f"<!-- end generated: {name} -->"
        pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.DOTALL)
        matches = list(pattern.finditer(text))
        if len(matches) != 1:
            raise ValueError(
                f"docs/result-format.md must hold the markers of section {name!r} once each:\n"
                f"{begin}\n{end}"
            )
        (match,) = matches
        text = f"{text[: match.start()]}{begin}\n\n{render()}\n\n{end}{text[match.end() :]}"
    return text


# --- The entry point -----------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """One generated document: its path in the repository, and how it is rendered from what
    the file holds now (the generated sections of a page written by hand are replaced)."""

    relative: str
    render: Callable[[str], str]

    def check(self, root: Path) -> tuple[Path, str] | None:
        """``(path, expected text)`` where the file under ``root`` differs from it, else None."""
        path = root / self.relative
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        expected = self.render(current)
        return None if expected == current else (path, expected)


DOCUMENTS: Final = (
    Document("docs/cli.md", lambda _: render_cli_reference()),
    Document("docs/result-format.md", render_result_format),
)


def main(argv: Sequence[str] | None = None, *, root: Path = ROOT) -> int:
    """Rewrite the documents under ``root`` that are out of date (with ``--check``: name them
    on stderr and return 1, writing nothing)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 naming what is out of date"
    )
    args = parser.parse_args(argv)
    stale = [
        (document, found) for document in DOCUMENTS if (found := document.check(root)) is not None
    ]
    for document, (path, expected) in stale:
        if args.check:
            print(f"{document.relative} is out of date: run `{COMMAND}`", file=sys.stderr)
        else:
            path.write_text(expected, encoding="utf-8")
            print(f"wrote {document.relative}")
    if not stale:
        print(f"{', '.join(document.relative for document in DOCUMENTS)}: current")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
