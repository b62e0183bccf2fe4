import io

from llem.harness.progress import PlainReporter


def test_plain_progress_reports_start_tenths_and_end() -> None:
    stream = io.StringIO()
    reporter = PlainReporter(stream)
    with reporter.stage("inference", total=20) as advance:
        for _ in range(20):
            advance(1)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "inference ..."
    assert lines[1:10] == [f"inference: {2 * i}/20" for i in range(1, 10)]
    assert lines[-1].startswith("inference: done 20/20 in ")
    assert len(lines) == 11


def test_plain_progress_without_a_total_and_notes() -> None:
    stream = io.StringIO()
    reporter = PlainReporter(stream, prefix="[rank 0] ")
    with reporter.stage("loading m"):
        reporter.note("on cpu")
    assert stream.getvalue().splitlines()[:2] == ["[rank 0] loading m ...", "[rank 0] on cpu"]
    assert stream.getvalue().splitlines()[2].startswith("[rank 0] loading m: done in ")
