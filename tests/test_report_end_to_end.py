"""`llem report` on a real run of the built-in tiny model (one simulated GPU, so the whole
power path runs: sampler, sidecar, baseline) and on a 2x2 study, each page opened in a real
headless Chromium: it loads from disk with no request leaving the file, every figure is
decoded and drawn on, and it fits a laptop's width."""

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pytest
from matplotlib.image import imread

from llem_report import (
    build_report,
    cumulative_energy,
    latency_cdfs,
    latency_over_time,
    load_experiment,
    power_over_time,
    write_html,
)
from llem_schema.testing import example_result, example_study

pytestmark = pytest.mark.slow


class Browser(Protocol):
    def open(self, page: Path, *, width: int = 1280, height: int = 800) -> list[str]: ...
    def script(self, source: str) -> Any: ...
    def screenshots(self, selector: str) -> list[bytes]: ...


def llem(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llem", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


@dataclass(frozen=True)
class RealRun:
    result_dir: Path
    page: Path
    figures: Path
    reported: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory, llem_cache: Path) -> RealRun:
    root = tmp_path_factory.mktemp("report")
    env = os.environ | {
        "LLEM_CACHE_DIR": str(llem_cache),
        "XDG_CACHE_HOME": str(llem_cache),
        "HF_HUB_OFFLINE": "1",
        "LLEM_SIMULATED_GPUS": "1",
    }
    ran = llem(
        "run",
        "-n",
        "24",
        "--max-new-tokens",
        "8",
        "--set",
        "baseline.duration_s=0.5",
        "--set",
        "energy.sample_rate_hz=50",
        "-o",
        str(root / "results"),
        env=env,
    )
    assert ran.returncode == 0, ran.stderr
    experiment_id = ran.stdout.splitlines()[-1].removeprefix("id: ")
    page, figures = root / "report.html", root / "figures"
    db = str(root / "results" / "llem.db")
    reported = llem(
        "report",
        experiment_id,
        "-o",
        str(page),
        "--figures",
        str(figures),
        "--format",
        "pdf",
        "--db",
        db,
        env=env,
    )
    assert reported.returncode == 0, reported.stderr
    return RealRun(root / "results" / experiment_id, page, figures, reported)


def test_each_figure_function_draws_the_real_run(real_run: RealRun) -> None:
    experiment = load_experiment(real_run.result_dir)
    result = experiment.result
    assert experiment.timeseries is not None
    power = power_over_time(experiment)
    (gpu,) = [
        line for line in power.axes[0].get_lines() if str(line.get_label()).startswith("GPU 0")
    ]
    assert len(np.asarray(gpu.get_xdata())) == experiment.timeseries.num_rows
    energy = cumulative_energy(experiment)
    (sampled,) = [e for p in result.process_results for e in p.energy if e.domain == "gpu"]
    assert sampled.integrated_energy_j is not None
    ends = {
        str(line.get_label()).split(":")[0]: float(np.asarray(line.get_ydata())[-1])
        for line in energy.axes[0].get_lines()
    }
    # the result integrates every sample, the one just after the window too; the figure stops
    # at the window's end: they differ by at most one sampling period's energy
    assert experiment.timeseries is not None
    peak_w = float(np.nanmax(experiment.timeseries.column("gpu_power_w").to_numpy()))
    drawn_j = ends["GPU 0 (llem simulated GPU)"]
    assert drawn_j == pytest.approx(sampled.integrated_energy_j, abs=peak_w / 50 * 1.05)
    assert drawn_j <= sampled.integrated_energy_j
    cdfs = latency_cdfs(experiment)
    ttft = np.asarray(cdfs.axes[0].get_lines()[0].get_xdata())
    assert len(ttft) == 24 + 1
    assert result.latency.ttft is not None
    assert ttft.max() == pytest.approx(result.latency.ttft.max_ms)
    by_start = latency_over_time(experiment)
    assert len(np.asarray(by_start.axes[0].collections[0].get_offsets())) == 24


def test_the_figures_are_written_as_pdf_files(real_run: RealRun) -> None:
    names = sorted(p.name for p in real_run.figures.iterdir())
    assert names == [
        "01-power.pdf",
        "02-energy.pdf",
        "03-latency-by-start.pdf",
        "04-latency-cdf.pdf",
    ]
    assert all((real_run.figures / name).read_bytes().startswith(b"%PDF") for name in names)
    assert real_run.reported.stdout.startswith(f"report: {real_run.page} (")
    assert real_run.reported.stdout.endswith(" MB, 4 figures)\n")


def assert_drawn(shot: bytes) -> None:
    """The screenshot shows a figure: not one colour, and ink on a good share of it."""
    pixels = imread(io.BytesIO(shot), format="png")[..., :3]
    assert pixels.std() > 0.05
    assert (pixels.mean(axis=2) < 0.9).mean() > 0.01


IMAGES = "return [...document.images].map(i => [i.alt, i.complete, i.naturalWidth, i.getBoundingClientRect().width])"
OVERFLOW = "return document.documentElement.scrollWidth - window.innerWidth"


def test_the_report_opens_from_disk_and_fetches_nothing(
    real_run: RealRun, browser: Browser
) -> None:
    requested = browser.open(real_run.page)
    assert requested[0] == real_run.page.resolve().as_uri()
    assert [url for url in requested[1:] if not url.startswith("data:image/png;base64,")] == []
    images = browser.script(IMAGES)
    assert images == [
        ["Power and temperature", True, 880, 880],
        ["Cumulative energy", True, 880, 880],
        ["Latency by request start", True, 880, 880],
        ["Latency distributions", True, 880, 880],
    ]
    shots = browser.screenshots("figure img")
    assert len(shots) == 4
    for shot in shots:
        assert_drawn(shot)
    assert browser.script(OVERFLOW) <= 0  # no sideways scrolling


def test_the_report_fits_a_small_laptop(real_run: RealRun, browser: Browser) -> None:
    browser.open(real_run.page, width=800, height=700)
    assert browser.script(OVERFLOW) <= 0  # no sideways scrolling
    widths = browser.script("return [...document.images].map(i => i.getBoundingClientRect().width)")
    assert isinstance(widths, list)
    assert all(0 < width < 800 for width in widths)


def test_long_unbroken_text_does_not_widen_the_page(tmp_path: Path, browser: Browser) -> None:
    path = "/".join(["a-very-long-directory-name"] * 14)
    warned = example_result(measurement_warnings=[f"no baseline for /{path}/result.json"])
    page = write_html(build_report([warned]), tmp_path / "long.html")
    browser.open(page, width=800, height=700)
    assert browser.script(OVERFLOW) <= 0


def test_a_2x2_study_report_shows_the_sweep_and_the_pareto_front(
    tmp_path: Path, llem_env: dict[str, str], browser: Browser
) -> None:
    study = example_study(tmp_path)
    page = tmp_path / "study.html"
    reported = llem("report", "--study", str(study), "-o", str(page), env=llem_env)
    assert reported.returncode == 0, reported.stderr
    requested = browser.open(page)
    assert [url for url in requested[1:] if not url.startswith("data:image/png;base64,")] == []
    images = browser.script(IMAGES)
    assert images == [
        [alt, True, 880, 880]
        for alt in (
            "Latency distributions",
            "Energy per output token",
            "Throughput",
            "Energy against p99 latency",
        )
    ]
    for shot in browser.screenshots("figure img"):
        assert_drawn(shot)
    rows = browser.script("return [...document.querySelectorAll('h2')].map(h => h.textContent)")
    assert rows == ["Configurations", "Summary", "Warnings", "Figures", "Not drawn"]
