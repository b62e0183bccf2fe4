"""``llem report``: a page and figure files from experiments in the store or a study directory,
and a one-line error (exit 2) for what cannot be done, with nothing written."""

import re
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest

from llem_schema.testing import example_study


class Outcome(Protocol):
    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


Llem = Callable[..., Outcome]


def test_a_report_of_two_experiments_is_one_page(llem: Llem, results: Path, tmp_path: Path) -> None:
    page = tmp_path / "out.html"
    outcome = llem("report", "exp_0", "exp_2", "-o", str(page), "--db", str(results / "llem.db"))
    assert outcome.exit_code == 0, outcome.stderr
    assert re.fullmatch(
        rf"report: {re.escape(str(page))} \(0\.\d MB, 6 figures\)\n", outcome.stdout
    )
    text = page.read_text(encoding="utf-8")
    assert text.count("<img ") == 6
    assert re.findall(r"<h3>([^<]+)</h3>", text) == [
        "Latency by request start (exp_0)",
        "Latency by request start (exp_2)",
        "Latency distributions",
        "Energy per output token",
        "Throughput",
        "Energy against p99 latency",
    ]
    assert "<h1>2 experiments</h1>" in text
    assert "note: Power and energy over time (exp_0): not drawn:" in outcome.stderr


def test_figures_are_written_for_a_paper(llem: Llem, results: Path, tmp_path: Path) -> None:
    folder = tmp_path / "figures"
    db = str(results / "llem.db")
    outcome = llem("report", "exp_0", "--figures", str(folder), "--format", "svg", "--db", db)
    assert outcome.exit_code == 0, outcome.stderr
    assert sorted(p.name for p in folder.iterdir()) == [
        "01-latency-by-start.svg",
        "02-latency-cdf.svg",
    ]
    assert "figures: 2 svg files in" in outcome.stderr
    assert outcome.stdout == ""  # only figures asked for: no page
    again = llem("report", "exp_0", "--figures", str(folder), "--format", "svg", "--db", db)
    assert again.exit_code == 2
    assert again.stderr == (
        f"error: {folder} already holds figures (01-latency-by-start.svg, ...); pass --overwrite "
        "to replace them\n"
    )
    replaced = llem(
        "report", "exp_0", "--figures", str(folder), "--format", "svg", "--overwrite", "--db", db
    )
    assert replaced.exit_code == 0, replaced.stderr


def test_an_existing_page_is_kept_unless_overwrite(
    llem: Llem, results: Path, tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    page.write_text("mine")
    db = str(results / "llem.db")
    outcome = llem("report", "exp_0", "-o", str(page), "--db", db)
    assert outcome.exit_code == 2
    assert outcome.stderr == f"error: {page} exists; choose another file, or pass --overwrite\n"
    assert page.read_text() == "mine"
    assert llem("report", "exp_0", "-o", str(page), "--overwrite", "--db", db).exit_code == 0
    assert page.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give the experiment ids to report, or --study DIR"),
        (("exp_0", "--study", "x"), "give experiment ids or --study DIR, not both"),
        (("nope",), "no experiment 'nope' in "),
    ],
)
def test_what_to_report_must_be_said_once(
    llem: Llem, results: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    page = tmp_path / "r.html"
    outcome = llem("report", *args, "-o", str(page), "--db", str(results / "llem.db"))
    assert outcome.exit_code == 2
    assert message in outcome.stderr
    assert outcome.stderr.count("\n") == 1
    assert not page.exists()


def test_a_folder_that_is_no_study_is_refused(llem: Llem, tmp_path: Path) -> None:
    outcome = llem("report", "--study", str(tmp_path), "-o", str(tmp_path / "r.html"))
    assert outcome.exit_code == 2
    assert (
        outcome.stderr == f"error: {tmp_path} is not a study directory: it has no manifest.json\n"
    )


def test_a_study_directory_gets_its_sweep_and_pareto_figures(llem: Llem, tmp_path: Path) -> None:
    study = example_study(tmp_path, name="pair", sweep={"pytorch.batch_size": [1, 4]})
    page = tmp_path / "study.html"
    outcome = llem("report", "--study", str(study), "-o", str(page))
    assert outcome.exit_code == 0, outcome.stderr
    text = page.read_text(encoding="utf-8")
    assert re.findall(r"<h3>([^<]+)</h3>", text) == [
        "Latency distributions",
        "Energy per output token",
        "Throughput",
        "Energy against p99 latency",
    ]
    assert "<h1>Study pair</h1>" in text


def test_a_missing_folder_is_said_before_anything_is_drawn(
    llem: Llem, results: Path, tmp_path: Path
) -> None:
    db = str(results / "llem.db")
    page = tmp_path / "nowhere" / "r.html"
    figures = tmp_path / "figures"
    outcome = llem("report", "exp_0", "-o", str(page), "--figures", str(figures), "--db", db)
    assert outcome.exit_code == 2
    assert outcome.stderr == f"error: {page.parent} is not a folder: create it first\n"
    assert not figures.exists()


def test_format_goes_with_figures(llem: Llem, results: Path, tmp_path: Path) -> None:
    outcome = llem("report", "exp_0", "--format", "svg", "--db", str(results / "llem.db"))
    assert outcome.exit_code == 2
    assert outcome.stderr == (
        "error: --format is the format of the figure files: give --figures DIR too\n"
    )
