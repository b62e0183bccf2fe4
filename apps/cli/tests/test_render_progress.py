"""The Rich progress bars of ``llem run`` on a terminal, fed the events the harness sends."""

import io

from rich.console import Console

from llem.render.progress import RichProgress
from llem_harness import ProgressEvent


def stage_of(progress: RichProgress) -> str | None:
    return progress.stage  # read afresh each time (a type checker would keep a narrowed one)


def terminal() -> tuple[RichProgress, io.StringIO]:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100, color_system=None)
    return RichProgress(console), screen


def test_each_stage_gets_its_bar_and_notes_print_between() -> None:
    progress, screen = terminal()
    progress(ProgressEvent("note", message="experiment x: 4 prompts"))
    progress(ProgressEvent("start", "inference", total=4))
    for done in range(1, 5):
        progress(ProgressEvent("advance", "inference", done, 4))
    progress(ProgressEvent("end", "inference", 4, 4, elapsed_s=1.0))
    text = screen.getvalue()
    assert "experiment x: 4 prompts" in text
    assert "inference" in text
    assert "4/4" in text
    assert stage_of(progress) is None  # the bar stopped with its stage


def test_the_late_end_of_another_stage_leaves_the_current_bar_alone() -> None:
    # in a run of two processes, one starts warming up while the other still loads: the
    # merged stream ends "loading" after "warmup" started
    progress, screen = terminal()
    progress(ProgressEvent("start", "loading m"))
    progress(ProgressEvent("start", "warmup", total=6))
    progress(ProgressEvent("end", "loading m", elapsed_s=2.0))
    assert stage_of(progress) == "warmup"  # its bar still runs
    progress(ProgressEvent("advance", "warmup", 3, 6))
    progress(ProgressEvent("end", "warmup", 6, 6, elapsed_s=1.0))
    assert stage_of(progress) is None
    assert "6/6" in screen.getvalue()


def test_close_stops_the_bar_of_a_run_that_failed_mid_stage() -> None:
    progress, _ = terminal()
    progress(ProgressEvent("start", "inference", total=10))
    progress(ProgressEvent("advance", "inference", 3, 10))
    live = progress._progress
    assert live is not None
    started = [live.live.is_started]
    progress.close()
    started.append(live.live.is_started)
    assert started == [True, False]  # the terminal is handed back
    assert stage_of(progress) is None
    progress.close()  # twice is harmless
