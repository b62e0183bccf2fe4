"""The report: which figures a run, a set of runs and a study get, the page that holds them
(self-contained: nothing it would fetch) and the figure files for a paper."""

import base64
import io
import re
from pathlib import Path
from typing import Protocol

import pytest
from matplotlib.image import imread

from llem_report import (
    Experiment,
    ReportError,
    build_report,
    load_experiment,
    load_study,
    render_html,
    write_figures,
    write_html,
)
from llem_schema import MeasurementWarning, StudyManifest
from llem_schema.testing import example_result


class StudyOnDisk(Protocol):
    @property
    def directory(self) -> Path: ...


def images(page: str) -> list[bytes]:
    return [
        base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    ]


def test_a_run_gets_power_energy_latency_figures_and_its_summary(sampled_dir: Path) -> None:
    report = build_report([load_experiment(sampled_dir)])
    assert [f.name for f in report.figures] == [
        "power",
        "energy",
        "latency-by-start",
        "latency-cdf",
    ]
    assert report.notes == ()
    page = render_html(report)
    pictures = images(page)
    assert len(pictures) == page.count("<img ") == 4
    for picture in pictures:
        pixels = imread(io.BytesIO(picture), format="png")
        assert pixels.shape[1] == 880
        assert pixels[..., :3].std() > 0.05  # drawn on, not blank
    result = report.experiments[0].result
    assert f"<h1>{result.experiment_id}</h1>" in page
    assert f"<td>{result.output_tokens:,}</td>" in page
    assert "None: nothing was detected" in page


def test_the_page_fetches_nothing() -> None:
    page = render_html(build_report([example_result()]))
    assert "<script" not in page
    assert "<link" not in page
    assert "@import" not in page
    assert "@font-face" not in page
    assert re.findall(r"(?:src|href)=\"(?!data:)[^\"]*\"", page) == []
    assert re.findall(r"url\(", page) == []


def test_what_cannot_be_drawn_is_a_note_in_the_page() -> None:
    page_report = build_report([example_result()])
    assert [f.name for f in page_report.figures] == ["latency-by-start", "latency-cdf"]
    assert page_report.notes == (
        "Power and energy over time: not drawn: no GPU power was sampled (CPU or no energy source).",
    )
    assert "<h2>Not drawn</h2>" in render_html(page_report)


def test_warnings_are_listed_with_their_codes(sampled_dir: Path) -> None:
    experiment = load_experiment(sampled_dir)
    warned = experiment.result.model_copy(
        update={"measurement_warnings": [MeasurementWarning.of("throttled", "GPU 0 slowed <down>")]}
    )
    page = render_html(build_report([Experiment(warned, timeseries=experiment.timeseries)]))
    assert "<li>throttled: GPU 0 slowed &lt;down&gt;</li>" in page


def test_a_study_gets_the_sweep_figures_and_its_configurations(study_dir: StudyOnDisk) -> None:
    report = build_report(load_study(study_dir.directory))
    assert report.title == "Study grid"
    assert [f.name for f in report.figures] == [
        "latency-cdf",
        "energy-per-token",
        "throughput",
        "pareto",
    ]
    assert report.notes == (
        "Power, energy and per-request figures are drawn for one run at a time, for up to 6 "
        "runs, and not for a study: report a run of it for them.",
    )
    page = render_html(report)
    assert "<h2>Configurations</h2>" in page
    assert "8 completed · swept: pytorch.batch_size, max_new_tokens" in page
    assert page.count("<tr><td>batch_size=") == 4
    assert len(images(page)) == 4


def test_write_html_replaces_the_file_whole(tmp_path: Path, sampled_dir: Path) -> None:
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "report.html"
    target.write_text("old")
    write_html(build_report([load_experiment(sampled_dir)]), target)
    text = target.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert text.endswith("</html>\n")
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


@pytest.mark.parametrize(
    ("format", "magic"), [("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")]
)
def test_figures_are_written_as_files_the_same_each_time(
    tmp_path: Path, sampled_dir: Path, format: str, magic: bytes
) -> None:
    report = build_report([load_experiment(sampled_dir)])
    first = write_figures(report, tmp_path / "a", format)
    again = write_figures(report, tmp_path / "b", format)
    assert [p.name for p in first] == [
        f"01-power.{format}",
        f"02-energy.{format}",
        f"03-latency-by-start.{format}",
        f"04-latency-cdf.{format}",
    ]
    for one, other in zip(first, again, strict=True):
        assert one.read_bytes().startswith(magic)
        assert one.read_bytes() == other.read_bytes()
    if format == "svg":
        drawing = first[0].read_text()
        assert "@font-face" not in drawing
        assert "font-family" not in drawing


def test_an_unknown_figure_format_is_refused(tmp_path: Path) -> None:
    report = build_report([example_result()])
    with pytest.raises(
        ReportError, match="cannot write figures as 'jpg': choose one of png, svg, pdf"
    ):
        write_figures(report, tmp_path, "jpg")
    assert list(tmp_path.iterdir()) == []


def test_no_experiments_is_an_error() -> None:
    with pytest.raises(ReportError, match="no experiments to draw"):
        build_report([])


def test_a_study_page_shows_points_whose_runs_failed(study_dir: StudyOnDisk) -> None:
    manifest = StudyManifest.load(study_dir.directory)
    for entry in manifest.entries:
        if entry.point_index == 0:
            manifest = manifest.with_entry(
                entry.run_index, status="failed", error="CUDA out of memory", result_path=None
            )
    manifest.save(study_dir.directory)
    page = render_html(build_report(load_study(study_dir.directory)))
    assert "<tr><td>batch_size=1, max_new_tokens=8</td><td>0 of 2</td><td>\N{EN DASH}</td>" in page
    assert "<tr><td>batch_size=4, max_new_tokens=16</td><td>2 of 2</td>" in page
    assert "<li>batch_size=1, max_new_tokens=8, run 0: failed: CUDA out of memory</li>" in page


def test_a_study_with_nothing_completed_is_an_error(study_dir: StudyOnDisk) -> None:
    manifest = StudyManifest.load(study_dir.directory)
    for entry in manifest.entries:
        manifest = manifest.with_entry(
            entry.run_index, status="failed", error="no GPU", result_path=None
        )
    manifest.with_status("failed").save(study_dir.directory)
    with pytest.raises(
        ReportError, match="study grid_2026-11-22T14-03-05 has no completed run to draw"
    ):
        load_study(study_dir.directory)
