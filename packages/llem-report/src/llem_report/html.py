"""The report as one self-contained HTML page (:func:`write_html`) and its figures as files
for a paper (:func:`write_figures`).

The page needs nothing but itself: figures are PNG images inside it (``data:`` URIs), styles
are inline, fonts are the reader's own, and it has no script and no link that leaves the file.
"""

import base64
import html
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from os import PathLike
from pathlib import Path
from typing import Final

import matplotlib
from matplotlib.figure import Figure

from llem_report._common import all_warnings, labels, settings_label
from llem_report.errors import ReportError
from llem_report.loading import Experiment, Study
from llem_report.report import Report
from llem_report.sweep import Configuration
from llem_schema import ManifestEntry, MetricStatistics
from llem_schema.io import atomic_path
from llem_schema.tabular.columns import Cell
from llem_schema.tabular.summary import SUMMARY_BY_NAME

__all__ = ["FIGURE_FORMATS", "render_html", "write_figures", "write_html"]

FIGURE_FORMATS: Final = ("png", "svg", "pdf")
"""The formats :func:`write_figures` writes."""

PAGE_DPI: Final = 110
"""Resolution of the page's images: 880 pixels across, sharp at a laptop's width."""
FILE_DPI: Final = 200
"""Resolution of PNG figure files (and of the rasterised scatter in SVG and PDF)."""

_SUMMARY: Final = (
    ("model", "model"),
    ("backend", "backend"),
    ("num_requests", "requests"),
    ("output_tokens", "output tokens"),
    ("duration_s", "duration (s)"),
    ("output_tokens_per_s", "output tok/s"),
    ("energy_j", "energy (J)"),
    ("efficiency_energy_per_output_token_j", "J / output token"),
    ("efficiency_output_tokens_per_j", "output tok / J"),
    ("latency_ttft_median_ms", "TTFT p50 (ms)"),
    ("latency_ttft_p99_ms", "TTFT p99 (ms)"),
    ("latency_itl_median_ms", "ITL p50 (ms)"),
    ("latency_e2e_p99_ms", "E2E p99 (ms)"),
    ("num_warnings", "warnings"),
)
"""The summary table's columns: a column of the exports (so both say the same) and its head."""

_MISSING: Final = "\N{EN DASH}"
"""A missing value in a table."""

_STUDY_METRICS: Final = (
    ("output_tokens_per_s", "output tok/s"),
    ("energy_per_output_token_j", "J / output token"),
    ("e2e_p99_ms", "E2E p99 (ms)"),
)

_STYLE: Final = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1d1d1f; margin: 0 auto; max-width: 62rem; padding: 1.5rem 1.25rem 3rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; word-break: break-all; }
h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; border-bottom: 1px solid #ddd; }
.meta { color: #555; margin: 0; font-size: .9rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .8rem; font-variant-numeric: tabular-nums; }
th, td { padding: .25rem .5rem; border-bottom: 1px solid #eee; text-align: right;
         white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f5f5f7; position: sticky; top: 0; }
figure { margin: 1.25rem 0; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: .85rem; }
ul.warnings li { margin: .2rem 0; }
li, p, h1 { overflow-wrap: anywhere; }
code { font-size: .85em; background: #f5f5f7; padding: 0 .2em; }
.note { color: #555; }
"""


def render_html(report: Report) -> str:
    """The report as one HTML page (see the module docstring)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>llem report: {_e(report.title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{_e(report.title)}</h1>",
        f'<p class="meta">{_e(_meta(report))}</p>',
    ]
    parts += _study_section(report.study) if report.study else []
    parts += ["<h2>Summary</h2>", _summary_table(report.experiments)]
    parts += _warnings_section(report)
    if report.figures:
        parts.append("<h2>Figures</h2>")
    for figure in report.figures:
        parts.append(
            f'<figure id="{_e(figure.name)}"><h3>{_e(figure.title)}</h3>'
            f'<img alt="{_e(figure.title)}" src="data:image/png;base64,{_png(figure.figure)}">'
            f"<figcaption>{_e(figure.caption)}</figcaption></figure>"
        )
    if report.notes:
        parts.append("<h2>Not drawn</h2><ul>")
        parts += [f'<li class="note">{_e(note)}</li>' for note in report.notes]
        parts.append("</ul>")
    parts.append(f'<p class="meta">{_e(_generated())}</p></body></html>')
    return "\n".join(parts) + "\n"


def write_html(report: Report, path: str | PathLike[str]) -> Path:
    """Write the report's page to ``path`` atomically; return the path."""
    target = Path(path)
    page = render_html(report)
    with atomic_path(target) as temporary:
        temporary.write_text(page, encoding="utf-8")
    return target


def write_figures(
    report: Report, directory: str | PathLike[str], format: str = "png"
) -> list[Path]:
    """Write each figure of the report into ``directory`` (created) as ``NN-name.<format>``
    (png, svg or pdf), each atomically; return the paths in report order."""
    if format not in FIGURE_FORMATS:
        raise ReportError(
            f"cannot write figures as {format!r}: choose one of {', '.join(FIGURE_FORMATS)}"
        )
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for number, figure in enumerate(report.figures, start=1):
        path = folder / f"{number:02d}-{_file_name(figure.name)}.{format}"
        with atomic_path(path) as temporary, matplotlib.rc_context({"svg.hashsalt": "llem"}):
            figure.figure.savefig(
                temporary, format=format, dpi=FILE_DPI, metadata=_metadata(format)
            )
        written.append(path)
    return written


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _metadata(format: str) -> dict[str, str | None]:
    """Leave out the creation date and the tool's version, so the same figure gives the
    same file."""
    if format == "svg":
        return {"Date": None, "Creator": None}
    if format == "pdf":
        return {"CreationDate": None, "Creator": None, "Producer": None}
    return {"Software": None}


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PAGE_DPI, metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _meta(report: Report) -> str:
    results = [e.result for e in report.experiments]
    models = ", ".join(dict.fromkeys(r.model for r in results))
    backends = ", ".join(dict.fromkeys(r.backend for r in results))
    start = min(r.start_time for r in results).astimezone(UTC)
    count = len(results)
    runs = f"{count} experiment{'s' if count != 1 else ''}"
    return f"{runs} · model {models} · backend {backends} · from {start:%Y-%m-%d %H:%M} UTC"


def _generated() -> str:
    try:
        mine = version("llem-report")
    except PackageNotFoundError:
        mine = "unknown"
    return (
        f"Made by llem-report {mine} with matplotlib {matplotlib.__version__} on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Every figure is inside this file; it "
        "fetches nothing."
    )


def _summary_table(experiments: Sequence[Experiment]) -> str:
    """One row per experiment; one experiment's figures one per row instead (a single row of
    fourteen columns would not fit a laptop's width)."""
    if len(experiments) == 1:
        result = experiments[0].result
        rows = [
            f"<tr><td>{_e(title)}</td><td>{_e(_format(SUMMARY_BY_NAME[column].get(result)))}</td></tr>"
            for column, title in _SUMMARY
        ]
        return _table("<th>metric</th><th>value</th>", rows)
    names = labels(experiments)
    head = "".join(f"<th>{_e(title)}</th>" for _, title in (("", "experiment"), *_SUMMARY))
    rows = []
    for name, experiment in zip(names, experiments, strict=True):
        cells = [f'<td title="{_e(experiment.id)}">{_e(name)}</td>']
        cells += [
            f"<td>{_e(_format(SUMMARY_BY_NAME[column].get(experiment.result)))}</td>"
            for column, _ in _SUMMARY
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return _table(head, rows)


def _table(head: str, rows: Iterable[str]) -> str:
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _study_section(study: Study) -> list[str]:
    """Every point of the study: its settings, how many of its cycles completed, and the mean
    and interval of the key metrics across them; then the runs that failed, with why."""
    done = study.manifest.counts()
    counts = ", ".join(f"{n} {status}" for status, n in done.items() if n)
    swept = ", ".join(study.swept()) or "nothing"
    parts = ["<h2>Configurations</h2>", f'<p class="meta">{_e(counts)} · swept: {_e(swept)}</p>']
    titles = ("configuration", "cycles", *(f"{t} (95 % interval)" for _, t in _STUDY_METRICS))
    head = "".join(f"<th>{_e(title)}</th>" for title in titles)
    runs: dict[int, list[Experiment]] = {}
    for experiment in study.experiments:
        assert experiment.point is not None
        runs.setdefault(experiment.point.point_index, []).append(experiment)
    points: dict[int, list[ManifestEntry]] = {}
    for entry in study.manifest.entries:
        points.setdefault(entry.point_index, []).append(entry)
    rows, failures = [], []
    for point_index, entries in sorted(points.items()):
        label = settings_label(entries[0].overrides) or "base"
        planned = [e for e in entries if e.status != "skipped"]
        completed = runs.get(point_index, [])
        cycles = f"{len(completed)} of {len(planned)}" if planned else "skipped"
        cells = [f"<td>{_e(label)}</td>", f"<td>{_e(cycles)}</td>"]
        for metric, _ in _STUDY_METRICS:
            stats = (
                Configuration(entries[0].config_hash or "", tuple(completed), label).statistics(
                    metric
                )
                if completed
                else None
            )
            cells.append(f"<td>{_e(_interval(stats))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
        failures += [
            f"{label}, run {e.run_index}: {e.status}: {e.error}"
            for e in entries
            if e.status in ("failed", "skipped") and e.error
        ]
    parts.append(_table(head, rows))
    if failures:
        parts += ["<h3>Runs that failed or were skipped</h3>", "<ul>"]
        parts += [f"<li>{_e(line)}</li>" for line in failures]
        parts.append("</ul>")
    return parts


def _interval(stats: MetricStatistics | None) -> str:
    if stats is None:
        return _MISSING
    if stats.ci_low is None or stats.ci_high is None:
        return _format(stats.mean)
    return f"{_format(stats.mean)} [{_format(stats.ci_low)}, {_format(stats.ci_high)}]"


def _warnings_section(report: Report) -> list[str]:
    several = len(report.experiments) > 1
    names = labels(report.experiments) if several else [""]
    items = []
    if report.study and report.study.summary:
        items += [("study", text) for text in report.study.summary.warnings]
        items += [
            (
                (c.overrides and ", ".join(f"{k}={v}" for k, v in c.overrides.items()))
                or f"point {c.point_index}",
                text,
            )
            for c in report.study.summary.configurations
            for text in c.warnings
        ]
    for name, experiment in zip(names, report.experiments, strict=True):
        items += [(name, f"{w.code}: {w.message}") for w in all_warnings(experiment.result)]
    if not items:
        return [
            "<h2>Warnings</h2>",
            '<p class="note">None: nothing was detected that makes a figure less trustworthy.</p>',
        ]
    lines = [f"<li>{f'<b>{_e(who)}</b>: ' if who else ''}{_e(text)}</li>" for who, text in items]
    return ["<h2>Warnings</h2>", '<ul class="warnings">', *lines, "</ul>"]


def _format(value: Cell) -> str:
    if value is None:
        return _MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1_000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    return str(value)
