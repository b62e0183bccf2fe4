"""The HTML report of a large experiment, against drawing the same figures with matplotlib.

An experiment of 10,000 requests (4 processes x 2,500, one GPU each, 64 output tokens per
request, so 630,000 inter-token gaps; requests arriving at 1/s per process, Poisson) and a
power timeseries of 1,000,000 rows (4 GPUs x 250,000 samples at 100 Hz: a 2,500 s window),
saved as llem saves a result: ``result.json`` with the Parquet sidecar beside it. Setup
(building and saving it, indexing it in a store) is not timed: every case starts from disk.

- **llem report (library)**: ``load_experiment(dir)`` + ``build_report([experiment])`` +
  ``write_html(report, path)``: what ``llem report`` runs. The figures: power and
  temperature over time, cumulative energy, latency by request start, latency
  distributions. The long series are reduced for display (``llem_report.reduce``): the power,
  temperature and energy lines as a min/max envelope per 1,000 slices of time, the CDFs at
  2,000 evenly spaced ranks.
- **llem report (command)**: ``python -m llem report <id> -o FILE --db DB`` in a fresh
  interpreter, so imports (matplotlib, pydantic, pyarrow) and start-up count too.
- **Baseline, matplotlib direct**: the same four figures, same sizes and resolution,
  drawn with matplotlib alone from the same files: ``json.loads`` of ``result.json``,
  ``pq.read_table`` of the sidecar, every sample drawn as a line (power and temperature
  panels; cumulative energy per GPU and in all), the 10,000 starts against TTFT and E2E
  as scatters, the CDFs as steps through every sorted value (``np.sort``); each figure saved
  as PNG at 110 dpi into memory and base64-embedded in a minimal HTML page. Nothing reduced,
  nothing of llem's; titles, legends and the window's shading, but not llem's footnotes,
  idle-baseline lines, steady-state shading, summary table or warnings.
- Reference: the baseline in a fresh interpreter (this script with ``--draw-baseline``), to
  set the command against.

Targets (the issue's): the report in under 5 s and under 5 MB.

Each case: one warm-up, then ROUNDS timed rounds with the cases in turn; the table shows the
median, the spread (max - min), the ratio of medians to the baseline, and the page's size.
``--profile N`` prints the N costliest calls (cumulative) of one library round by cProfile.

Run: uv run --frozen python bench/bench_report.py [--rounds N] [--profile N]
"""

import argparse
import base64
import cProfile
import gc
import io
import json
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from llem_schema import ExperimentConfig, ExperimentResult, RawProcessResult, RequestRecord

# llem is imported where it is used, so the baseline in a fresh interpreter
# (--draw-baseline) loads only what it needs: numpy, pyarrow and matplotlib.

PROCESSES: Final = 4
REQUESTS_PER_PROCESS: Final = 2_500
OUTPUT_TOKENS: Final = 64
RATE_PER_PROCESS: Final = 1.0  # requests/s
WINDOW_S: Final = 2_500.0
SAMPLE_HZ: Final = 100.0
SAMPLES_PER_GPU: Final = 250_000
DPI: Final = 110  # llem_report.html.PAGE_DPI
TARGET_S: Final = 5.0
TARGET_MB: Final = 5.0

FloatArray = npt.NDArray[np.float64]


# -- setup (not timed) ---------------------------------------------------------------------


def build_requests(rng: np.random.Generator, process: int) -> "list[RequestRecord]":
    """One process's requests: Poisson arrivals over the window, TTFT 30-150 ms, then 63
    gaps of 12-40 ms with an occasional stall, as a backend would report them."""
    from llem_schema import RequestRecord, RequestTiming

    starts = np.cumsum(rng.exponential(1.0 / RATE_PER_PROCESS, REQUESTS_PER_PROCESS))
    starts *= (WINDOW_S - 10.0) / starts[-1]
    ttfts = rng.uniform(0.03, 0.15, REQUESTS_PER_PROCESS)
    gaps = rng.uniform(0.012, 0.040, (REQUESTS_PER_PROCESS, OUTPUT_TOKENS - 1))
    gaps[rng.random(gaps.shape) < 0.002] += 0.25
    arrivals = (starts + ttfts)[:, None] + np.concatenate(
        (np.zeros((REQUESTS_PER_PROCESS, 1)), np.cumsum(gaps, axis=1)), axis=1
    )
    first = process * REQUESTS_PER_PROCESS
    return [
        RequestRecord.from_timing(
            RequestTiming(
                request_index=first + offset,
                batch_index=0,
                input_tokens=int(rng.integers(32, 512)),
                output_tokens=OUTPUT_TOKENS,
                start_s=float(starts[offset]),
                token_times_s=arrivals[offset].tolist(),
            ),
            origin_s=0.0,
        )
        for offset in range(REQUESTS_PER_PROCESS)
    ]


def build_raws(config: "ExperimentConfig", table: pa.Table) -> "list[RawProcessResult]":
    """One process per GPU; each GPU's energy the integral of its samples in the window."""
    from llem_schema.testing import EXAMPLE_START, example_raw_result

    times = table.column("timestamp_s").to_numpy()
    gpus = table.column("gpu_index").to_numpy()
    power = table.column("gpu_power_w").to_numpy()
    energy = []
    for index in range(PROCESSES):
        inside = (gpus == index) & (times >= 0.0) & (times <= WINDOW_S)
        t, w = times[inside], power[inside]
        energy.append(float(np.sum(np.diff(t) * (w[1:] + w[:-1]) / 2.0)))
    rng = np.random.default_rng(5)
    return [
        example_raw_result(
            process_index=index,
            num_processes=PROCESSES,
            config=config,
            duration_s=WINDOW_S,
            energy_j=energy[index],
            baseline_power_w=70.0,
            start_time=EXAMPLE_START + timedelta(milliseconds=20 * index),
            requests=build_requests(rng, index),
        )
        for index in range(PROCESSES)
    ]


def build_timeseries() -> pa.Table:
    """4 GPUs sampled at 100 Hz from 0.5 s before the window: power that follows a load
    with noise and spikes, temperature that warms up; rows by time, then GPU."""
    rng = np.random.default_rng(11)
    times = np.round(-0.5 + np.arange(SAMPLES_PER_GPU) / SAMPLE_HZ, 6)
    power, temperature = [], []
    for gpu in range(PROCESSES):
        load = 180.0 + 60.0 * np.sin(times / (90.0 + 13.0 * gpu)) + 10.0 * gpu
        watts = load + rng.normal(0.0, 25.0, SAMPLES_PER_GPU)
        watts[rng.random(SAMPLES_PER_GPU) < 0.001] += 250.0
        watts[times < 0.0] = 70.0
        power.append(np.clip(watts, 60.0, 700.0).round(3))
        warm = 40.0 + 30.0 * (1.0 - np.exp(-np.clip(times, 0.0, None) / 300.0))
        temperature.append((warm + rng.normal(0.0, 0.5, SAMPLES_PER_GPU)).round(0))
    return pa.table(
        {
            "timestamp_s": pa.array(np.repeat(times, PROCESSES)),
            "gpu_index": pa.array(np.tile(np.arange(PROCESSES), SAMPLES_PER_GPU), pa.int32()),
            "gpu_power_w": pa.array(np.stack(power, axis=1).reshape(-1)),
            "gpu_temperature_c": pa.array(np.stack(temperature, axis=1).reshape(-1)),
        }
    )


def save_experiment(work: Path) -> "tuple[Path, ExperimentResult, pa.Table]":
    """The result directory (result.json and the sidecar), as ``llem run`` leaves it."""
    from llem_persistence import aggregate_results
    from llem_schema import TIMESERIES_FILE
    from llem_schema.testing import example_config

    config = example_config(
        n=PROCESSES * REQUESTS_PER_PROCESS,
        max_new_tokens=OUTPUT_TOKENS,
        load={"request_rate": RATE_PER_PROCESS, "max_concurrency": 64},
    )
    table = build_timeseries()
    result = aggregate_results(
        build_raws(config, table),
        effective_config=config.model_dump(mode="json"),
        timeseries=TIMESERIES_FILE,
        samples=table,
    )
    source = work / "samples.parquet"
    pq.write_table(table, source)
    directory = result.save(work / "results", timeseries_source=source)
    source.unlink()
    return directory, result, table


# -- the baseline: matplotlib alone ----------------------------------------------------------


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _per_gpu(table: pa.Table) -> list[tuple[int, FloatArray, FloatArray, FloatArray]]:
    times = table.column("timestamp_s").to_numpy()
    gpus = table.column("gpu_index").to_numpy()
    power = table.column("gpu_power_w").to_numpy()
    temperature = table.column("gpu_temperature_c").to_numpy()
    found = []
    for gpu in np.unique(gpus).tolist():
        mine = np.flatnonzero(gpus == gpu)
        order = mine[np.argsort(times[mine], kind="stable")]
        found.append((int(gpu), times[order], power[order], temperature[order]))
    return found


def draw_baseline(directory: Path, page: Path) -> list[str]:
    """The four figures with matplotlib alone, every value drawn, in a minimal page; returns
    the PNGs (base64)."""
    document: dict[str, Any] = json.loads((directory / "result.json").read_text("utf-8"))
    table = pq.read_table(
        directory / document["timeseries"],
        columns=["timestamp_s", "gpu_index", "gpu_power_w", "gpu_temperature_c"],
    )
    gpus = _per_gpu(table)
    duration = float(document["duration_s"])
    name = document["experiment_id"]
    images = []

    figure = Figure(figsize=(8.0, 5.2), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    for gpu, times, watts, degrees in gpus:
        top.plot(times, watts, lw=0.9, label=f"GPU {gpu}")
        bottom.plot(times, degrees, lw=0.9)
    for axes in (top, bottom):
        axes.axvspan(0.0, duration, color="#d9d9d9", alpha=0.45, lw=0)
        axes.grid(alpha=0.3)
    top.set_title(f"Power and temperature: {name}", fontsize=10, loc="left")
    top.set_ylabel("power (W)")
    top.legend(fontsize=7, loc="lower right")
    bottom.set_ylabel("temperature (°C)")
    bottom.set_xlabel("time (s)")
    images.append(_png(figure))

    figure = Figure(figsize=(8.0, 3.6), layout="constrained")
    axes = figure.subplots()
    series = []
    for gpu, times, watts, _ in gpus:
        inside = (times >= 0.0) & (times <= duration)
        t, w = times[inside], watts[inside]
        joules = np.concatenate(([0.0], np.cumsum(np.diff(t) * (w[1:] + w[:-1]) / 2.0)))
        axes.plot(t, joules / 1e3, lw=1.0, label=f"GPU {gpu}")
        series.append((t, joules))
    grid = np.unique(np.concatenate([t for t, _ in series]))
    total = np.sum([np.interp(grid, t, j) for t, j in series], axis=0)
    axes.plot(grid, total / 1e3, lw=1.4, color="black", label="all GPUs")
    axes.set_title(f"Cumulative GPU energy: {name}", fontsize=10, loc="left")
    axes.set_ylabel("energy (kJ)")
    axes.set_xlabel("time (s)")
    axes.legend(fontsize=7, loc="upper left")
    axes.grid(alpha=0.3)
    images.append(_png(figure))

    processes = document["process_results"]
    requests = [r for p in processes for r in p["requests"]]
    began = [datetime.fromisoformat(p["start_time"]) for p in processes]
    starts = [
        r["start_s"] + (when - min(began)).total_seconds()
        for p, when in zip(processes, began, strict=True)
        for r in p["requests"]
    ]
    figure = Figure(figsize=(8.0, 3.8), layout="constrained")
    axes = figure.subplots()
    axes.scatter(starts, [r["e2e_ms"] for r in requests], s=1.5, lw=0, label="E2E")
    axes.scatter(starts, [r["ttft_ms"] for r in requests], s=1.5, lw=0, label="TTFT")
    axes.set_title(f"Latency by request start: {name}", fontsize=10, loc="left")
    axes.set_xlabel("request start (s)")
    axes.set_ylabel("latency (ms)")
    axes.legend(fontsize=7, loc="upper left", markerscale=2)
    axes.grid(alpha=0.3)
    images.append(_png(figure))

    figure = Figure(figsize=(8.0, 5.6), layout="constrained")
    columns: dict[str, Callable[[dict[str, Any]], list[float]]] = {
        "TTFT (ms)": lambda r: [r["ttft_ms"]],
        "ITL (ms)": lambda r: r["itl_ms"],
        "TPOT (ms)": lambda r: [(r["e2e_ms"] - r["ttft_ms"]) / (r["output_tokens"] - 1)],
        "E2E (ms)": lambda r: [r["e2e_ms"]],
    }
    for axes, (name, of) in zip(figure.subplots(2, 2).flatten(), columns.items(), strict=True):
        values = np.sort(np.array([v for r in requests for v in of(r)]))
        axes.step(values, np.arange(1, len(values) + 1) / len(values), where="post", lw=1.0)
        axes.set_xlabel(name, fontsize=8)
        axes.set_ylabel("fraction of values", fontsize=8)
        axes.grid(alpha=0.3)
    figure.suptitle(f"Latency distributions: {name}", fontsize=10, x=0.01, ha="left")
    images.append(_png(figure))

    body = "".join(f'<figure><img src="data:image/png;base64,{png}"></figure>' for png in images)
    page.write_text(
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{name}</title></head>'
        f"<body><h1>{name}</h1>{body}</body></html>\n",
        encoding="utf-8",
    )
    return images


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


def row(
    case: str,
    values: Sequence[float],
    baseline_s: float,
    size: int,
    baseline_size: int,
    target: bool = False,
) -> str:
    median = statistics.median(values)
    spread = max(values) - min(values)
    mb = size / 1e6
    verdict = ""
    if target:
        met = median < TARGET_S and mb < TARGET_MB
        verdict = f"< {TARGET_S:g} s, < {TARGET_MB:g} MB: {'met' if met else 'not met'}"
    return (
        f"| {case} | {median:.3f} s | {spread:.3f} s | {median / baseline_s:.2f} | "
        f"{mb:.2f} MB | {size / baseline_size:.3f} | {verdict} |"
    )


def run_bench(rounds: int, profile: int, work: Path) -> list[str]:
    from llem_report import build_report, load_experiment, write_html
    from llem_store import ResultStore

    directory, result, table = save_experiment(work)
    db = work / "llem.db"
    with ResultStore(db, create=True) as store:
        store.ingest(directory)
    pages = {name: work / f"{name}.html" for name in ("llem", "cli", "base", "base_cli")}

    def llem() -> None:
        write_html(build_report([load_experiment(directory)]), pages["llem"])

    def llem_command() -> None:
        command = ["report", result.experiment_id, "-o", str(pages["cli"]), "--db", str(db)]
        subprocess.run(
            [sys.executable, "-m", "llem", *command, "--overwrite"],
            check=True,
            capture_output=True,
        )

    def base() -> None:
        draw_baseline(directory, pages["base"])

    def base_command() -> None:
        subprocess.run(
            [sys.executable, __file__, "--draw-baseline", str(directory), str(pages["base_cli"])],
            check=True,
            capture_output=True,
        )

    times = alternate(
        {"base": base, "llem": llem, "base_cli": base_command, "cli": llem_command}, rounds
    )
    # What was timed is right: four figures on each page, the report's without notes.
    report = build_report([load_experiment(directory)])
    assert [f.name for f in report.figures] == [
        "power",
        "energy",
        "latency-by-start",
        "latency-cdf",
    ]
    assert not report.notes, report.notes
    for page in pages.values():
        assert page.read_text("utf-8").count("data:image/png;base64,") == 4, page
    sizes = {name: page.stat().st_size for name, page in pages.items()}
    gaps = sum(len(r.itl_ms) for p in result.process_results for r in p.requests)
    b, bs = statistics.median(times["base"]), sizes["base"]
    lines = [
        f"report of {PROCESSES * REQUESTS_PER_PROCESS:,} requests ({gaps:,} inter-token gaps; "
        f"result.json {(directory / 'result.json').stat().st_size / 1e6:.1f} MB) and a "
        f"{table.num_rows:,}-row timeseries ({PROCESSES} GPUs x {SAMPLES_PER_GPU:,}); "
        f"{rounds} rounds after one warm-up",
        "",
        "| case | median | spread | ratio | page size | size ratio | target |",
        "|---|---|---|---|---|---|---|",
        row("baseline: matplotlib direct, every value drawn", times["base"], b, bs, bs),
        row(
            "**llem report (library): load_experiment + build_report + write_html**",
            times["llem"],
            b,
            sizes["llem"],
            bs,
            target=True,
        ),
        row(
            "reference: the baseline in a fresh interpreter",
            times["base_cli"],
            b,
            sizes["base_cli"],
            bs,
        ),
        row(
            "**llem report (command): `python -m llem report ID -o FILE`**",
            times["cli"],
            b,
            sizes["cli"],
            bs,
            target=True,
        ),
    ]
    if profile:
        profiler = cProfile.Profile()
        profiler.runcall(llem)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(profile)
        lines += [
            "",
            "cProfile of one llem report (library) round, by cumulative time:",
            out.getvalue(),
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per case (3)")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="print the N costliest calls"
    )
    parser.add_argument("--draw-baseline", nargs=2, metavar=("DIR", "PAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.draw_baseline:
        draw_baseline(Path(args.draw_baseline[0]), Path(args.draw_baseline[1]))
        return
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    print(f"llem report bench, {args.rounds} timed rounds per case after one warm-up")
    with tempfile.TemporaryDirectory(prefix="llem-bench-") as work:
        print("\n".join(run_bench(args.rounds, args.profile, Path(work))))


if __name__ == "__main__":
    main()
