"""Save + load of a large result, and late aggregation of many processes, against baselines.

(1) Save + load of an ``ExperimentResult`` with 100,000 requests (4 processes x 25,000, each
    request 1 to 32 output tokens, so about 1.55 million inter-token gaps) and a 1,000,000-row
    power/temperature timeseries (8 GPUs x 125,000 samples, every sidecar column).
    - llem save: ``write_timeseries`` of the 1,000,000 samples as the sampler collects them
      (``llem_energy.sampler.SampleColumns``, built in setup by appending each
      ``PowerSample``, as the sampler does tick by tick) to a file, then
      ``result.save(dir, timeseries_source=that file)`` (result.json written atomically with
      fsync, the sidecar copied in atomically).
    - llem load: ``ExperimentResult.from_json(dir)`` (validated, with migrations checked)
      plus ``read_timeseries`` of the sidecar it names.
    - Baseline, in the same run: ``json.dumps`` of the same document (``result.model_dump(
      mode="json")``, compact, the C encoder) written to a file, plus ``pq.write_table`` of the
      same rows as a ``pyarrow.Table`` (default options); ``json.loads`` of that file plus
      ``pq.read_table``. Target: llem at most 1.5x the baseline (save + load together).
    - Parts, the same work split, and the one part with its own target: ``write_timeseries``
      of the sampler's columns at most 1.5x ``pq.write_table`` of the ready table (it also
      fsyncs and compresses with zstd, where the baseline uses snappy). A reference row shows
      ``write_timeseries`` of the 1,000,000 ``PowerSample`` objects (rows, the older path).
      ``--only timeseries`` runs just these three.
(2) ``aggregate_results`` of 8 processes x 10,000 requests x 101 output tokens: 100 gaps per
    request, so 1,000,000 inter-token latencies per process and 8,000,000 in all (plus
    80,000 TTFT, TPOT and E2E values).
    - Baseline, in the same run: the same four metrics with numpy from the same raw
      results: each metric's values concatenated from the requests into one array
      (``np.fromiter``), then ``np.percentile(..., [50, 90, 95, 99])``, mean, min and max.
      Target: llem at most 1.25x the baseline. Reference rows (no target): ``np.percentile``
      alone on an array of the 8,000,000 gaps built beforehand; and ``aggregate_results`` of
      the same requests started one every 50 ms in each process under a load with a rate and
      a bound, where aggregation also finds the steady state (requests in flight over time,
      every token's arrival), work the baseline does not do.

Setup (building the documents) is not timed. Each case: one warm-up, then ROUNDS timed rounds
with the baseline and llem alternating; the table shows the median and the spread (max - min).

Run: uv run --frozen python bench/bench_persistence.py [--quick] [--only PART]
"""

import argparse
import gc
import itertools
import json
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from llem_energy.sampler import SampleColumns
from llem_persistence import aggregate_results, read_timeseries, write_timeseries
from llem_persistence.timeseries import TIMESERIES_SCHEMA
from llem_schema import (
    TIMESERIES_FILE,
    ExperimentConfig,
    ExperimentResult,
    PowerSample,
    RawProcessResult,
    RequestRecord,
)
from llem_schema.testing import EXAMPLE_START, example_config, example_raw_result

SAVE_PROCESSES = 4
SAVE_REQUESTS_PER_PROCESS = 25_000
SAVE_MAX_TOKENS = 32
TIMESERIES_GPUS = 8
TIMESERIES_ROWS = 1_000_000
AGG_PROCESSES = 8
AGG_REQUESTS_PER_PROCESS = 10_000
AGG_OUTPUT_TOKENS = 101  # 100 gaps per request -> 1,000,000 gaps per process
AGG_RATE = 20.0  # requests/s of each process in the reference case under load
PERCENTILES = [50.0, 90.0, 95.0, 99.0]


# -- setup (not timed) ---------------------------------------------------------------------


def build_requests(
    rng: np.random.Generator,
    count: int,
    first_index: int,
    tokens: Sequence[int],
    start_every_s: float | None = None,
) -> list[RequestRecord]:
    """``count`` consistent requests, built with ``model_construct`` (setup speed only);
    with ``start_every_s``, one starting every so many seconds."""
    gaps = rng.uniform(5.0, 30.0, size=int(sum(t - 1 for t in tokens))).tolist()
    ttfts = rng.uniform(10.0, 80.0, size=count).tolist()
    requests = []
    position = 0
    for offset in range(count):
        n_gaps = tokens[offset] - 1
        itl = gaps[position : position + n_gaps]
        position += n_gaps
        requests.append(
            RequestRecord.model_construct(
                request_index=first_index + offset,
                batch_index=offset // 8,
                input_tokens=32 + offset % 97,
                output_tokens=tokens[offset],
                ttft_ms=ttfts[offset],
                e2e_ms=ttfts[offset] + sum(itl),
                itl_ms=itl,
                start_s=None if start_every_s is None else offset * start_every_s,
            )
        )
    return requests


def build_raws(
    config: ExperimentConfig,
    processes: int,
    per_process: int,
    tokens_of: Callable[[int], int],
    start_every_s: float | None = None,
) -> list[RawProcessResult]:
    rng = np.random.default_rng(7)
    raws = []
    for index in range(processes):
        tokens = [tokens_of(i) for i in range(per_process)]
        raws.append(
            example_raw_result(
                process_index=index,
                num_processes=processes,
                config=config,
                duration_s=600.0,
                start_time=EXAMPLE_START + timedelta(seconds=0.1 * index),
                requests=build_requests(
                    rng, per_process, index * per_process, tokens, start_every_s
                ),
            )
        )
    return raws


def build_timeseries() -> pa.Table:
    rng = np.random.default_rng(11)
    per_gpu = TIMESERIES_ROWS // TIMESERIES_GPUS
    columns = {
        "timestamp_s": np.repeat(np.arange(per_gpu) * 0.1, TIMESERIES_GPUS),
        "gpu_index": np.tile(np.arange(TIMESERIES_GPUS, dtype=np.int32), per_gpu),
        "gpu_power_w": rng.normal(250.0, 40.0, TIMESERIES_ROWS).round(3),
        "gpu_temperature_c": rng.normal(65.0, 5.0, TIMESERIES_ROWS).round(0),
        "gpu_memory_used_mb": rng.uniform(1000.0, 70000.0, TIMESERIES_ROWS).round(0),
        "gpu_utilization_pct": rng.uniform(0.0, 100.0, TIMESERIES_ROWS).round(0),
        "clock_event_reasons": np.zeros(TIMESERIES_ROWS, dtype=np.uint64),
    }
    return pa.Table.from_pydict(columns, schema=TIMESERIES_SCHEMA)


def samples_of(table: pa.Table) -> list[PowerSample]:
    return [PowerSample(**row) for row in table.to_pylist()]


def columns_of(samples: Sequence[PowerSample]) -> SampleColumns:
    """The samples as the sampler collects them: appended one by one, as it does each tick."""
    columns = SampleColumns()
    for sample in samples:
        columns.append(sample)
    return columns


# -- timing --------------------------------------------------------------------------------


def timed(action: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def alternate(cases: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """One warm-up of every case, then ``rounds`` rounds running each case once in turn."""
    for action in cases.values():
        action()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, action in cases.items():
            times[name].append(timed(action))
    return times


def row(case: str, values: Sequence[float], baseline: float | None, target: str = "") -> str:
    median = statistics.median(values)
    spread = max(values) - min(values)
    ratio = f"{median / baseline:.2f}" if baseline else ""
    return f"| {case} | {median:.3f} s | {spread:.3f} s | {ratio} | {target} |"


# -- the timeseries write alone ------------------------------------------------------------


def timeseries_writes(
    table: pa.Table, samples: Sequence[PowerSample], columns: SampleColumns, work: Path
) -> dict[str, Callable[[], object]]:
    """The baseline and llem's two ways of writing the same 1,000,000 rows."""
    return {
        "base_save_parquet": lambda: pq.write_table(table, work / "plain.parquet"),
        "llem_save_parquet": lambda: write_timeseries(columns, work / "columns.parquet"),
        "llem_save_parquet_rows": lambda: write_timeseries(samples, work / "rows.parquet"),
    }


def timeseries_rows(times: dict[str, list[float]]) -> list[str]:
    base = statistics.median(times["base_save_parquet"])
    return [
        row("  part: baseline pq.write_table", times["base_save_parquet"], base),
        row(
            "  part: llem write_timeseries (the sampler's columns)",
            times["llem_save_parquet"],
            base,
            "<= 1.5",
        ),
        row(
            "  part: llem write_timeseries (1M PowerSample rows; reference)",
            times["llem_save_parquet_rows"],
            base,
        ),
    ]


def bench_timeseries(rounds: int, work: Path) -> list[str]:
    table = build_timeseries()
    samples = samples_of(table)
    columns = columns_of(samples)
    times = alternate(timeseries_writes(table, samples, columns, work), rounds)
    for name in ("columns", "rows"):
        assert read_timeseries(work / f"{name}.parquet").equals(table)
    return [
        f"timeseries write: {table.num_rows:,} rows ({TIMESERIES_GPUS} GPUs)",
        "",
        "| case | median | spread | ratio | target |",
        "|---|---|---|---|---|",
        *timeseries_rows(times),
    ]


# -- (1) save + load -------------------------------------------------------------------------


def bench_save_load(rounds: int, work: Path) -> list[str]:
    config = example_config(n=SAVE_PROCESSES * SAVE_REQUESTS_PER_PROCESS, max_new_tokens=64)
    rand = random.Random(3)
    tokens = [rand.randint(1, SAVE_MAX_TOKENS) for _ in range(SAVE_REQUESTS_PER_PROCESS)]
    raws = build_raws(config, SAVE_PROCESSES, SAVE_REQUESTS_PER_PROCESS, tokens.__getitem__)
    result = aggregate_results(
        raws, effective_config=config.model_dump(mode="json"), timeseries=TIMESERIES_FILE
    )
    table = build_timeseries()
    samples = samples_of(table)
    columns = columns_of(samples)
    document = result.model_dump(mode="json")
    n_gaps = sum(len(r.itl_ms) for raw in raws for r in raw.requests)

    counter = itertools.count()
    llem_dir = work / "llem"
    base_dir = work / "plain"
    staged = work / "staged.parquet"
    saved: list[Path] = []
    saved_plain: list[Path] = []
    without_sidecar = result.model_copy(update={"timeseries": None})

    def llem_save() -> None:
        write_timeseries(columns, staged)
        saved.append(result.save(llem_dir / str(next(counter)), timeseries_source=staged))

    def llem_load() -> None:
        loaded = ExperimentResult.from_json(saved[-1])
        assert loaded.timeseries is not None
        read_timeseries(saved[-1] / loaded.timeseries)

    def base_save() -> None:
        target = base_dir / str(next(counter))
        target.mkdir(parents=True)
        (target / "result.json").write_text(json.dumps(document), encoding="utf-8")
        pq.write_table(table, target / TIMESERIES_FILE)
        saved_plain.append(target)

    def base_load() -> None:
        json.loads((saved_plain[-1] / "result.json").read_text(encoding="utf-8"))
        pq.read_table(saved_plain[-1] / TIMESERIES_FILE)

    # Parts, to show where time goes (same work as the totals, split).
    def llem_save_json() -> None:
        without_sidecar.save(llem_dir / str(next(counter)))

    def llem_load_json() -> None:
        ExperimentResult.from_json(saved[-1] / "result.json")

    def base_save_json() -> None:
        target = base_dir / f"{next(counter)}.json"
        base_dir.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(document), encoding="utf-8")

    def base_load_json() -> None:
        json.loads((saved_plain[-1] / "result.json").read_text(encoding="utf-8"))

    def llem_load_parquet() -> None:
        read_timeseries(saved[-1] / TIMESERIES_FILE)

    def base_load_parquet() -> None:
        pq.read_table(saved_plain[-1] / TIMESERIES_FILE)

    totals = alternate(
        {
            "base_save": base_save,
            "llem_save": llem_save,
            "base_load": base_load,
            "llem_load": llem_load,
        },
        rounds,
    )
    parts = alternate(
        {
            "base_save_json": base_save_json,
            "llem_save_json": llem_save_json,
            "base_load_json": base_load_json,
            "llem_load_json": llem_load_json,
            **timeseries_writes(table, samples, columns, work),
            "base_load_parquet": base_load_parquet,
            "llem_load_parquet": llem_load_parquet,
        },
        rounds,
    )
    # What was timed is right: llem's files load back as the original result and rows.
    assert ExperimentResult.from_json(saved[-1]) == result
    assert read_timeseries(saved[-1] / TIMESERIES_FILE).equals(table)
    for directory in (llem_dir, base_dir):
        shutil.rmtree(directory, ignore_errors=True)
    size_mb = len(json.dumps(document)) / 1e6
    both_base = [
        save + load for save, load in zip(totals["base_save"], totals["base_load"], strict=True)
    ]
    both_llem = [
        save + load for save, load in zip(totals["llem_save"], totals["llem_load"], strict=True)
    ]
    b = statistics.median
    return [
        f"(1) save + load: {SAVE_PROCESSES * SAVE_REQUESTS_PER_PROCESS:,} requests "
        f"({n_gaps:,} inter-token gaps, result.json {size_mb:.0f} MB compact), "
        f"{table.num_rows:,}-row timeseries",
        "",
        "| case | median | spread | ratio | target |",
        "|---|---|---|---|---|",
        row(
            "baseline save: json.dumps + write, pq.write_table",
            totals["base_save"],
            b(totals["base_save"]),
        ),
        row(
            "llem save: write_timeseries + result.save", totals["llem_save"], b(totals["base_save"])
        ),
        row(
            "baseline load: json.loads, pq.read_table", totals["base_load"], b(totals["base_load"])
        ),
        row("llem load: from_json + read_timeseries", totals["llem_load"], b(totals["base_load"])),
        row("baseline save + load", both_base, b(both_base)),
        row("llem save + load", both_llem, b(both_base), "<= 1.5"),
        row("  part: baseline json save", parts["base_save_json"], b(parts["base_save_json"])),
        row(
            "  part: llem result.save (json only)",
            parts["llem_save_json"],
            b(parts["base_save_json"]),
        ),
        row("  part: baseline json load", parts["base_load_json"], b(parts["base_load_json"])),
        row("  part: llem from_json", parts["llem_load_json"], b(parts["base_load_json"])),
        *timeseries_rows(parts),
        row(
            "  part: baseline pq.read_table",
            parts["base_load_parquet"],
            b(parts["base_load_parquet"]),
        ),
        row(
            "  part: llem read_timeseries",
            parts["llem_load_parquet"],
            b(parts["base_load_parquet"]),
        ),
    ]


# -- (2) aggregation -------------------------------------------------------------------------


def numpy_latency(raws: Sequence[RawProcessResult]) -> dict[str, tuple[float, ...]]:
    """The baseline: each metric concatenated into one array, then numpy's statistics."""
    requests = [r for raw in raws for r in raw.requests]
    columns = {
        "ttft": np.fromiter((r.ttft_ms for r in requests if r.ttft_ms is not None), float),
        "e2e": np.fromiter((r.e2e_ms for r in requests if r.e2e_ms is not None), float),
        "tpot": np.fromiter((t for r in requests if (t := r.tpot_ms) is not None), float),
        "itl": np.fromiter(
            itertools.chain.from_iterable(r.itl_ms for r in requests),
            float,
            count=sum(len(r.itl_ms) for r in requests),
        ),
    }
    return {
        name: (
            *np.percentile(values, PERCENTILES).tolist(),
            float(values.mean()),
            float(values.min()),
            float(values.max()),
        )
        for name, values in columns.items()
    }


def bench_aggregation(rounds: int) -> list[str]:
    config = example_config(n=AGG_PROCESSES * AGG_REQUESTS_PER_PROCESS, max_new_tokens=128)
    raws = build_raws(config, AGG_PROCESSES, AGG_REQUESTS_PER_PROCESS, lambda _: AGG_OUTPUT_TOKENS)
    effective = config.model_dump(mode="json")
    # The same requests (the same seed), started one every 1/rate s under a rate with a
    # bound: aggregation then also finds their steady state (no baseline does that work).
    loaded = example_config(
        n=AGG_PROCESSES * AGG_REQUESTS_PER_PROCESS,
        max_new_tokens=128,
        load={"request_rate": AGG_RATE, "max_concurrency": 64},
    )
    loaded_raws = build_raws(
        loaded,
        AGG_PROCESSES,
        AGG_REQUESTS_PER_PROCESS,
        lambda _: AGG_OUTPUT_TOKENS,
        start_every_s=1 / AGG_RATE,
    )
    loaded_effective = loaded.model_dump(mode="json")
    gaps = np.fromiter(
        itertools.chain.from_iterable(r.itl_ms for raw in raws for r in raw.requests), float
    )
    outputs: dict[str, object] = {}

    def base() -> None:
        outputs["numpy"] = numpy_latency(raws)

    def llem() -> None:
        outputs["llem"] = aggregate_results(raws, effective_config=effective)

    def reference() -> None:
        np.percentile(gaps, PERCENTILES)

    def llem_loaded() -> None:
        outputs["loaded"] = aggregate_results(loaded_raws, effective_config=loaded_effective)

    times = alternate(
        {"base": base, "llem": llem, "reference": reference, "loaded": llem_loaded}, rounds
    )
    result = outputs["llem"]
    assert isinstance(result, ExperimentResult)
    expected = outputs["numpy"]
    assert isinstance(expected, dict)
    itl = result.latency.itl
    assert itl is not None
    assert itl.count == gaps.size
    got = (itl.median_ms, itl.p90_ms, itl.p95_ms, itl.p99_ms, itl.mean_ms, itl.min_ms, itl.max_ms)
    assert np.allclose(got, expected["itl"], rtol=1e-9, atol=0.0), (got, expected["itl"])
    under_load = outputs["loaded"]
    assert isinstance(under_load, ExperimentResult)
    assert under_load.steady_state is not None
    assert under_load.latency == result.latency
    b = statistics.median(times["base"])
    return [
        f"(2) aggregation: {AGG_PROCESSES} processes x {AGG_REQUESTS_PER_PROCESS:,} requests x "
        f"{AGG_OUTPUT_TOKENS} output tokens = {gaps.size:,} inter-token latencies "
        f"({gaps.size // AGG_PROCESSES:,} per process)",
        "",
        "| case | median | spread | ratio | target |",
        "|---|---|---|---|---|",
        row("baseline: numpy concatenation + np.percentile (4 metrics)", times["base"], b),
        row("llem: aggregate_results", times["llem"], b, "<= 1.25"),
        row("reference: np.percentile of the 8M gaps alone", times["reference"], b),
        row(
            f"reference: llem aggregate_results, requests started at {AGG_RATE:g}/s "
            "(steady state too)",
            times["loaded"],
            b,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 timed rounds instead of 5")
    parser.add_argument("--only", choices=["save-load", "timeseries", "aggregation"], default=None)
    args = parser.parse_args()
    rounds = 3 if args.quick else 5
    print(f"llem persistence bench, {rounds} timed rounds per case after one warm-up")
    lines: list[str] = []
    if args.only in (None, "save-load"):
        with tempfile.TemporaryDirectory(prefix="llem-bench-") as work:
            lines += bench_save_load(rounds, Path(work))
        lines.append("")
    if args.only == "timeseries":
        with tempfile.TemporaryDirectory(prefix="llem-bench-") as work:
            lines += bench_timeseries(rounds, Path(work))
    if args.only in (None, "aggregation"):
        lines += bench_aggregation(rounds)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
