from datetime import timedelta
from pathlib import Path

import pytest

from llem_persistence import (
    AggregationError,
    StagingRepository,
    finalize_experiment,
    read_timeseries,
    write_timeseries,
)
from llem_schema import ExperimentResult, PowerSample
from llem_schema.testing import EXAMPLE_START, example_config, example_raw_result

CONFIG = example_config(num_processes=2)


def stage(
    tmp_path: Path, processes: list[int], *, timeseries: bool = False
) -> tuple[StagingRepository, str]:
    staging = StagingRepository(tmp_path / "results")
    experiment = example_raw_result().experiment_id
    staging.begin(CONFIG, experiment, 2)
    for index in processes:
        raw = example_raw_result(
            process_index=index,
            num_processes=2,
            config=CONFIG,
            seed=index,
            start_time=EXAMPLE_START + timedelta(seconds=index),
        )
        if timeseries:
            path = staging.timeseries_path(experiment, index)
            write_timeseries(
                [PowerSample(t / 10, index, 100.0 + index, 50.0) for t in range(3)], path
            )
            raw = raw.model_copy(update={"timeseries": path.name})
        staging.save_raw(experiment, raw)
    return staging, experiment


def test_a_complete_run_is_saved_with_its_merged_timeseries_and_staging_removed(
    tmp_path: Path,
) -> None:
    staging, experiment = stage(tmp_path, [0, 1], timeseries=True)
    directory = finalize_experiment(
        staging, experiment, tmp_path / "results", require_complete=True
    )
    result = ExperimentResult.from_json(directory)
    assert result.aggregation.complete
    assert result.effective_config == CONFIG.model_dump(mode="json")
    assert result.timeseries == "timeseries.parquet"
    table = read_timeseries(directory)
    assert table.num_rows == 6
    # process 1 started one second later: its samples sit one second later on the merged clock
    assert table.column("timestamp_s").to_pylist()[-1] == pytest.approx(1.2)
    assert staging.list_staged() == []
    assert sorted(p.name for p in directory.iterdir()) == ["result.json", "timeseries.parquet"]


def test_a_partial_run_is_recovered_as_incomplete(tmp_path: Path) -> None:
    staging, experiment = stage(tmp_path, [1])
    with pytest.raises(
        AggregationError,
        match=f"{experiment}: processes 0 did not finish; what did stays staged, to be saved "
        "marked incomplete",
    ):
        finalize_experiment(staging, experiment, tmp_path / "results", require_complete=True)
    assert staging.has_raw(experiment)  # nothing lost
    directory = finalize_experiment(staging, experiment, tmp_path / "results")
    result = ExperimentResult.from_json(directory)
    assert not result.aggregation.complete
    assert result.aggregation.missing_processes == [0]
    assert result.timeseries is None


def test_nothing_finished_is_a_clear_error_and_keeps_the_staging(tmp_path: Path) -> None:
    staging, experiment = stage(tmp_path, [])
    with pytest.raises(AggregationError, match="no process finished, so there is nothing to save"):
        finalize_experiment(staging, experiment, tmp_path / "results")
    assert staging.list_staged() == [experiment]


def test_repeating_after_a_crash_between_save_and_cleanup_does_not_save_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging, experiment = stage(tmp_path, [0, 1])
    marker_source = staging.experiment_dir(experiment)

    def crash(_: str) -> bool:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(staging, "delete", crash)
        with pytest.raises(KeyboardInterrupt):
            finalize_experiment(staging, experiment, tmp_path / "results")
    assert marker_source.is_dir()
    again = finalize_experiment(staging, experiment, tmp_path / "results")
    saved = [p for p in (tmp_path / "results").iterdir() if p.name != ".staging"]
    assert saved == [again]
    assert staging.list_staged() == []
