"""Thermal settling between runs (which gap, the countdown's plain mode, Enter to skip) and the
study's progress lines."""

import contextlib
import io
import os
from collections.abc import Iterator

import pytest

from llem_harness.study.display import PlainDisplay, RunLabel, StudyDisplay
from llem_harness.study.gaps import EnterSkips, NeverSkip, countdown_text, gap_s, gaps_between
from llem_schema import StudyConfig


def study(**settings: object) -> StudyConfig:
    return StudyConfig.model_validate(
        {
            "name": "gaps",
            "base": {"n": 1},
            "gap_between_experiments_s": 30.0,
            "gap_between_cycles_s": 120.0,
        }
        | settings
    )


def test_no_gap_before_the_first_run_the_cycle_gap_when_a_new_cycle_begins() -> None:
    config = study()  # interleaved: a pass over the points, then the next cycle
    assert gap_s(config, None, (0, 0)) == 0.0
    assert gap_s(config, (0, 0), (1, 0)) == 30.0
    assert gap_s(config, (1, 0), (0, 1)) == 120.0  # instead of the experiment gap, not on top
    runs = [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    assert gaps_between(config, runs) == [30.0, 30.0, 120.0, 30.0, 30.0]
    assert gaps_between(config, [(0, 0)]) == []  # and none after the last run
    assert gaps_between(study(gap_between_experiments_s=0.0), [(0, 0), (1, 0)]) == [0.0]


def test_in_sequential_order_the_cycle_gap_separates_the_cycles_of_a_point() -> None:
    config = study(order="sequential")
    runs = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert gaps_between(config, runs) == [120.0, 120.0, 30.0, 120.0, 120.0]


def test_countdown_text_says_whether_enter_skips() -> None:
    assert countdown_text(41.2, skippable=True) == "thermal settling: 42 s, Enter skips"
    assert countdown_text(0.0, skippable=False) == "thermal settling: 0 s"


def test_the_plain_countdown_is_one_line_per_gap() -> None:
    stream = io.StringIO()
    display = PlainDisplay(stream)
    for remaining in (42.0, 30.5, 0.1):
        display.settling(remaining, skippable=False)
    display.settling(None, skippable=False)
    display.settling(10.0, skippable=False)
    assert stream.getvalue() == "thermal settling: 42 s\nthermal settling: 10 s\n"


@pytest.fixture
def pipe() -> Iterator[tuple[io.TextIOWrapper, int]]:
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "r")
    yield reader, write_fd
    reader.close()
    with contextlib.suppress(OSError):
        os.close(write_fd)


def test_enter_skips_once_per_line_and_stops_at_end_of_input(
    pipe: tuple[io.TextIOWrapper, int],
) -> None:
    reader, write_fd = pipe
    skip = EnterSkips(reader)
    assert skip.skippable
    assert not skip.pressed()  # nothing typed: never blocks
    os.write(write_fd, b"\n")
    assert skip.pressed()
    assert not skip.pressed()
    os.close(write_fd)  # Ctrl-D
    assert not skip.pressed()
    assert not skip.pressed()
    assert not NeverSkip().pressed()


def test_lines_typed_before_a_gap_are_drained_and_do_not_skip_it(
    pipe: tuple[io.TextIOWrapper, int],
) -> None:
    reader, write_fd = pipe
    skip = EnterSkips(reader)
    os.write(write_fd, b"\n\n\n")  # typed while a run was going
    skip.drain()
    assert not skip.pressed()
    os.write(write_fd, b"\n")  # pressed during the gap
    assert skip.pressed()


def label(run_index: int = 2, device: str | None = None) -> RunLabel:
    return RunLabel(
        run_index=run_index,
        total=8,
        point_index=1,
        overrides={"pytorch.batch_size": 8},
        cycle=0,
        device=device,
    )


def test_plain_progress_is_one_line_per_run_start_and_end() -> None:
    stream = io.StringIO()
    display = PlainDisplay(stream)
    display.begin(8, 2)
    display.started(label())
    display.finished(label(), "completed in 12.3 s")
    display.started(label(3, device="1"))
    display.finished(label(3, device="1"), "failed: timed out after 60 s")
    display.end()
    assert stream.getvalue().splitlines() == [
        "[3/8] point 1 (pytorch.batch_size=8) cycle 0: started",
        "[3/8] point 1 (pytorch.batch_size=8) cycle 0: completed in 12.3 s",
        "[4/8] point 1 (pytorch.batch_size=8) cycle 0 on device 1: started",
        "[4/8] point 1 (pytorch.batch_size=8) cycle 0 on device 1: failed: timed out after 60 s",
    ]


def test_the_plain_display_writes_notes_and_countdowns_in_order() -> None:
    # The library draws no progress bar (the llem command's display does): this is what a
    # study shows by default, on stderr.
    stream = io.StringIO()
    display: StudyDisplay = PlainDisplay(stream)
    display.begin(8, 2)
    display.started(label())
    display.finished(label(), "completed in 12.3 s")
    display.settling(41.5, skippable=True)
    display.settling(20.0, skippable=True)
    display.settling(None, skippable=True)
    display.note("a note")
    display.finished(label(3), "interrupted", counted=False)
    display.end()
    assert stream.getvalue().splitlines() == [
        "[3/8] point 1 (pytorch.batch_size=8) cycle 0: started",
        "[3/8] point 1 (pytorch.batch_size=8) cycle 0: completed in 12.3 s",
        "thermal settling: 42 s, Enter skips",
        "a note",
        "[4/8] point 1 (pytorch.batch_size=8) cycle 0: interrupted",
    ]


def test_the_plain_display_writes_to_stderr_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    display = PlainDisplay()
    display.note("a note")
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "a note\n")


def test_the_nvml_thermometer_reads_the_hottest_gpu_a_lane_runs_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llem_energy import nvml as nvml_module
    from llem_energy.testing import FakeGpu, FakeNvml
    from llem_harness.study.gaps import NvmlThermometer

    gpus = [
        FakeGpu(uuid="GPU-t0", temperature_c=50.0, temperature_rise_c_per_s=0.0),
        FakeGpu(uuid="GPU-t1", temperature_c=62.0, temperature_rise_c_per_s=0.0),
    ]
    fake = FakeNvml(gpus)
    monkeypatch.setattr(nvml_module, "load_nvml", lambda: fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("LLEM_SIMULATED_GPUS", raising=False)
    thermometer = NvmlThermometer()
    assert thermometer.hottest_c(None) == 62.0  # every GPU this process sees
    assert thermometer.hottest_c("0") == 50.0  # a lane pinned to GPU 0
    thermometer.close()
    assert fake.init_count == 0


def test_without_nvml_the_thermometer_reads_nothing_and_says_why_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from llem_energy import nvml as nvml_module
    from llem_energy.testing import FakeNvml
    from llem_harness.study.gaps import NvmlThermometer

    monkeypatch.setattr(nvml_module, "load_nvml", lambda: FakeNvml(library_missing=True))
    monkeypatch.delenv("LLEM_SIMULATED_GPUS", raising=False)
    thermometer = NvmlThermometer()
    assert thermometer.hottest_c(None) is None
    assert thermometer.hottest_c(None) is None
    said = [r.getMessage() for r in caplog.records if "cooldown" in r.getMessage()]
    assert len(said) == 1
    assert said[0].startswith("the cooldown cannot read GPU temperatures (NVML initialisation")
