"""Help that reads well: values named by what they are (``-n N``, ``--model MODEL``), never by
a Python type (``<list[str]>``, ``<int range> [x>=0]``); ``llem run``'s defaults shown, and
the same as the config's; a mistyped option answered with the option it is close to."""

import re
from collections.abc import Callable, Iterator
from typing import Protocol

import pytest
from typer.core import TyperGroup

from llem.cli import command
from llem_schema import ExperimentConfig


class Outcome(Protocol):
    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


Llem = Callable[..., Outcome]


def command_paths() -> Iterator[list[str]]:
    def walk(group: TyperGroup, path: list[str]) -> Iterator[list[str]]:
        for name, sub in group.commands.items():
            yield [*path, name]
            if isinstance(sub, TyperGroup):
                yield from walk(sub, [*path, name])

    yield []
    yield from walk(command(), [])


@pytest.mark.parametrize("path", list(command_paths()), ids=" ".join)
def test_no_help_names_a_python_type_or_a_range_in_brackets(llem: Llem, path: list[str]) -> None:
    outcome = llem(*path, "--help")
    assert outcome.exit_code == 0, outcome.stderr
    for token in ("<str>", "<int", "<float>", "<bool>", "<path>", "list[", "x>=", "│"):
        assert token not in outcome.stdout, (path, token)


def test_run_names_its_values_and_shows_the_configs_defaults(llem: Llem) -> None:
    shown = llem("run", "--help").stdout
    lines = " ".join(shown.split())
    assert "-n, --num-prompts N Number of prompts to measure. [default: 100]" in lines
    assert "--precision fp32|fp16|bf16" in lines
    assert "-s, --set KEY=VALUE" in lines
    config = ExperimentConfig()
    expected = {
        "--backend": config.backend,
        "--model": config.model,
        "--dataset": config.prompts.source,
        "--num-prompts": str(config.n),
        "--batch-size": "1",  # the pytorch backend's default
        "--precision": config.precision,
        "--max-new-tokens": str(config.max_new_tokens),
        "--num-processes": str(config.num_processes),
        "--request-rate": str(config.load.request_rate),
        "--max-concurrency": "no limit" if config.load.max_concurrency is None else "?",
        "--energy": config.energy.source,
        "--output": config.output_dir,
        # the launcher's, not the config's
        "--launcher": "auto",
        "--nodes": "1",
        "--gpus-per-node": "none asked for; num_processes spread over the nodes",
    }
    for option, default in expected.items():
        found = re.search(rf"{option} [^ ]+ [^\[]*\[default: ([^\]]+)\]", lines)
        assert found is not None, option
        assert found[1] == default, option
    assert lines.count("[default:") == len(expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--modell", "x"], "no such option --modell (did you mean --model?)"),
        (["results", "list", "--limt", "3"], "no such option --limt (did you mean --limit?)"),
        (["run", "--bogus"], "no such option --bogus"),  # nothing is near it
    ],
)
def test_a_mistyped_option_suggests_only_what_is_near_it(
    llem: Llem, args: list[str], message: str
) -> None:
    outcome = llem(*args)
    assert outcome.exit_code == 2
    assert outcome.stderr.rstrip().splitlines()[-1] == f"Error: {message}"


def test_a_negative_limit_is_one_line_exit_2(llem: Llem) -> None:
    outcome = llem("results", "list", "--limit", "-1")
    assert (outcome.exit_code, outcome.stderr) == (2, "error: --limit -1: give 0 or more\n")
