import io

import pytest

from llem_harness.progress import MergedProgress, PrintProgress, ProgressEvent, Stages


def test_plain_progress_reports_start_tenths_and_end() -> None:
    stream = io.StringIO()
    stages = Stages(PrintProgress(stream))
    with stages.stage("inference", total=20) as advance:
        for _ in range(20):
            advance(1)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "inference ..."
    assert lines[1:10] == [f"inference: {2 * i}/20" for i in range(1, 10)]
    assert lines[-1].startswith("inference: done 20/20 in ")
    assert len(lines) == 11


def test_plain_progress_without_a_total_and_notes() -> None:
    stream = io.StringIO()
    stages = Stages(PrintProgress(stream, prefix="[rank 0] "))
    with stages.stage("loading m"):
        stages.note("on cpu")
    assert stream.getvalue().splitlines()[:2] == ["[rank 0] loading m ...", "[rank 0] on cpu"]
    assert stream.getvalue().splitlines()[2].startswith("[rank 0] loading m: done in ")
    assert len(stream.getvalue().splitlines()) == 3


def test_a_stage_run_again_reports_its_tenths_again() -> None:
    stream = io.StringIO()
    stages = Stages(PrintProgress(stream))
    for _ in range(2):
        with stages.stage("warmup", total=2) as advance:
            advance(1)
            advance(1)
    assert [line.split(" in ")[0] for line in stream.getvalue().splitlines()] == [
        "warmup ...",
        "warmup: 1/2",
        "warmup: done 2/2",
    ] * 2


def test_stages_report_events_and_none_reports_nowhere() -> None:
    events: list[ProgressEvent] = []
    stages = Stages(events.append)
    with stages.stage("warmup", total=3) as advance:
        advance(2)
    stages.note("hello")
    assert [(e.kind, e.stage, e.done, e.total, e.message) for e in events] == [
        ("start", "warmup", 0, 3, ""),
        ("advance", "warmup", 2, 3, ""),
        ("end", "warmup", 2, 3, ""),
        ("note", "", 0, None, "hello"),
    ]
    assert events[2].elapsed_s >= events[1].elapsed_s >= 0.0
    silent = Stages()
    with silent.stage("x", total=1) as advance:
        advance(1)
    silent.note("nowhere")


def merged(num_processes: int) -> tuple[list[ProgressEvent], MergedProgress]:
    events: list[ProgressEvent] = []
    return events, MergedProgress(events.append, num_processes)


def summary(events: list[ProgressEvent]) -> list[tuple[str, str, int, int | None]]:
    return [(e.kind, e.stage, e.done, e.total) for e in events]


def test_merged_progress_adds_up_the_totals_and_counts_of_the_processes() -> None:
    events, progress = merged(2)
    progress(0, ProgressEvent("start", "inference", total=4))
    progress(1, ProgressEvent("start", "inference", total=6))
    progress(0, ProgressEvent("advance", "inference", 1, 4))
    progress(1, ProgressEvent("advance", "inference", 3, 6))
    progress(0, ProgressEvent("advance", "inference", 4, 4))
    assert summary(events) == [
        ("start", "inference", 0, 8),  # the first process's 4, the other's taken alike
        ("advance", "inference", 1, 10),
        ("advance", "inference", 4, 10),
        ("advance", "inference", 7, 10),
    ]


def test_a_merged_stage_ends_only_when_every_process_ended_it() -> None:
    events, progress = merged(3)
    for index in range(3):
        progress(index, ProgressEvent("start", "warmup", total=2))
    assert summary(events) == [("start", "warmup", 0, 6)]  # one start, not three
    progress(1, ProgressEvent("end", "warmup", 2, 2, elapsed_s=1.0))
    progress(0, ProgressEvent("end", "warmup", 2, 2, elapsed_s=1.0))
    assert [e.kind for e in events] == ["start"]
    progress(2, ProgressEvent("end", "warmup", 2, 2, elapsed_s=1.0))
    assert summary(events) == [("start", "warmup", 0, 6), ("end", "warmup", 6, 6)]
    assert events[-1].elapsed_s >= 0.0


def test_a_merged_stage_ends_only_once_every_process_ended_it_even_a_late_one() -> None:
    # a process that finishes loading before another has begun does not end the stage
    events, progress = merged(2)
    progress(0, ProgressEvent("start", "loading m"))
    progress(0, ProgressEvent("end", "loading m", elapsed_s=0.1))
    progress(1, ProgressEvent("start", "loading m"))
    progress(1, ProgressEvent("end", "loading m", elapsed_s=0.2))
    assert [e.kind for e in events] == ["start", "end"]


def test_a_merged_stage_without_a_total_from_any_process_has_none() -> None:
    events, progress = merged(2)
    progress(0, ProgressEvent("start", "loading m", total=None))
    progress(1, ProgressEvent("start", "loading m", total=None))
    progress(0, ProgressEvent("end", "loading m"))
    progress(1, ProgressEvent("end", "loading m"))
    assert summary(events) == [("start", "loading m", 0, None), ("end", "loading m", 0, None)]
    assert str(events[-1]).startswith("loading m: done in ")


def test_merged_notes_say_which_process_they_come_from() -> None:
    events, progress = merged(2)
    progress(0, ProgressEvent("note", message="on cuda:0"))
    progress(1, ProgressEvent("note", message="on cuda:1"))
    assert [(e.kind, e.message) for e in events] == [
        ("note", "on cuda:0"),
        ("note", "process 1: on cuda:1"),
    ]


def test_one_process_passes_its_events_through_unchanged() -> None:
    events, progress = merged(1)
    sent = [
        ProgressEvent("start", "inference", total=4),
        ProgressEvent("advance", "inference", 2, 4, elapsed_s=0.5),
        ProgressEvent("note", message="a note"),
        ProgressEvent("end", "inference", 4, 4, elapsed_s=1.0),
    ]
    for event in sent:
        progress(0, event)
    assert events == sent


def test_merged_events_print_as_one_run() -> None:
    stream = io.StringIO()
    progress = MergedProgress(PrintProgress(stream), 2)
    for index in range(2):
        progress(index, ProgressEvent("start", "inference", total=10))
    for done in range(1, 11):
        for index in range(2):
            progress(index, ProgressEvent("advance", "inference", done, 10))
    for index in range(2):
        progress(index, ProgressEvent("end", "inference", 10, 10))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "inference ..."
    assert lines[1:10] == [f"inference: {2 * i}/20" for i in range(1, 10)]
    assert lines[-1].startswith("inference: done 20/20 in ")
    assert len(lines) == 11


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (ProgressEvent("start", "warmup", total=3), "warmup ..."),
        (ProgressEvent("advance", "warmup", 2, 3), "warmup: 2/3"),
        (ProgressEvent("advance", "baseline", 0, None), "baseline:"),
        (ProgressEvent("end", "warmup", 3, 3, elapsed_s=1.24), "warmup: done 3/3 in 1.2 s"),
        (ProgressEvent("note", message="a remark"), "a remark"),
    ],
)
def test_an_event_reads_as_one_line(event: ProgressEvent, text: str) -> None:
    assert str(event) == text


def test_progress_counts_every_request_while_another_process_is_still_loading() -> None:
    """``-n 200`` over two processes once read ``17/100`` until the second one started."""
    events, progress = merged(2)
    progress(0, ProgressEvent("start", "inference", total=100))
    progress(0, ProgressEvent("advance", "inference", 17, 100))
    progress(1, ProgressEvent("start", "inference", total=100))
    progress(1, ProgressEvent("advance", "inference", 1, 100))
    assert summary(events) == [
        ("start", "inference", 0, 200),
        ("advance", "inference", 17, 200),
        ("advance", "inference", 18, 200),
    ]
