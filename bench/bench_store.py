"""Results store: ingest, queries, export and `llem results list`, each against a plain baseline.

(1) Ingest: ``ResultStore(db).import_tree(root)`` of EXPERIMENTS result directories with
    REQUESTS request rows each (default 10,000 x 100 = 1,000,000 request rows) into a fresh
    database: validation (``ExperimentResult.from_json``), sha256 of each file, one
    transaction per result. Baseline, in the same run: the same directories walked, each
    ``result.json`` read with ``json.loads`` (no validation, no hash) and the same rows (same
    schema and indexes, same PRAGMAs, one transaction per result) inserted with
    ``sqlite3.executemany``. Also the re-import of the same tree into that database (every
    result unchanged). Target (issue 6): ingest under 20 s.
(2) Queries on the ingested store, each through ``ResultStore`` (rows turned into
    ``ExperimentSummary``) against the equivalent SQL on a plain ``sqlite3`` connection
    (plain tuples, the natural SQL a person would write; both must return the same
    experiments): list (completed, newest first, 50), filtered by model, by backend and start
    date, by minimum tokens per joule, sorted by tokens per joule, count, get by id and by a
    prefix, compare of 10, per-request statistics of one. Target: each under 50 ms.
(3) Export. One result of 1,000 requests through ``llem_persistence.export`` to xlsx (summary,
    per-request, config and warnings sheets, chart) and csv (one summary row), loaded and
    loaded from its directory first; target: each under 2 s. Then ``llem results export
    --all`` of the tree's first 1,000 results (100 requests each): ``ExperimentResult.from_json``
    one at a time streamed into ``export``, to csv, parquet and xlsx; targets (issue 14): csv
    and parquet under 2 s, xlsx under 10 s. Baselines: ``json.loads`` of the same files and the
    summary scalars (every scalar outside the lists, nested objects flattened) written with
    bare ``csv.writer``, pyarrow (``Table.from_pylist``, zstd) and xlsxwriter (constant memory,
    ``write_row``, the request rows too). Two more rows split the xlsx export: ``from_json``
    alone, and ``from_json`` with every row of llem's workbook built but nothing written.
(4) ``llem results list --db DB`` (one page of 50) and ``llem results list --limit 0 --json --db
    DB`` (every completed experiment) over the ingested store, the installed console script
    run as a subprocess (wall time), with bytecode cached and, where PYTHONDONTWRITEBYTECODE
    is set, as is. Targets (issue 14): under 0.3 s and 0.6 s with bytecode cached, without
    importing torch. Baselines: ``python -c`` running the same SELECT and printing the rows
    (``json.dumps(indent=2)`` of a dict per row for ``--json``), ``python -c pass``, and the
    floors ``import llem.cli`` and ``import llem.cli, typer._adapters`` (typer's pydantic).
    The modules it loads (torch, pyarrow, pydantic, ...) and who imports them come from
    ``python -X importtime``. If the command fails, its rows say ``n/a`` with the reason.

Setup is not timed. The result tree is built from a few templates made with
``llem_schema.testing`` (each a valid ``ExperimentResult``) and written 10,000 times with only
ids, names, models, backends and times changed (nothing any validator checks); a sample is
loaded back with ``ExperimentResult.from_json`` to prove it. With ``--workdir`` the tree is kept
there and reused by later runs. Each measurement: one warm-up (ingest: none), then rounds
alternating the baseline and llem; the table shows the median and the spread (max - min).
``--profile N`` adds a cProfile split of ``import_tree`` over N results (where ingest time goes),
``--profile-export N`` one of the xlsx export of N results.

Run: uv run --frozen python bench/bench_store.py [--experiments N] [--requests-per-experiment R]
     [--workdir DIR] [--repeat K] [--ingest-rounds K] [--bulk-exports N] [--export-rounds K]
     [--profile N] [--profile-export N]
"""

import argparse
import contextlib
import cProfile
import csv
import functools
import gc
import hashlib
import json
import math
import os
import platform
import pstats
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import xlsxwriter

from llem_persistence import export
from llem_schema import ExperimentResult
from llem_schema.ids import model_slug, timestamp_slug
from llem_schema.tabular import (
    REQUEST_COLUMNS,
    SUMMARY_COLUMN_NAMES,
    each_request,
    flatten_config,
    row_values,
    summary_row,
)
from llem_schema.testing import example_config, example_raw_result, example_result
from llem_store import ExperimentFilter, ResultStore
from llem_store.migrations import MIGRATIONS

EXPERIMENTS = 10_000
REQUESTS = 100
MAX_NEW_TOKENS = 32
EXPORT_REQUESTS = 1_000
REPEAT = 10
INGEST_ROUNDS = 3
LIST_LIMIT = 50
COMPARE_COUNT = 10

INGEST_TARGET_S = 20.0
QUERY_TARGET_S = 0.050
EXPORT_TARGET_S = 2.0
BULK_EXPORTS = 1_000
EXPORT_ROUNDS = 5
BULK_EXPORT_TARGET_S = {"csv": 2.0, "parquet": 2.0, "xlsx": 10.0}
CLI_TARGET_S = 0.3
CLI_JSON_TARGET_S = 0.6

TREE_FORMAT = 1  # bump when the generated tree changes, so a cached one is rebuilt
TEMPLATES = 12  # the last one is an incomplete run (1 of 2 processes)
PRECISIONS = ("fp32", "fp16", "bf16")
BATCH_SIZES = (1, 4, 8, 16)
MODELS = (
    "meta-llama/Llama-3.2-1B",
    "meta-llama/Llama-3.1-8B",
    "Qwen/Qwen2.5-0.5B",
    "Qwen/Qwen2.5-7B",
    "mistralai/Mistral-7B-v0.3",
    "google/gemma-2-2b",
    "microsoft/phi-2",
    "llem/tiny",
)
BACKENDS = ("pytorch",) * 7 + ("vllm",) * 2 + ("tensorrt-llm",)
FIRST_START = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
SPACING = timedelta(minutes=7, seconds=13)
FILTER_MODEL = "Qwen2.5-7B"
FILTER_BACKEND = "vllm"
HEAVY_MODULES = ("torch", "transformers", "pyarrow", "numpy", "pydantic", "llem_schema")

PLACEHOLDERS = ("@@ID@@", "@@MODEL@@", "@@BACKEND@@", "@@HASH@@", "@@START@@", "@@END@@")


# -- the result tree (setup, not timed) ------------------------------------------------------


@dataclass(frozen=True)
class Template:
    text: str  # result.json (as ``save`` writes it) with the PLACEHOLDERS and @@NAME@@ in it
    duration_s: float
    config_hash: str


def build_template(index: int, requests: int) -> Template:
    """A valid result from ``llem_schema.testing``, its varying strings replaced by placeholders."""
    config = example_config(
        n=requests,
        max_new_tokens=MAX_NEW_TOKENS,
        precision=PRECISIONS[index % len(PRECISIONS)],
        pytorch={"batch_size": BATCH_SIZES[index % len(BATCH_SIZES)]},
    )
    incomplete = index == TEMPLATES - 1
    raw = example_raw_result(
        config=config,
        num_processes=2 if incomplete else 1,
        n_requests=requests,
        seed=index,
        energy_j=40.0 + 20.0 * index,
        duration_s=8.0 + index,
    )
    result = example_result([raw], config=config)
    doc: dict[str, Any] = result.model_dump(mode="json")
    if incomplete:
        doc["aggregation"] |= {"expected_processes": 2, "missing_processes": [1], "complete": False}
        doc["measurement_warnings"] = [
            {
                "code": "incomplete",
                "message": "incomplete: processes 1 of 2 have no result",
                "figures": {"processes": "1"},
            }
        ]
    for part in (doc, *doc["process_results"]):
        part |= {
            "experiment_id": "@@ID@@",
            "model": "@@MODEL@@",
            "backend": "@@BACKEND@@",
            "measurement_config_hash": "@@HASH@@",
            "start_time": "@@START@@",
            "end_time": "@@END@@",
        }
    effective = doc["effective_config"]
    effective |= {"model": "@@MODEL@@", "backend": "@@BACKEND@@", "name": "@@NAME@@"}
    effective["@@BACKEND@@"] = effective.pop("pytorch")  # the selected backend's own section
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    return Template(text, float(doc["duration_s"]), result.measurement_config_hash)


def fill(template: Template, index: int) -> tuple[str, str]:
    """Experiment ``index``: its directory name and its result.json text."""
    model = MODELS[(index * 7 + index // 13) % len(MODELS)]
    backend = BACKENDS[(index * 3 + index // 17) % len(BACKENDS)]
    start = FIRST_START + index * SPACING
    end = start + timedelta(seconds=template.duration_s)
    directory = f"{model_slug(model)}_{model_slug(backend)}_{timestamp_slug(start)}"
    config_hash = hashlib.sha256(f"{template.config_hash}|{model}|{backend}".encode()).hexdigest()
    values = {
        "@@ID@@": f"{directory}_{index:06x}",
        "@@MODEL@@": model,
        "@@BACKEND@@": backend,
        "@@HASH@@": config_hash[:16],
        "@@START@@": f"{start:%Y-%m-%dT%H:%M:%S}Z",
        "@@END@@": f"{end:%Y-%m-%dT%H:%M:%S}Z",
        "@@NAME@@": f"sweep-{index % 40:02d}",
    }
    text = template.text
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return directory, text


def result_tree(workdir: Path, experiments: int, requests: int) -> Path:
    """The tree of ``experiments`` result directories, built once per workdir and size."""
    root = workdir / f"tree-v{TREE_FORMAT}-{experiments}x{requests}"
    marker = root / ".complete"
    if marker.is_file():
        print(f"reusing {root}")
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    started = time.perf_counter()
    templates = [build_template(k, requests) for k in range(TEMPLATES)]
    for index in range(experiments):
        directory, text = fill(templates[(index * 5 + index // 7) % TEMPLATES], index)
        (root / directory).mkdir()
        (root / directory / "result.json").write_text(text, encoding="utf-8")
    # Every file must be a result llem accepts: load a sample back, check what was changed.
    for index in sorted({*range(0, experiments, max(1, experiments // 25)), experiments - 1}):
        directory, _ = fill(templates[0], index)
        loaded = ExperimentResult.from_json(root / directory)
        assert loaded.experiment_id == f"{directory}_{index:06x}", loaded.experiment_id
        assert loaded.effective_config["backend"] == loaded.backend
        assert sum(len(p.requests) for p in loaded.process_results) == requests
    marker.write_text(json.dumps({"experiments": experiments, "requests": requests}))
    print(f"built {root} in {time.perf_counter() - started:.1f} s")
    return root


def export_fixture(workdir: Path) -> Path:
    """One result with EXPORT_REQUESTS requests (two processes), saved once per workdir."""
    root = workdir / f"export-v{TREE_FORMAT}-{EXPORT_REQUESTS}"
    marker = root / ".complete"
    if not marker.is_file():
        shutil.rmtree(root, ignore_errors=True)
        config = example_config(n=EXPORT_REQUESTS, max_new_tokens=MAX_NEW_TOKENS)
        half = EXPORT_REQUESTS // 2
        raws = [
            example_raw_result(
                config=config, process_index=i, num_processes=2, n_requests=half, seed=i
            )
            for i in range(2)
        ]
        example_result(raws, config=config).save(root / "result")
        marker.write_text("")
    (directory,) = (p for p in (root / "result").iterdir() if p.is_dir())
    return directory


def tree_size(root: Path) -> int:
    return sum(entry.stat().st_size for entry in root.glob("*/result.json"))


# -- timing ----------------------------------------------------------------------------------


def timed(action: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def alternate(
    cases: dict[str, Callable[[], object]], rounds: int, *, warmup: bool = True
) -> dict[str, list[float]]:
    """One warm-up of every case (unless ``warmup`` is off), then ``rounds`` rounds running
    each case once in turn."""
    if warmup:
        for action in cases.values():
            action()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, action in cases.items():
            times[name].append(timed(action))
    return times


@dataclass
class Row:
    measurement: str
    values: list[float] | None  # None: not measured (see note)
    baseline: list[float] | None = None
    target_s: float | None = None
    note: str = ""

    def cells(self) -> list[str]:
        if self.values is None:
            return [self.measurement, "n/a", "", "", "", _target(self.target_s), "n/a"]
        median = statistics.median(self.values)
        spread = max(self.values) - min(self.values)
        base = statistics.median(self.baseline) if self.baseline else None
        ratio = f"{median / base:.2f}" if base else ""
        met = "" if self.target_s is None else ("yes" if median < self.target_s else "**no**")
        return [
            self.measurement,
            seconds(median),
            seconds(spread),
            seconds(base) if base is not None else "",
            ratio,
            _target(self.target_s),
            met,
        ]


def seconds(value: float) -> str:
    if value >= 1.0:
        return f"{value:.2f} s"
    if value >= 0.001:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.0f} µs"


def _target(target_s: float | None) -> str:
    return "" if target_s is None else f"< {seconds(target_s)}"


def table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| measurement | median | spread | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return lines


# -- (1) ingest ------------------------------------------------------------------------------


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _stat(doc: dict[str, Any], metric: str, name: str) -> float | None:
    stats = doc["latency"].get(metric)
    return None if stats is None else float(stats[name])


PLAIN_EXPERIMENT_COLUMNS = (
    "experiment_id, name, status, model, backend, backend_version, precision, batch_size, "
    "num_processes, created_at, end_time, duration_s, config_hash, config_json, schema_version, "
    "requests, input_tokens, output_tokens, total_energy_j, energy_adjusted_j, baseline_power_w, "
    "output_tokens_per_s, output_tokens_per_j, energy_per_output_token_j, "
    "output_tokens_per_j_adjusted, ttft_median_ms, ttft_p95_ms, itl_median_ms, itl_p95_ms, "
    "tpot_median_ms, e2e_median_ms, e2e_p95_ms, peak_memory_mb, warning_count, result_path, "
    "indexed_at"
)
PLAIN_INSERT_EXPERIMENT = (
    f"INSERT INTO experiments ({PLAIN_EXPERIMENT_COLUMNS}) "
    f"VALUES ({', '.join('?' for _ in PLAIN_EXPERIMENT_COLUMNS.split(','))})"
)


def plain_rows(
    doc: dict[str, Any], path: str
) -> tuple[tuple[object, ...], list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The experiments, requests and warnings rows straight from the JSON document."""
    experiment_id = doc["experiment_id"]
    config = doc["effective_config"]
    section = config.get(doc["backend"])
    processes = doc["process_results"]
    efficiency = doc["efficiency"]
    aggregation = doc["aggregation"]
    peaks = [p["peak_memory_mb"] for p in processes if p.get("peak_memory_mb") is not None]
    warnings = [("measurement", m) for m in doc["measurement_warnings"]]
    warnings += [("aggregation", m) for m in aggregation["warnings"]]
    requests: list[tuple[object, ...]] = []
    for process in processes:
        index = process["process_index"]
        for r in process["requests"]:
            out, ttft, e2e, gaps = r["output_tokens"], r["ttft_ms"], r["e2e_ms"], r["itl_ms"]
            tpot = (e2e - ttft) / (out - 1) if out > 1 and None not in (ttft, e2e) else None
            requests.append(
                (
                    experiment_id,
                    index,
                    r["request_index"],
                    r["batch_index"],
                    r["input_tokens"],
                    out,
                    ttft,
                    e2e,
                    tpot,
                    max(gaps) if gaps else None,
                )
            )
    experiment = (
        experiment_id,
        config.get("name"),
        "completed" if aggregation["complete"] else "incomplete",
        doc["model"],
        doc["backend"],
        doc["backend_version"],
        config.get("precision"),
        section.get("batch_size") if isinstance(section, dict) else None,
        aggregation["expected_processes"],
        doc["start_time"],
        doc["end_time"],
        doc["duration_s"],
        doc["measurement_config_hash"],
        json.dumps(config, sort_keys=True, separators=(",", ":")),
        doc["schema_version"],
        len(requests),
        doc["input_tokens"],
        doc["output_tokens"],
        doc["total_energy_j"],
        doc["energy_adjusted_j"],
        doc["baseline_power_w"],
        doc["output_tokens_per_s"],
        efficiency["output_tokens_per_j"],
        efficiency["energy_per_output_token_j"],
        efficiency["output_tokens_per_j_adjusted"],
        _stat(doc, "ttft", "median_ms"),
        _stat(doc, "ttft", "p95_ms"),
        _stat(doc, "itl", "median_ms"),
        _stat(doc, "itl", "p95_ms"),
        _stat(doc, "tpot", "median_ms"),
        _stat(doc, "e2e", "median_ms"),
        _stat(doc, "e2e", "p95_ms"),
        max(peaks) if peaks else None,
        len(warnings),
        path,
        datetime.now(UTC).isoformat(),
    )
    warning_rows: list[tuple[object, ...]] = [
        (experiment_id, position, source, w["message"], w["code"])
        for position, (source, w) in enumerate(warnings)
    ]
    return experiment, requests, warning_rows


def plain_ingest(root: Path, db: Path) -> None:
    """The baseline: same schema, indexes and PRAGMAs; json.loads and executemany, no checks."""
    connection = sqlite3.connect(db, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("BEGIN")
        for migration in MIGRATIONS:  # the schema as it stands; executescript commits
            connection.executescript(migration.script)
        for directory in sorted(p for p in root.iterdir() if p.is_dir()):
            doc = json.loads((directory / "result.json").read_bytes())
            experiment, requests, warnings = plain_rows(doc, directory.name)
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(PLAIN_INSERT_EXPERIMENT, experiment)
            connection.executemany(
                "INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", requests
            )
            connection.executemany("INSERT INTO warnings VALUES (?, ?, ?, ?, ?)", warnings)
            connection.execute("COMMIT")
    finally:
        connection.close()


def request_totals(db: Path) -> tuple[int, int, int, float]:
    with contextlib.closing(sqlite3.connect(db)) as connection:
        (experiments,) = connection.execute("SELECT count(*) FROM experiments").fetchone()
        requests, tokens, tpot = connection.execute(
            "SELECT count(*), sum(output_tokens), total(tpot_ms) FROM requests"
        ).fetchone()
    return int(experiments), int(requests), int(tokens), float(tpot)


def bench_ingest(root: Path, work: Path, experiments: int, rounds: int) -> tuple[list[Row], Path]:
    llem_db = work / "llem.db"
    plain_db = work / "plain.db"
    reports = []

    def llem() -> None:
        remove_db(llem_db)
        with ResultStore(llem_db) as store:
            reports.append(store.import_tree(root))

    def plain() -> None:
        remove_db(plain_db)
        plain_ingest(root, plain_db)

    def again() -> None:
        with ResultStore(llem_db) as store:
            reports.append(store.import_tree(root))

    times = alternate({"plain": plain, "llem": llem, "again": again}, rounds, warmup=False)
    first, second = reports[-2], reports[-1]
    assert not first.skipped, first.skipped[:3]
    assert len(first.added) == experiments, len(first.added)
    assert len(second.unchanged) == experiments, (len(second.added), len(second.updated))
    mine, theirs = request_totals(llem_db), request_totals(plain_db)
    assert mine[:3] == theirs[:3], (mine, theirs)
    assert math.isclose(mine[3], theirs[3]), (mine, theirs)
    rows = mine[1]
    remove_db(plain_db)
    return [
        Row(
            f"ingest {experiments:,} results, {rows:,} request rows (import_tree)",
            times["llem"],
            times["plain"],
            INGEST_TARGET_S,
            "baseline: json.loads + executemany, same schema, one transaction per result",
        ),
        Row(
            f"re-import of the same tree (all {experiments:,} unchanged)",
            times["again"],
            times["plain"],
        ),
    ], llem_db


# -- (2) queries -----------------------------------------------------------------------------


def summary_columns() -> str:
    from llem_store.models import SUMMARY_FIELDS

    return ", ".join(SUMMARY_FIELDS)


def bench_queries(db: Path, repeat: int, experiments: int) -> list[Row]:
    columns = summary_columns()
    raw = sqlite3.connect(db)
    store = ResultStore(db, create=False)
    try:
        ids = [i for (i,) in raw.execute("SELECT experiment_id FROM experiments ORDER BY 1")]
        one = ids[len(ids) // 2]
        prefix = one[: one.rindex("_")]  # unique: the start time is part of it
        compared = ids[:: max(1, len(ids) // COMPARE_COUNT)][:COMPARE_COUNT]
        since = FIRST_START + (experiments * 3 // 4) * SPACING
        since_text = since.isoformat(timespec="microseconds")
        (threshold,) = raw.execute(
            "SELECT output_tokens_per_j FROM experiments ORDER BY 1 DESC LIMIT 1 OFFSET ?",
            (len(ids) // 10,),
        ).fetchone()
        newest = "ORDER BY created_at DESC, experiment_id DESC LIMIT 50"
        completed = f"SELECT {columns} FROM experiments WHERE status = 'completed'"

        def sql(text: str, *parameters: object) -> Callable[[], list[Any]]:
            return lambda: raw.execute(text, parameters).fetchall()

        marks = ", ".join("?" for _ in compared)
        cases: list[tuple[str, Callable[[], Any], Callable[[], list[Any]]]] = [
            (
                "list: completed, newest first, 50",
                lambda: store.list_experiments(limit=LIST_LIMIT),
                sql(f"{completed} {newest}"),
            ),
            (
                f"list: model {FILTER_MODEL!r}",
                lambda: store.list_experiments(
                    ExperimentFilter(model=FILTER_MODEL), limit=LIST_LIMIT
                ),
                sql(f"{completed} AND model LIKE ? {newest}", f"%{FILTER_MODEL}%"),
            ),
            (
                f"list: backend {FILTER_BACKEND!r} since {since:%Y-%m-%d}",
                lambda: store.list_experiments(
                    ExperimentFilter(backend=FILTER_BACKEND, since=since), limit=LIST_LIMIT
                ),
                sql(
                    f"{completed} AND backend LIKE ? AND created_at >= ? {newest}",
                    f"%{FILTER_BACKEND}%",
                    since_text,
                ),
            ),
            (
                f"list: tokens/J >= {threshold:.2f}",
                lambda: store.list_experiments(
                    ExperimentFilter(min_output_tokens_per_j=threshold), limit=LIST_LIMIT
                ),
                sql(f"{completed} AND output_tokens_per_j >= ? {newest}", threshold),
            ),
            (
                "list: sorted by tokens/J, 50",
                lambda: store.list_experiments(sort="tokens_per_j", limit=LIST_LIMIT),
                sql(f"{completed} ORDER BY output_tokens_per_j DESC, experiment_id DESC LIMIT 50"),
            ),
            (
                "count (completed)",
                lambda: [store.count_experiments()],
                sql("SELECT count(*) FROM experiments WHERE status = 'completed'"),
            ),
            (
                "get by id",
                lambda: [store.get(one)],
                sql(f"SELECT {columns} FROM experiments WHERE experiment_id = ?", one),
            ),
            (
                "get by prefix",
                lambda: [store.get(prefix)],
                # GLOB: case-sensitive, so SQLite answers it from the primary key's index
                sql(f"SELECT {columns} FROM experiments WHERE experiment_id GLOB ?", prefix + "*"),
            ),
            (
                f"compare {len(compared)}",
                lambda: store.compare(compared),
                sql(
                    f"SELECT {columns} FROM experiments WHERE experiment_id IN ({marks})", *compared
                ),
            ),
            (
                "request_stats of one (ttft, e2e, tpot, itl_max)",
                lambda: list(store.request_stats(one).values()),
                sql(
                    "SELECT ttft_ms, e2e_ms, tpot_ms, itl_max_ms FROM requests "
                    "WHERE experiment_id = ?",
                    one,
                ),
            ),
        ]
        rows = []
        for name, mine, theirs in cases:
            check(name, mine(), theirs())
            times = alternate({"plain": theirs, "llem": mine}, repeat)
            rows.append(Row(f"query: {name}", times["llem"], times["plain"], QUERY_TARGET_S))
        (total,) = raw.execute(
            "SELECT count(*) FROM experiments WHERE status = 'completed'"
        ).fetchone()
        everything = alternate(
            {
                "plain": sql(f"{completed} ORDER BY created_at DESC"),
                "llem": lambda: store.list_experiments(),
            },
            max(3, repeat // 2),
        )
        rows.append(
            Row(
                f"query: list all completed ({total:,} rows, no limit)",
                everything["llem"],
                everything["plain"],
            )
        )
    finally:
        store.close()
        raw.close()
    return rows


def check(name: str, mine: Sequence[Any], theirs: Sequence[Any]) -> None:
    """Both sides found the same experiments (or the same number of rows / the same count)."""
    if mine and hasattr(mine[0], "experiment_id"):
        got = [summary.experiment_id for summary in mine]
        expected = [row[0] for row in theirs]
        if name.startswith("compare"):
            got, expected = sorted(got), sorted(expected)
        assert got, name
        assert got == expected, (name, got[:3], expected[:3])
    elif name.startswith("count"):
        assert mine[0] == theirs[0][0], (name, mine, theirs)
    else:
        counts = [getattr(stats, "count", 0) for stats in mine]
        assert max(counts) == len(theirs), (name, counts, len(theirs))


# -- (3) export ------------------------------------------------------------------------------


def plain_scalars(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The bare baselines' summary row: every scalar of a ``result.json`` outside its lists,
    nested objects flattened (``latency_ttft_p95_ms``, ``effective_config_decoder_mode``)."""
    scalars: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            scalars |= plain_scalars(value, f"{prefix}{key}_")
        elif not isinstance(value, list):
            scalars[prefix + key] = value
    return scalars


PLAIN_REQUEST_HEADER = ("experiment_id", "process_index", "request_index", "batch_index")


def plain_request_rows(doc: dict[str, Any]) -> Iterator[list[Any]]:
    """The bare baselines' per-request rows: the ten values of llem's requests sheet."""
    experiment_id = doc["experiment_id"]
    for process in doc["process_results"]:
        index = process["process_index"]
        for r in process["requests"]:
            gaps, out = r["itl_ms"], r["output_tokens"]
            yield [
                experiment_id,
                index,
                r["request_index"],
                r["batch_index"],
                r["input_tokens"],
                out,
                r["ttft_ms"],
                r["e2e_ms"],
                math.fsum(gaps) / len(gaps) if gaps else None,
                (r["e2e_ms"] - r["ttft_ms"]) / (out - 1) if out > 1 else None,
            ]


def plain_xlsx(docs: Iterable[dict[str, Any]], path: Path) -> None:
    """Bare xlsxwriter (constant memory, ``write_row``, no formats): the summary scalars on
    one sheet, the request rows on another."""
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    summary = workbook.add_worksheet("summary")
    requests = workbook.add_worksheet("per-request")
    requests.write_row(0, 0, PLAIN_REQUEST_HEADER)
    header: list[str] = []
    line = 0
    for row, doc in enumerate(docs, start=1):
        scalars = plain_scalars(doc)
        if not header:
            header = list(scalars)
            summary.write_row(0, 0, header)
        summary.write_row(row, 0, [scalars.get(key) for key in header])
        for values in plain_request_rows(doc):
            line += 1
            requests.write_row(line, 0, values)
    workbook.close()


def plain_csv(docs: Iterable[dict[str, Any]], path: Path) -> None:
    """Bare ``csv.writer``: the summary scalars, one row a result."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        header: list[str] = []
        for doc in docs:
            scalars = plain_scalars(doc)
            if not header:
                header = list(scalars)
                writer.writerow(header)
            writer.writerow([scalars.get(key) for key in header])


def plain_parquet(docs: Iterable[dict[str, Any]], path: Path) -> None:
    """Bare pyarrow: the summary scalars as a table (types inferred), zstd as llem writes."""
    table = pa.Table.from_pylist([plain_scalars(doc) for doc in docs])
    pq.write_table(table, path, compression="zstd")


def bench_export(directory: Path, work: Path, repeat: int) -> list[Row]:
    """One result of EXPORT_REQUESTS requests, to xlsx and csv."""
    out = work / "export"
    out.mkdir(exist_ok=True)
    result = ExperimentResult.from_json(directory)
    requests = sum(len(p.requests) for p in result.process_results)
    text = (directory / "result.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    xlsx, csv_file = out / "llem.xlsx", out / "llem.csv"
    cases: dict[str, Callable[[], object]] = {
        "plain_xlsx": lambda: plain_xlsx([doc], out / "plain.xlsx"),
        "llem_xlsx": lambda: export([result], xlsx),
        "plain_csv": lambda: plain_csv([doc], out / "plain.csv"),
        "llem_csv": lambda: export([result], csv_file),
        "plain_load_xlsx": lambda: plain_xlsx([json.loads(text)], out / "plain.xlsx"),
        "llem_load_xlsx": lambda: export([ExperimentResult.from_json(directory)], xlsx),
        "plain_load_csv": lambda: plain_csv([json.loads(text)], out / "plain.csv"),
        "llem_load_csv": lambda: export([ExperimentResult.from_json(directory)], csv_file),
    }
    times = alternate(cases, repeat)
    # What was timed wrote what it should: read the files back.
    book = openpyxl.load_workbook(xlsx, read_only=True)
    assert book["per-request"].max_row == requests + 1, book["per-request"].max_row
    book.close()
    with csv_file.open(encoding="utf-8", newline="") as handle:
        lines = list(csv.reader(handle))
    assert len(lines) == 2, len(lines)
    assert lines[0] == list(SUMMARY_COLUMN_NAMES), lines[0][:3]
    shutil.rmtree(out)
    label = f"{requests:,}-request result"
    return [
        Row(
            f"export xlsx, one {label} (loaded)",
            times["llem_xlsx"],
            times["plain_xlsx"],
            EXPORT_TARGET_S,
        ),
        Row(
            f"export csv, one {label} (loaded; one summary row)",
            times["llem_csv"],
            times["plain_csv"],
            EXPORT_TARGET_S,
        ),
        Row(
            f"from_json + export xlsx, one {label}",
            times["llem_load_xlsx"],
            times["plain_load_xlsx"],
            EXPORT_TARGET_S,
        ),
        Row(
            f"from_json + export csv, one {label}",
            times["llem_load_csv"],
            times["plain_load_csv"],
            EXPORT_TARGET_S,
        ),
    ]


def llem_rows(result: ExperimentResult) -> int:
    """Every value llem's xlsx export writes for ``result``, built and dropped."""
    cells = len(summary_row(result))
    for request in each_request(result):
        cells += len(row_values(REQUEST_COLUMNS, request))
    for _setting in flatten_config(result.effective_config):
        cells += 3
    return cells


def bench_bulk_export(root: Path, work: Path, count: int, rounds: int) -> list[Row]:
    """``llem results export --all`` of ``count`` results: each ``result.json`` loaded with
    ``ExperimentResult.from_json`` one at a time, streamed into ``llem_persistence.export``
    (the command's ``_load``; its store query, a few ms, is left out)."""
    out = work / "bulk-export"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    directories = sorted(p for p in root.iterdir() if p.is_dir())[:count]

    def results() -> Iterator[ExperimentResult]:
        for directory in directories:
            yield ExperimentResult.from_json(directory)

    def docs() -> Iterator[dict[str, Any]]:
        for directory in directories:
            yield json.loads((directory / "result.json").read_bytes())

    def plain(write: Callable[[Iterable[dict[str, Any]], Path], None], kind: str) -> None:
        write(docs(), out / f"p.{kind}")

    def llem(kind: str) -> None:
        export(results(), out / f"llem.{kind}")

    cases: dict[str, Callable[[], object]] = {
        "plain_load": lambda: sum(1 for _ in docs()),
        "llem_load": lambda: sum(1 for _ in results()),
        "llem_rows": lambda: sum(llem_rows(result) for result in results()),
    }
    for kind, write in (("csv", plain_csv), ("parquet", plain_parquet), ("xlsx", plain_xlsx)):
        cases[f"plain_{kind}"] = functools.partial(plain, write, kind)
        cases[f"llem_{kind}"] = functools.partial(llem, kind)
    times = alternate(cases, rounds)
    # What was timed wrote what it should: read the files back.
    requests = sum(len(p["requests"]) for d in docs() for p in d["process_results"])
    with (out / "llem.csv").open(encoding="utf-8", newline="") as handle:
        lines = list(csv.reader(handle))
    assert len(lines) == count + 1, len(lines)
    assert lines[0] == list(SUMMARY_COLUMN_NAMES), lines[0][:3]
    assert pq.read_metadata(out / "llem.parquet").num_rows == count
    book = openpyxl.load_workbook(out / "llem.xlsx", read_only=True)
    assert book["summary"].max_row == count + 1, book["summary"].max_row
    assert book["per-request"].max_row == requests + 1, book["per-request"].max_row
    book.close()
    with (out / "p.csv").open(encoding="utf-8", newline="") as handle:
        plain_columns = len(next(csv.reader(handle)))
    cells = llem_rows(next(results())) * count
    shutil.rmtree(out)
    label = f"{count:,} results x {requests // count:,} requests"
    return [
        Row(
            f"export --all csv, {label} (from_json each, streamed)",
            times["llem_csv"],
            times["plain_csv"],
            BULK_EXPORT_TARGET_S["csv"],
            f"baseline: json.loads + csv.writer of {plain_columns} flattened scalars a result "
            f"(llem: {len(SUMMARY_COLUMN_NAMES)} summary columns)",
        ),
        Row(
            f"export --all parquet, {label}",
            times["llem_parquet"],
            times["plain_parquet"],
            BULK_EXPORT_TARGET_S["parquet"],
            "baseline: json.loads + pyarrow Table.from_pylist + write_table (zstd)",
        ),
        Row(
            f"export --all xlsx, {label}",
            times["llem_xlsx"],
            times["plain_xlsx"],
            BULK_EXPORT_TARGET_S["xlsx"],
            "baseline: json.loads + bare xlsxwriter (constant memory, write_row): the "
            "summary scalars and the request rows; llem also writes the config and warnings "
            f"sheets, formats, colour scales and a chart (about {cells:,} cells in all)",
        ),
        Row(
            f"xlsx, part: from_json of the {count:,} (nothing exported)",
            times["llem_load"],
            times["plain_load"],
            None,
            "baseline: json.loads of the same files",
        ),
        Row(
            "xlsx, part: from_json + the rows of llem's xlsx built (nothing written)",
            times["llem_rows"],
            times["plain_load"],
            None,
            "summary_row, REQUEST_COLUMNS over each_request, flatten_config; baseline: json.loads",
        ),
    ]


# -- (4) `llem results list` -----------------------------------------------------------------


def llem_command() -> list[str]:
    """The installed console script (``[project.scripts] llem = "llem.cli:main"``)."""
    script = Path(sys.executable).with_name("llem")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "llem"]


PLAIN_LIST = (
    "import sqlite3, sys\n"
    "connection = sqlite3.connect(sys.argv[1])\n"
    'for row in connection.execute("SELECT experiment_id, model, backend, status, created_at, '
    "output_tokens_per_s, output_tokens_per_j FROM experiments WHERE status = 'completed' "
    f'ORDER BY created_at DESC LIMIT {LIST_LIMIT}"):\n'
    "    print(*row, sep=' | ')\n"
)

PROBE = (
    "import sys\n"
    "from llem.cli import main\n"
    "sys.argv = ['llem', 'results', 'list', '--db', sys.argv[1]]\n"
    "code = 0\n"
    "try:\n"
    "    main()\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    f"loaded = [m for m in {HEAVY_MODULES!r} if m in sys.modules]\n"
    "print('@@probe', code, *loaded, file=sys.stderr)\n"
)


def python_env(pycache: Path | None) -> dict[str, str]:
    """The subprocesses' environment. With ``pycache``: bytecode written to and read from
    there (what a normal install gives from the second run on), whatever this environment
    says. Without: this environment as it is (where PYTHONDONTWRITEBYTECODE is set and the
    venv holds no ``__pycache__``, every non-stdlib module is compiled at each start)."""
    env = os.environ | {"COLUMNS": "160", "NO_COLOR": "1"}
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def run(command: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=env, check=False
    )


def failure(process: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip(" │╭╰─╮╯") for line in process.stderr.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("Usage:", "Try "))]
    return f"exit {process.returncode}: {lines[-1] if lines else '(no message)'}"


@dataclass
class ImportLine:
    level: int
    cumulative_us: int
    module: str


@dataclass
class Imports:
    loaded: list[str] = field(default_factory=list)
    lines: list[ImportLine] = field(default_factory=list)

    def chain(self, module: str) -> str:
        """``pydantic <- llem.config <- ... <- llem.cli``: who imported ``module`` first."""
        for index, line in enumerate(self.lines):
            if line.module == module:
                names, level = [module], line.level
                for later in self.lines[index + 1 :]:
                    if later.level < level:
                        names.append(later.module)
                        level = later.level
                return " <- ".join(names)
        return module

    def heaviest(self, count: int) -> list[ImportLine]:
        """The heaviest imports the process made itself (not on behalf of another import)."""
        top = [line for line in self.lines if line.level == 0]
        return sorted(top, key=lambda c: -c.cumulative_us)[:count]


def probe_imports(db: Path, env: dict[str, str]) -> tuple[Imports, int | str | None]:
    process = run([sys.executable, "-X", "importtime", "-c", PROBE, str(db)], env)
    imports = Imports()
    code: int | str | None = None
    for text in process.stderr.splitlines():
        if text.startswith("@@probe"):
            _, code_text, *imports.loaded = text.split()
            code = int(code_text) if code_text.lstrip("-").isdigit() else code_text
        elif text.startswith("import time:") and "|" in text and "cumulative" not in text:
            _, cumulative, name = text.split("|", 2)
            level = (len(name) - len(name.lstrip(" ")) - 1) // 2
            imports.lines.append(ImportLine(level, int(cumulative), name.strip()))
    return imports, code


def plain_json() -> str:
    """The ``--limit 0 --json`` baseline: the same SELECT, ``json.dumps(indent=2)`` of a dict
    per row."""
    return (
        "import json, sqlite3, sys\n"
        "connection = sqlite3.connect(sys.argv[1])\n"
        f'cursor = connection.execute("SELECT {summary_columns()} FROM experiments '
        "WHERE status = 'completed' ORDER BY created_at DESC, experiment_id DESC\")\n"
        "names = [column[0] for column in cursor.description]\n"
        "print(json.dumps([dict(zip(names, row)) for row in cursor], indent=2))\n"
    )


def bench_cli(db: Path, work: Path, repeat: int) -> tuple[list[Row], list[str]]:
    script = llem_command()
    listing = [*script, "results", "list", "--db", str(db)]
    everything = [*script, "results", "list", "--limit", "0", "--json", "--db", str(db)]
    shown = "llem results list --db DB"
    shown_json = "llem results list --limit 0 --json --db DB"
    pycache = work / "pycache"
    shutil.rmtree(pycache, ignore_errors=True)
    cached = python_env(pycache)
    as_is = python_env(None)
    no_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    commands = {
        "pass": [sys.executable, "-c", "pass"],
        "plain": [sys.executable, "-c", PLAIN_LIST, str(db)],
        "plain_json": [sys.executable, "-c", plain_json(), str(db)],
        "skeleton": [sys.executable, "-c", "import llem.cli"],
        "typer_floor": [sys.executable, "-c", "import llem.cli, typer._adapters"],
        "llem": listing,
        "llem_json": everything,
    }
    notes: list[str] = []
    probe = run(listing, cached)
    probe_json = run(everything, cached)
    available = probe.returncode == 0 and probe_json.returncode == 0
    if available:
        with contextlib.closing(sqlite3.connect(db)) as connection:
            (completed,) = connection.execute(
                "SELECT count(*) FROM experiments WHERE status = 'completed'"
            ).fetchone()
        listed = json.loads(probe_json.stdout)
        assert len(listed) == completed, (len(listed), completed)
        expected = json.loads(run(commands["plain_json"], cached).stdout)
        assert [r["experiment_id"] for r in listed] == [r["experiment_id"] for r in expected]
        notes.append(
            f"`{shown}` printed {len(probe.stdout.splitlines())} lines; `{shown_json}` "
            f"{len(probe_json.stdout) / 1e6:.1f} MB ({completed:,} experiments)"
        )
    else:
        notes.append(f"`{shown}` not measured: {failure(probe)}; {failure(probe_json)}")
        for name in ("llem", "llem_json"):
            del commands[name]
    cases: dict[str, Callable[[], object]] = {
        name: functools.partial(run, command, cached) for name, command in commands.items()
    }
    if no_bytecode:
        for name in ("plain", "plain_json", "llem", "llem_json"):
            if name in commands:
                cases[f"as_is_{name}"] = functools.partial(run, commands[name], as_is)
    times = alternate(cases, repeat)
    rows = [
        Row(
            f"`{shown}`, bytecode cached (baseline: python -c sqlite3 SELECT + print)",
            times.get("llem"),
            times["plain"],
            CLI_TARGET_S,
            "PYTHONPYCACHEPREFIX in the workdir, filled by the warm-up",
        ),
        Row(
            f"`{shown}`, bytecode cached (baseline: python -c pass)",
            times.get("llem"),
            times["pass"],
            CLI_TARGET_S,
        ),
        Row(
            f"`{shown_json}`, bytecode cached (baseline: python -c SELECT + json.dumps)",
            times.get("llem_json"),
            times["plain_json"],
            CLI_JSON_TARGET_S,
            "baseline: the same SELECT of every completed experiment, json.dumps(indent=2) "
            "of a dict per row, printed",
        ),
    ]
    if no_bytecode:
        rows += [
            Row(
                f"`{shown}`, this environment as is (baseline: the same SELECT)",
                times.get("as_is_llem"),
                times["as_is_plain"],
                None,
                "PYTHONDONTWRITEBYTECODE=1 is set here and the venv holds no __pycache__, so "
                "every third-party and llem module is compiled from source at each start",
            ),
            Row(
                f"`{shown_json}`, this environment as is (baseline: the same)",
                times.get("as_is_llem_json"),
                times["as_is_plain_json"],
            ),
        ]
    rows += [
        Row("python -c 'import llem.cli' (the CLI's floor)", times["skeleton"], times["pass"]),
        Row(
            "python -c 'import llem.cli, typer._adapters' (+ typer's pydantic)",
            times["typer_floor"],
            times["pass"],
            None,
            "typer 0.29 imports typer._adapters (pydantic) to coerce any option that is not a "
            "bool flag, so every command with one pays this floor",
        ),
        Row("python -c sqlite3 SELECT + print (baseline)", times["plain"], times["pass"]),
    ]
    imports, code = probe_imports(db, cached)
    if available and code == 0:
        heavy = [m for m in HEAVY_MODULES if m in imports.loaded]
        notes.append(
            "`llem results list` imports: "
            + (", ".join(f"{m} ({imports.chain(m)})" for m in heavy) if heavy else "none of them")
            + f"; not imported: {', '.join(m for m in HEAVY_MODULES if m not in heavy)}"
        )
    else:
        notes.append(f"imports of `llem results list`: n/a (the command exited {code})")
        notes.append(
            "importing llem.cli alone loads: "
            + (", ".join(f"{m} ({imports.chain(m)})" for m in imports.loaded) or "none of them")
        )
    heaviest = imports.heaviest(5)
    if heaviest:
        notes.append(
            "its heaviest imports (-X importtime, cumulative, bytecode cached): "
            + ", ".join(f"{c.module} {c.cumulative_us / 1e3:.0f} ms" for c in heaviest)
        )
    return rows, notes


# -- where ingest and export time goes -------------------------------------------------------

ProfileParts = dict[str, tuple[tuple[str, str], ...]]
"""Each part: (file suffix, function name) pairs whose cumulative time it sums; the name
``*`` sums the own time of every function of that file instead."""

INGEST_PROFILE_PARTS: ProfileParts = {
    "ExperimentResult.from_json (read + pydantic validation)": (("result.py", "from_json"),),
    "row building (rows.py)": (
        ("rows.py", "experiment_row"),
        ("rows.py", "requests_table_rows"),
        ("rows.py", "warnings_table_rows"),
    ),
    "sqlite statements (execute/executemany, BEGIN/COMMIT)": (
        ("~", "<method 'execute' of 'sqlite3.Connection' objects>"),
        ("~", "<method 'executemany' of 'sqlite3.Connection' objects>"),
    ),
    "sha256 of result.json (read_bytes + hash)": (
        ("pathlib.py", "read_bytes"),
        ("~", "<built-in method _hashlib.openssl_sha256>"),
        ("~", "<method 'hexdigest' of '_hashlib.HASH' objects>"),
    ),
    "paths (_result_dir, _stored_path)": (
        ("ingest.py", "_result_dir"),
        ("connection.py", "_stored_path"),
    ),
    "directory walk (result_dirs)": (("_sqlite.py", "result_dirs"),),
}

EXPORT_PROFILE_PARTS: ProfileParts = {
    "ExperimentResult.from_json (read + pydantic validation)": (("result.py", "from_json"),),
    "row values (row_values: the summary's and the requests' column getters)": (
        ("columns.py", "row_values"),
    ),
    "each_request (a RequestRow per request)": (("requests.py", "each_request"),),
    "config rows (flatten_config)": (("config.py", "flatten_config"),),
    "xlsxwriter: cell writes (write_*, rows flushed as XML)": (
        ("xlsxwriter/worksheet.py", "cell_wrapper"),
    ),
    "xlsxwriter: close (sheets assembled, zipped)": (("xlsxwriter/workbook.py", "close"),),
    "llem's writer itself (own time in xlsx.py)": (("exporters/xlsx.py", "*"),),
}


def profile_split(
    title: str, top: str, parts: ProfileParts, action: Callable[[], object]
) -> list[str]:
    """cProfile of ``action``, split into ``parts`` (shares of the time inside ``top``)."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    action()
    profiler.disable()
    elapsed = time.perf_counter() - started
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = next(value[3] for key, value in stats.items() if key[2] == top)
    lines = [
        f"cProfile of {title}: {elapsed:.2f} s with the profiler ({total:.2f} s inside {top}; "
        "the profiler's cost per call inflates the parts made of many small calls)",
        "",
        "| part | cumulative | share |",
        "|---|---|---|",
    ]
    for part, functions in parts.items():
        spent = 0.0
        for (file, _, name), value in stats.items():
            for suffix, wanted in functions:
                if file.endswith(suffix) and wanted == "*":
                    spent += value[2]
                elif file.endswith(suffix) and name == wanted:
                    spent += value[3]
        lines.append(f"| {part} | {spent:.3f} s | {spent / total:.0%} |")
    lines += ["", "top 12 by own time:", ""]
    ranked = sorted(stats.items(), key=lambda item: -item[1][2])[:12]
    for (file, line, name), (_, calls, own, cumulative, _c) in ranked:
        where = f"{Path(file).name}:{line}" if file != "~" else "builtin"
        lines.append(
            f"- {name} ({where}): {own:.3f} s own, {cumulative:.3f} s cum, {calls:,} calls"
        )
    return lines


def profile_ingest(root: Path, work: Path, count: int) -> list[str]:
    """cProfile of import_tree over ``count`` results (hard links of the tree's files)."""
    subset = work / "profile-tree"
    shutil.rmtree(subset, ignore_errors=True)
    for directory in sorted(p for p in root.iterdir() if p.is_dir())[:count]:
        (subset / directory.name).mkdir(parents=True)
        os.link(directory / "result.json", subset / directory.name / "result.json")
    db = work / "profile.db"
    remove_db(db)
    with ResultStore(db) as store:
        lines = profile_split(
            f"import_tree over {count:,} results",
            "import_tree",
            INGEST_PROFILE_PARTS,
            lambda: store.import_tree(subset),
        )
    shutil.rmtree(subset)
    remove_db(db)
    return lines


def profile_export(root: Path, work: Path, count: int) -> list[str]:
    """cProfile of the xlsx export of ``count`` results, loaded one at a time."""
    directories = sorted(p for p in root.iterdir() if p.is_dir())[:count]
    target = work / "profile.xlsx"
    lines = profile_split(
        f"export of {count:,} results to xlsx (from_json each)",
        "export",
        EXPORT_PROFILE_PARTS,
        lambda: export((ExperimentResult.from_json(d) for d in directories), target),
    )
    target.unlink()
    return lines


# -- main ------------------------------------------------------------------------------------


@contextlib.contextmanager
def working_directory(path: str | None) -> Iterator[Path]:
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="llem-bench-store-") as work:
        yield Path(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=EXPERIMENTS)
    parser.add_argument("--requests-per-experiment", type=int, default=REQUESTS)
    parser.add_argument(
        "--workdir", default=None, help="keep the generated tree here (default: a temp dir)"
    )
    parser.add_argument(
        "--repeat", type=int, default=REPEAT, help="timed rounds of queries, exports, CLI runs"
    )
    parser.add_argument("--ingest-rounds", type=int, default=INGEST_ROUNDS)
    parser.add_argument(
        "--bulk-exports",
        type=int,
        default=BULK_EXPORTS,
        metavar="N",
        help="results in the bulk export (the first N of the tree)",
    )
    parser.add_argument(
        "--export-rounds", type=int, default=EXPORT_ROUNDS, help="timed rounds of bulk exports"
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="cProfile import_tree over N results"
    )
    parser.add_argument(
        "--profile-export",
        type=int,
        default=0,
        metavar="N",
        help="cProfile the xlsx export of N results",
    )
    args = parser.parse_args()
    print(
        f"llem results store bench: {platform.python_implementation()} "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, "
        f"{platform.machine()}"
    )
    with working_directory(args.workdir) as work:
        root = result_tree(work, args.experiments, args.requests_per_experiment)
        size = tree_size(root)
        bulk = min(args.bulk_exports, args.experiments)
        print(
            f"tree: {args.experiments:,} results x {args.requests_per_experiment} requests, "
            f"{size / 1e6:,.0f} MB of result.json; {args.ingest_rounds} ingest rounds, "
            f"{args.export_rounds} rounds of bulk exports ({bulk:,} results), "
            f"{args.repeat} rounds of everything else; one warm-up before each but ingest"
        )
        rows, db = bench_ingest(root, work, args.experiments, args.ingest_rounds)
        rows += bench_queries(db, args.repeat, args.experiments)
        rows += bench_export(export_fixture(work), work, args.repeat)
        rows += bench_bulk_export(root, work, bulk, args.export_rounds)
        cli_rows, notes = bench_cli(db, work, args.repeat)
        rows += cli_rows
        lines = ["", *table(rows), ""]
        lines += [f"- {row.measurement}: {row.note}" for row in rows if row.note]
        lines += [f"- {note}" for note in notes]
        if args.profile:
            lines += ["", *profile_ingest(root, work, args.profile)]
        if args.profile_export:
            lines += ["", *profile_export(root, work, min(args.profile_export, args.experiments))]
        remove_db(db)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
