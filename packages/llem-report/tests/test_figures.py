"""Each figure function on results made with ``llem_schema.testing``: what it draws is read
back from the figure's artists and compared with the result's own numbers."""

import io
import math
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from pydantic import JsonValue

from llem_report import (
    Experiment,
    ReportError,
    configurations,
    cumulative_energy,
    latency_cdfs,
    latency_over_time,
    load_experiment,
    load_study,
    metric_vs_variable,
    pareto_front,
    power_over_time,
)
from llem_schema import ExperimentResult, MeasurementWarning, RequestRecord, StudyResult
from llem_schema.testing import EXAMPLE_START, example_raw_result, example_result, example_study

WATTS = (100.0, 250.0)
"""The power of GPU 0 and GPU 1 in the sampled run (conftest.py)."""

PowerTable = Callable[..., pa.Table]


class StudyOnDisk(Protocol):
    @property
    def directory(self) -> Path: ...


def lines(axes: Axes, prefix: str) -> list[Line2D]:
    return [line for line in axes.get_lines() if str(line.get_label()).startswith(prefix)]


def spans(axes: Axes) -> dict[str, tuple[float, float]]:
    """The shaded windows by label: x from, x to."""
    found = {}
    for patch in axes.patches:
        if isinstance(patch, Rectangle) and not str(patch.get_label()).startswith("_"):
            found[str(patch.get_label())] = (patch.get_x(), patch.get_x() + patch.get_width())
    return found


def footnote(figure: Figure) -> str:
    return "\n".join(text.get_text() for text in figure.texts)


def test_power_over_time_draws_each_gpu_its_baseline_and_the_energy_window(
    sampled_dir: Path, power_table: PowerTable
) -> None:
    experiment = load_experiment(sampled_dir)
    figure = power_over_time(experiment)
    power, temperature = figure.axes
    gpus = lines(power, "GPU")
    assert [line.get_label() for line in gpus] == ["GPU 0 (Example GPU)", "GPU 1 (Example GPU)"]
    for line, watts in zip(gpus, WATTS, strict=True):
        assert set(np.asarray(line.get_ydata()).tolist()) == {watts}
    table = power_table(experiment.result.duration_s)
    assert len(np.asarray(gpus[0].get_xdata())) == table.num_rows // 2  # short: nothing reduced
    baselines = lines(power, "idle baseline")
    assert [line.get_label() for line in baselines] == [
        "idle baseline, GPU 0: 5 W",
        "idle baseline, GPU 1: 5 W",
    ]
    assert [set(np.asarray(b.get_ydata()).tolist()) for b in baselines] == [{5.0}, {5.0}]
    assert spans(power) == {"energy window": (0.0, experiment.result.duration_s)}
    temperatures = [set(np.asarray(line.get_ydata()).tolist()) for line in temperature.get_lines()]
    assert temperatures == [{50.0}, {51.0}]
    assert "envelope" not in footnote(figure)


def test_the_steady_state_window_is_drawn_where_the_run_has_one(sampled_dir: Path) -> None:
    from llem_schema import SteadyStateMetrics

    experiment = load_experiment(sampled_dir)
    steady = SteadyStateMetrics(
        steady_state_window=(2.0, 7.5),
        target_concurrency=4,
        duration_s=5.5,
        output_tokens=100,
        output_tokens_per_s=100 / 5.5,
    )
    result = experiment.result.model_copy(update={"steady_state": steady})
    figure = power_over_time(Experiment(result, timeseries=experiment.timeseries))
    assert spans(figure.axes[0])["steady state"] == (2.0, 7.5)


def test_a_long_timeseries_is_reduced_keeping_its_peaks_and_says_so(
    two_gpu: ExperimentResult, power_table: PowerTable
) -> None:
    result = two_gpu
    table = power_table(result.duration_s, rate_hz=20_000.0)
    power = table.column("gpu_power_w").to_numpy().copy()
    power[123_457] = 900.0  # one sample's spike, on GPU 1 (odd rows)
    table = table.set_column(2, "gpu_power_w", pa.array(power))
    figure = power_over_time(Experiment(result, timeseries=table))
    gpu_1 = lines(figure.axes[0], "GPU 1")[0]
    drawn = np.asarray(gpu_1.get_ydata())
    assert len(drawn) <= 2 * 1_000 + 2
    assert drawn.max() == 900.0
    note = footnote(figure)
    assert f"of {table.num_rows:,} samples" in note
    assert "min/max envelope" in note


def test_cumulative_energy_ends_at_the_window_integral_of_each_gpu(sampled_dir: Path) -> None:
    experiment = load_experiment(sampled_dir)
    window_s = experiment.result.duration_s
    figure = cumulative_energy(experiment)
    axes = figure.axes[0]
    inside = [t for t in np.round(-0.5 + np.arange(200) / 10.0, 9) if 0.0 <= t <= window_s]
    span_s = inside[-1] - inside[0]
    ends = {
        str(line.get_label()).split(":")[0]: float(np.asarray(line.get_ydata())[-1])
        for line in axes.get_lines()
    }
    assert ends["GPU 0 (Example GPU)"] == pytest.approx(WATTS[0] * span_s)
    assert ends["GPU 1 (Example GPU)"] == pytest.approx(WATTS[1] * span_s)
    assert ends["all GPUs"] == pytest.approx(sum(WATTS) * span_s)
    assert ends["result's GPU energy"] == experiment.result.gpu_energy_j


def test_a_result_without_a_timeseries_has_no_power_figure() -> None:
    with pytest.raises(ReportError, match="has no power timeseries"):
        power_over_time(Experiment(example_result()))


def test_a_missing_sidecar_is_said_not_raised_on_load(sampled_dir: Path) -> None:
    (sampled_dir / "timeseries.parquet").unlink()
    experiment = load_experiment(sampled_dir)
    assert experiment.timeseries is None
    assert experiment.timeseries_note == (
        f"{sampled_dir}: timeseries sidecar 'timeseries.parquet' is missing; loaded without it "
        "(timeseries=None)"
    )
    with pytest.raises(ReportError, match=r"sidecar 'timeseries\.parquet' is missing"):
        cumulative_energy(experiment)


def test_latency_cdfs_draw_every_value_of_each_metric() -> None:
    result = example_result()
    records = [r for p in result.process_results for r in p.requests]
    figure = latency_cdfs(result)
    ttft, itl, tpot, e2e = figure.axes[:4]
    expected = {
        ttft: sorted(r.ttft_ms for r in records if r.ttft_ms is not None),
        itl: sorted(g for r in records for g in r.itl_ms),
        tpot: sorted(r.tpot_ms for r in records if r.tpot_ms is not None),
        e2e: sorted(r.e2e_ms for r in records if r.e2e_ms is not None),
    }
    for axes, values in expected.items():
        (line,) = axes.get_lines()
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        assert x[1:].tolist() == pytest.approx(values)
        assert y[0] == 0.0
        assert y[-1] == 1.0


def test_latency_cdfs_of_many_values_are_drawn_at_evenly_spaced_ranks() -> None:
    raw = example_raw_result(n_requests=600, seed=3)
    result = example_result([raw])
    figure = latency_cdfs(result)
    itl_line = figure.axes[1].get_lines()[0]
    gaps = sorted(g for r in raw.requests for g in r.itl_ms)
    assert len(gaps) > 2_000
    x = np.asarray(itl_line.get_xdata())
    assert len(x) == 2_001
    assert (x[1], x[-1]) == (gaps[0], gaps[-1])
    assert "evenly spaced ranks" in footnote(figure)


def test_latency_cdfs_label_experiments_by_the_settings_that_differ() -> None:
    from llem_schema.testing import example_config

    small = example_result(config=example_config(max_new_tokens=8))
    large = example_result(config=example_config(max_new_tokens=16))
    figure = latency_cdfs([small, large])
    labels = [str(line.get_label()) for line in figure.axes[0].get_lines()]
    assert labels == ["max_new_tokens=8", "max_new_tokens=16"]


def test_latency_over_time_puts_each_request_at_its_start_on_the_runs_clock() -> None:
    late = timedelta(seconds=2)
    failed = RequestRecord(
        request_index=99,
        batch_index=0,
        input_tokens=5,
        output_tokens=0,
        ttft_ms=None,
        e2e_ms=None,
        itl_ms=[],
        start_s=1.25,
        scheduled_s=1.25,
        error="HTTP 500",
    )
    first = example_raw_result(process_index=0, num_processes=2, n_requests=4)
    second = example_raw_result(
        process_index=1, num_processes=2, n_requests=4, start_time=EXAMPLE_START + late
    )
    second = second.model_copy(update={"requests": [*second.requests, failed]})
    result = example_result([first, second])
    figure = latency_over_time(result)
    axes = figure.axes[0]
    e2e, _ = (c for c in axes.collections if isinstance(c, PathCollection))
    expected = [
        (r.start_s + shift, r.e2e_ms)
        for shift, raw in ((0.0, first), (2.0, second))
        for r in raw.requests
        if r.e2e_ms is not None and r.start_s is not None
    ]
    assert np.asarray(e2e.get_offsets()).ravel().tolist() == pytest.approx(
        np.ravel(expected).tolist()
    )
    (marks,) = lines(axes, "failed")
    assert marks.get_label() == "failed (1)"
    assert np.asarray(marks.get_xdata()).tolist() == [3.25]


def test_requests_without_start_times_cannot_be_drawn_against_time() -> None:
    result = example_result()
    old = [
        r.model_copy(update={"start_s": None, "scheduled_s": None})
        for r in result.process_results[0].requests
    ]
    raw = result.process_results[0].model_copy(update={"requests": old})
    with pytest.raises(ReportError, match=r"carry no start times \(results before schema 1.2"):
        latency_over_time(result.model_copy(update={"process_results": [raw]}))


def test_the_sweep_figure_shows_the_means_and_intervals_of_study_json(
    study_dir: StudyOnDisk,
) -> None:
    study = load_study(study_dir.directory)
    summary = StudyResult.from_json(study_dir.directory)
    figure = metric_vs_variable(study, "energy_per_output_token_j")
    axes = figure.axes[0]
    assert axes.get_xlabel() == "batch_size (pytorch.batch_size)"
    containers = [c for c in axes.containers if isinstance(c, ErrorbarContainer)]
    assert [c.get_label() for c in containers] == ["max_new_tokens=8", "max_new_tokens=16"]
    for container, tokens in zip(containers, (8, 16), strict=True):
        data_line, _, (bars,) = container.lines
        assert isinstance(bars, LineCollection)
        points = [c for c in summary.configurations if c.overrides["max_new_tokens"] == tokens]
        points.sort(key=lambda c: str(c.overrides["pytorch.batch_size"]))
        stats = [c.metrics["energy_per_output_token_j"] for c in points]
        assert np.asarray(data_line.get_xdata()).tolist() == [1.0, 4.0]
        assert np.asarray(data_line.get_ydata()).tolist() == pytest.approx([s.mean for s in stats])
        segments = np.ravel([segment.tolist() for segment in bars.get_segments()]).tolist()
        bounds = []
        for s in stats:
            assert s.ci_low is not None
            assert s.ci_high is not None
            bounds.append((s.ci_low, s.ci_high))
        expected = [[x, low, x, high] for x, (low, high) in zip((1.0, 4.0), bounds, strict=True)]
        assert segments == pytest.approx(np.ravel(expected).tolist())
    assert "Mean of 2 cycles per configuration" in footnote(figure)


def test_the_sweep_figure_needs_a_known_metric_and_something_that_differs() -> None:
    result = example_result()
    with pytest.raises(
        ReportError, match="unknown metric 'joules': choose one of output_tokens_per_s, "
    ):
        metric_vs_variable([result], "joules")
    with pytest.raises(ReportError, match="do not differ in any setting: name the variable"):
        metric_vs_variable([result, result])


def test_the_pareto_front_joins_the_configurations_no_other_beats(study_dir: StudyOnDisk) -> None:
    study = load_study(study_dir.directory)
    figure = pareto_front(study)
    axes = figure.axes[0]
    means: dict[int, list[tuple[float, float]]] = {}
    for experiment in study.experiments:
        assert experiment.point is not None
        result = experiment.result
        assert result.latency.e2e is not None
        assert result.efficiency.energy_per_output_token_j is not None
        means.setdefault(experiment.point.point_index, []).append(
            (result.latency.e2e.p99_ms, result.efficiency.energy_per_output_token_j)
        )
    points = sorted(
        (float(np.mean([x for x, _ in v])), float(np.mean([y for _, y in v])))
        for v in means.values()
    )
    front, best = [], math.inf
    for x, y in points:
        if y < best:
            front.append((x, y))
            best = y
    (joined,) = [line for line in axes.get_lines() if line.get_color() == "#1f5f99"]
    drawn = list(
        zip(
            np.asarray(joined.get_xdata()).tolist(),
            np.asarray(joined.get_ydata()).tolist(),
            strict=True,
        )
    )
    assert [c for point in drawn for c in point] == pytest.approx(
        [c for point in front for c in point]
    )
    assert sorted(text.get_text() for text in axes.texts) == sorted(
        f"batch_size={b}, max_new_tokens={t}" for b in (1, 4) for t in (8, 16)
    )


def test_warnings_that_bear_on_a_figure_are_written_under_it(sampled_dir: Path) -> None:
    experiment = load_experiment(sampled_dir)
    throttled = MeasurementWarning.of("throttled", "GPU 0 slowed down for 3.0 s: let it cool")
    failed = MeasurementWarning.of("failed_requests", "2 of 24 requests failed")
    result = experiment.result.model_copy(update={"measurement_warnings": [throttled, failed]})
    marked = Experiment(result, timeseries=experiment.timeseries)
    power_note = footnote(power_over_time(marked))
    latency_note = footnote(latency_cdfs(marked))
    assert "\N{WARNING SIGN} throttled: GPU 0 slowed down for 3.0 s: let it cool" in power_note
    assert "failed_requests" not in power_note
    assert "\N{WARNING SIGN} failed_requests: 2 of 24 requests failed" in latency_note
    assert "throttled" not in latency_note


def failed_request(index: int, start_s: float) -> RequestRecord:
    """A request that failed after two tokens, a minute in."""
    return RequestRecord(
        request_index=index,
        batch_index=0,
        input_tokens=5,
        output_tokens=2,
        ttft_ms=59_000.0,
        e2e_ms=60_000.0,
        itl_ms=[1_000.0],
        start_s=start_s,
        scheduled_s=start_s,
        error="the connection dropped",
    )


def test_failed_requests_are_left_out_of_the_latency_figures_as_of_the_statistics() -> None:
    raw = example_raw_result(n_requests=8)
    raw = raw.model_copy(
        update={"requests": [*raw.requests, *(failed_request(100 + i, 1.0) for i in range(3))]}
    )
    result = example_result([raw])
    assert result.latency.e2e is not None
    cdfs = latency_cdfs(result)
    e2e = np.asarray(cdfs.axes[3].get_lines()[0].get_xdata())
    assert len(e2e) == 8 + 1
    assert e2e.max() == pytest.approx(result.latency.e2e.max_ms)
    assert "3 failed requests are left out" in footnote(cdfs)
    by_start = latency_over_time(result)
    assert len(np.asarray(by_start.axes[0].collections[0].get_offsets())) == 8
    assert "8 completed requests; 3 failed, marked at their start." in footnote(by_start)


def test_a_dollar_sign_in_a_warning_is_a_dollar_sign(sampled_dir: Path) -> None:
    experiment = load_experiment(sampled_dir)
    odd = MeasurementWarning.of("throttled", r"the field $\q$ cost $5 and $6")
    result = experiment.result.model_copy(update={"measurement_warnings": [odd]})
    figure = power_over_time(Experiment(result, timeseries=experiment.timeseries))
    assert r"throttled: the field $\q$ cost $5 and $6" in footnote(figure)
    figure.savefig(io.BytesIO(), format="png")  # drawn, not parsed as mathtext


def test_labels_tell_every_configuration_and_cycle_apart(tmp_path: Path) -> None:
    sweep: dict[str, list[JsonValue]] = {
        "pytorch.batch_size": [1, 4],
        "max_new_tokens": [8, 16],
        "n": [4, 8],
        "seed": [1, 2],
    }
    wide = load_study(example_study(tmp_path / "wide", sweep=sweep, cycles=1))
    assert len({c.label for c in configurations(list(wide.experiments))}) == 16
    repeated = load_study(example_study(tmp_path / "repeated"))
    names = [str(line.get_label()) for line in latency_cdfs(repeated).axes[0].get_lines()]
    assert len(set(names)) == 8
    assert "batch_size=1, max_new_tokens=8 (cycle 2)" in names


def test_a_gpu_index_on_two_hosts_cannot_be_drawn_per_gpu(power_table: PowerTable) -> None:
    raws = [
        example_raw_result(process_index=0, num_processes=2, device_uuid=f"GPU-{host}").model_copy(
            update={"hostname": host, "devices": []}
        )
        for host in ("node-a", "node-b")
    ]
    from llem_schema import DeviceInfo

    raws = [
        raw.model_copy(
            update={
                "process_index": i,
                "devices": [DeviceInfo(kind="gpu", index=0, uuid=f"GPU-{i}", name="Example GPU")],
            }
        )
        for i, raw in enumerate(raws)
    ]
    result = example_result(raws, timeseries="timeseries.parquet")
    table = power_table(result.duration_s, watts=(100.0,))
    with pytest.raises(ReportError, match=r"GPU index 0 names 2 GPUs \(on several hosts\)"):
        power_over_time(Experiment(result, timeseries=table))


def test_many_warnings_under_a_figure_end_with_how_many_more(sampled_dir: Path) -> None:
    experiment = load_experiment(sampled_dir)
    long = " ".join(["the GPU read far above its limit"] * 12)
    warnings = [MeasurementWarning.of("power_out_of_bounds", f"{i}: {long}") for i in range(6)]
    result = experiment.result.model_copy(update={"measurement_warnings": warnings})
    note = footnote(power_over_time(Experiment(result, timeseries=experiment.timeseries)))
    assert note.endswith("and 3 more warnings: see the report")
    assert note.count("\N{HORIZONTAL ELLIPSIS}") == 3


def test_the_sweep_intervals_are_those_of_study_json_with_its_seeds(tmp_path: Path) -> None:
    """Five cycles: the bootstrap interval depends on the seed (of two values it would not)."""
    directory = example_study(
        tmp_path,
        sweep={"pytorch.batch_size": [1, 4]},
        cycles=5,
        energy_j=lambda overrides, cycle: 100.0 + 7.0 * cycle**2,
    )
    summary = StudyResult.from_json(directory)
    axes = metric_vs_variable(load_study(directory), "energy_per_output_token_j").axes[0]
    (container,) = [c for c in axes.containers if isinstance(c, ErrorbarContainer)]
    _, _, (bars,) = container.lines
    drawn = np.ravel([segment.tolist() for segment in bars.get_segments()]).tolist()
    expected = []
    for configuration, x in zip(summary.configurations, (1.0, 4.0), strict=True):
        stats = configuration.metrics["energy_per_output_token_j"]
        expected += [x, stats.ci_low, x, stats.ci_high]
    assert drawn == pytest.approx(expected, rel=1e-12)


def test_runs_on_other_gpus_are_other_configurations() -> None:
    from llem_schema import DeviceInfo

    a100 = example_result()
    raw = a100.process_results[0]
    gpu = DeviceInfo(kind="gpu", index=0, uuid=raw.devices[0].uuid, name="NVIDIA H100")
    h100 = a100.model_copy(
        update={
            "experiment_id": "tiny_pytorch_2026-11-22T15-00-00_abcdef",
            "process_results": [raw.model_copy(update={"devices": [gpu]})],
        }
    )
    found = configurations([Experiment(a100), Experiment(h100)])
    assert [len(c.experiments) for c in found] == [1, 1]
    assert [c.label.rsplit(" on ", 1)[1] for c in found] == ["Example GPU", "NVIDIA H100"]


def test_a_setting_of_ints_and_floats_is_one_numeric_axis() -> None:
    from llem_schema.testing import example_config

    results = [
        example_result(config=example_config(decoder={"mode": "sampling", "temperature": t}))
        for t in (1, 2.5)
    ]
    axes = metric_vs_variable(results, "output_tokens_per_s", "decoder.temperature").axes[0]
    (container,) = [c for c in axes.containers if isinstance(c, ErrorbarContainer)]
    assert np.asarray(container.lines[0].get_xdata()).tolist() == [1.0, 2.5]


def test_the_pareto_front_trades_only_what_is_better_lower() -> None:
    with pytest.raises(
        ReportError, match=r"trades an energy where lower is better: .* not 'output_tokens_per_j'"
    ):
        pareto_front([example_result()], energy="output_tokens_per_j")


def test_the_pareto_front_is_the_hand_found_one() -> None:
    """A (100 ms, 3.0 J) and B (200 ms, 2.0 J) are the front; C (150, 3.5) is beaten by A,
    D (300, 2.5) by B."""
    base = example_result()
    assert base.latency.e2e is not None
    points = {"A": (100.0, 3.0), "B": (200.0, 2.0), "C": (150.0, 3.5), "D": (300.0, 2.5)}
    results = []
    for batch, (name, (p99_ms, joules)) in enumerate(points.items(), start=1):
        config = dict(base.effective_config)
        config["pytorch"] = {"batch_size": batch}
        results.append(
            base.model_copy(
                update={
                    "experiment_id": f"point-{name}",
                    "measurement_config_hash": f"{batch:016x}",
                    "effective_config": config,
                    "latency": base.latency.model_copy(
                        update={"e2e": base.latency.e2e.model_copy(update={"p99_ms": p99_ms})}
                    ),
                    "efficiency": base.efficiency.model_copy(
                        update={"energy_per_output_token_j": joules}
                    ),
                }
            )
        )
    axes = pareto_front(results).axes[0]
    (joined,) = [line for line in axes.get_lines() if line.get_color() == "#1f5f99"]
    assert np.asarray(joined.get_xdata()).tolist() == [100.0, 200.0]
    assert np.asarray(joined.get_ydata()).tolist() == [3.0, 2.0]


def test_power_of_a_bare_result_says_to_load_its_directory(two_gpu: ExperimentResult) -> None:
    with pytest.raises(ReportError, match=r"load it with load_experiment\(<result directory>\)"):
        power_over_time(two_gpu)


def test_an_all_nan_timeseries_has_no_power_to_draw(
    two_gpu: ExperimentResult, power_table: PowerTable
) -> None:
    table = power_table(two_gpu.duration_s)
    nan = pa.array(np.full(table.num_rows, np.nan))
    with pytest.raises(ReportError, match="its timeseries holds no power sample"):
        cumulative_energy(Experiment(two_gpu, timeseries=table.set_column(2, "gpu_power_w", nan)))


def test_loading_a_path_that_is_not_there_names_it(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=f"{tmp_path / 'missing'}"):
        load_experiment(tmp_path / "missing")
