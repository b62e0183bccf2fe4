"""Study results: statistics across cycles, disagreement warnings, study.json round trip."""

import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llem_schema import (
    SCHEMA_VERSION,
    STUDY_RESULT_FILE,
    ExperimentResult,
    ResultFormatError,
    StudyManifest,
    StudyPlan,
    StudyResult,
    cycle_statistics,
    expand_study,
    json_schema,
    parse_study,
    summarize_study,
)
from llem_schema.study_result import STUDY_METRICS, point_seed
from llem_schema.testing import EXAMPLE_BACKENDS, example_raw_result, example_result

T0 = datetime(2026, 11, 22, 14, 0, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures"


def plan(cycles: int = 3) -> StudyPlan:
    return expand_study(
        parse_study(
            {
                "name": "bs-sweep",
                "base": {"n": 8, "max_new_tokens": 16},
                "sweep": {"pytorch.batch_size": [1, 0, 8]},
                "skip_invalid": True,
                "cycles": cycles,
                "order": "sequential",
            }
        ),
        backends=EXAMPLE_BACKENDS,
    )


def run_result(
    p: StudyPlan, point_index: int, run_index: int, energy_j: float, duration_s: float = 10.0
) -> ExperimentResult:
    config = p.point(point_index).config
    raw = example_raw_result(
        config=config, seed=point_index, energy_j=energy_j, duration_s=duration_s
    )
    result = example_result([raw], config=config)
    return result.model_copy(update={"experiment_id": f"bs-sweep-run-{run_index}"})


def completed_study(
    energies: dict[int, list[float]], cycles: int = 3
) -> tuple[StudyManifest, dict[int, ExperimentResult]]:
    """Point index -> the energy of each cycle; every run completes."""
    p = plan(cycles)
    manifest = StudyManifest.new(
        p, study_id="bs-sweep_2026-11-22T14-00-00", study_name="bs-sweep", created_at=T0
    )
    results: dict[int, ExperimentResult] = {}
    for run in p.runs:
        result = run_result(p, run.point_index, run.run_index, energies[run.point_index][run.cycle])
        results[run.run_index] = result
        start = T0 + timedelta(minutes=run.run_index)
        manifest = manifest.with_entry(
            run.run_index,
            status="completed",
            started_at=start,
            finished_at=start + timedelta(seconds=30),
            experiment_id=result.experiment_id,
            result_path=f"{result.experiment_id}",
            updated_at=start + timedelta(seconds=30),
        )
    return manifest.with_status("completed", updated_at=T0 + timedelta(hours=1)), results


def test_cycles_that_agree_give_statistics_and_no_warning() -> None:
    manifest, results = completed_study({0: [120.0, 120.0, 120.0], 2: [90.0, 90.0, 90.0]})
    study = summarize_study(
        manifest, results, cv_warning_threshold=0.05, finished_at=T0 + timedelta(hours=1)
    )
    assert study.study_id == manifest.study_id
    assert study.design_hash == manifest.design_hash
    assert study.summary.model_dump() == {
        "total": 7,
        "completed": 6,
        "failed": 0,
        "skipped": 1,
        "pending": 0,
        "wall_time_s": 3600.0,
        "total_energy_j": 3 * 120.0 + 3 * 90.0,
    }
    assert [c.point_index for c in study.configurations] == [0, 2]
    first = study.configurations[0]
    assert first.overrides == {"pytorch.batch_size": 1}
    assert first.cycles_completed == 3
    assert first.experiment_ids == ["bs-sweep-run-0", "bs-sweep-run-1", "bs-sweep-run-2"]
    assert list(first.metrics) == list(STUDY_METRICS)
    energy = first.metrics["total_energy_j"]
    assert (energy.n, energy.mean, energy.std, energy.cv) == (3, 120.0, 0.0, 0.0)
    assert (energy.ci_low, energy.ci_high) == (120.0, 120.0)
    assert first.warnings == []
    assert study.warnings == [
        "point 1 (pytorch.batch_size=0) was skipped: config key 'pytorch.batch_size': Input "
        "should be greater than 0 (got 0)",
        "3 cycles per configuration: a percentile bootstrap interval covers the mean less "
        "often than its nominal level (about half the time at 2 cycles, three times in four "
        "at 3); read ci_low..ci_high as the spread of the cycles, or set cycles: 10 or more "
        "for an interval that holds its level",
    ]


def test_the_wall_time_leaves_out_the_time_the_study_was_stopped() -> None:
    manifest, results = completed_study({0: [120.0, 120.0, 120.0], 2: [90.0, 90.0, 90.0]})
    stopped_at = manifest.updated_at
    resumed = manifest.resumed(stopped_at=stopped_at, at=stopped_at + timedelta(minutes=15))
    assert (resumed.status, resumed.paused_s) == ("running", 900.0)
    again = resumed.resumed(stopped_at=resumed.updated_at, at=resumed.updated_at)
    assert again.paused_s == 900.0  # a resume at once adds nothing
    study = summarize_study(
        again, results, cv_warning_threshold=0.05, finished_at=T0 + timedelta(hours=2)
    )
    assert study.summary.wall_time_s == 7200.0 - 900.0


def test_cycles_that_disagree_warn_what_was_seen_and_what_to_do() -> None:
    manifest, results = completed_study({0: [100.0, 130.0, 160.0], 2: [90.0, 90.0, 90.0]})
    study = summarize_study(
        manifest, results, cv_warning_threshold=0.05, finished_at=T0 + timedelta(hours=1)
    )
    point = study.configurations[0]
    tokens = results[0].output_tokens
    per_j = [tokens / e for e in (100.0, 130.0, 160.0)]
    cv = np.std(per_j, ddof=1) / np.mean(per_j)
    stats = point.metrics["output_tokens_per_j"]
    assert stats.values == pytest.approx(per_j)
    assert stats.cv == pytest.approx(cv)
    assert (
        f"point 0 (pytorch.batch_size=1): output_tokens_per_j varies {cv * 100:.1f}% across 3 "
        "cycles (CV above 5%): cycles ran under different conditions; lengthen the gaps between "
        "experiments or add cycles"
    ) in point.warnings
    pattern = re.compile(r"point 0 \(pytorch.batch_size=1\): (\w+) varies")
    warned = {m[1] for w in point.warnings if (m := pattern.match(w))}
    assert len(warned) == len(point.warnings)
    assert warned == {
        "total_energy_j",
        "energy_j",  # the GPU energy, here all of it
        "energy_adjusted_j",
        "output_tokens_per_j",
        "energy_per_output_token_j",
    }  # throughput, latency and duration agreed
    assert study.configurations[1].warnings == []
    # a looser threshold accepts the same cycles
    loose = summarize_study(
        manifest, results, cv_warning_threshold=0.5, finished_at=T0 + timedelta(hours=1)
    )
    assert loose.configurations[0].warnings == []


def test_the_bootstrap_seed_follows_the_design_and_the_point() -> None:
    manifest, results = completed_study({0: [100.0, 130.0, 160.0], 2: [90.0, 95.0, 99.0]})
    study = summarize_study(manifest, results, cv_warning_threshold=0.05, finished_at=T0)
    again = summarize_study(manifest, results, cv_warning_threshold=0.05, finished_at=T0)
    assert study == again
    expected = cycle_statistics([100.0, 130.0, 160.0], seed=point_seed(manifest.design_hash, 0))
    assert study.configurations[0].metrics["total_energy_j"] == expected
    assert study.configurations[0].metrics["energy_j"] == expected  # GPU energy only here
    assert point_seed(manifest.design_hash, 0) != point_seed(manifest.design_hash, 2)


def test_failed_interrupted_and_missing_runs_are_counted_and_explained() -> None:
    manifest, results = completed_study({0: [100.0, 101.0, 102.0], 2: [90.0, 91.0, 92.0]})
    manifest = manifest.with_status("interrupted", updated_at=T0 + timedelta(hours=1))
    manifest = manifest.with_entry(
        1, status="failed", error="timed out after 3600 s", updated_at=T0 + timedelta(hours=1)
    )
    del results[1]
    manifest = manifest.with_entry(
        5,
        status="pending",
        experiment_id=None,
        result_path=None,
        updated_at=T0 + timedelta(hours=1),
    )
    del results[5]
    del results[3]  # completed, but its result could not be loaded
    study = summarize_study(
        manifest, results, cv_warning_threshold=0.05, finished_at=T0 + timedelta(hours=2)
    )
    assert study.summary.model_dump() == {
        "total": 7,
        "completed": 4,
        "failed": 1,
        "skipped": 1,
        "pending": 1,
        "wall_time_s": 7200.0,
        "total_energy_j": 100.0 + 102.0 + 91.0,
    }
    first, second = study.configurations
    assert first.cycles_completed == 2
    assert first.metrics["total_energy_j"].values == [100.0, 102.0]
    assert first.warnings == [
        "point 0 (pytorch.batch_size=1): 2 of 3 cycles completed (1 failed); its statistics "
        "cover fewer cycles: resume the study to run the rest"
    ]
    assert second.cycles_completed == 2
    assert second.metrics["total_energy_j"].values == [91.0]  # run 3's result is missing
    assert second.warnings == [
        "point 2 (pytorch.batch_size=8): 2 of 3 cycles completed (1 did not run); its "
        "statistics cover fewer cycles: resume the study to run the rest"
    ]
    assert study.warnings[0].startswith(
        "run 3 (point 2, cycle 0): completed, but its result (bs-sweep-run-3) was not loaded"
    )
    assert study.warnings[1:3] == [
        "1 of 6 runs failed: each error is in manifest.json; fix the cause and resume the study "
        "to rerun them",
        "1 of 6 runs did not finish (the study was interrupted): resume the study to run them",
    ]


def test_a_result_of_another_configuration_is_left_out() -> None:
    manifest, results = completed_study({0: [100.0, 101.0, 102.0], 2: [90.0, 91.0, 92.0]})
    results[0] = results[3]
    study = summarize_study(manifest, results, cv_warning_threshold=0.05, finished_at=T0)
    assert study.configurations[0].metrics["total_energy_j"].values == [101.0, 102.0]
    assert "measured configuration" in study.warnings[0]


def test_results_of_runs_that_did_not_complete_are_refused() -> None:
    manifest, results = completed_study({0: [1.0, 1.0, 1.0], 2: [1.0, 1.0, 1.0]})
    manifest = manifest.with_status("running").with_entry(0, status="running")
    with pytest.raises(ValueError, match=r"results\[0\]: run 0 is not a completed run"):
        summarize_study(manifest, results, cv_warning_threshold=0.05, finished_at=T0)


def test_one_cycle_warns_that_repeatability_is_unknown_and_energy_none_propagates() -> None:
    manifest, results = completed_study({0: [100.0], 2: [90.0]}, cycles=1)
    results[0] = example_result(
        [example_raw_result(config=plan(1).point(0).config, seed=0, energy_j=None)],
        config=plan(1).point(0).config,
    )
    study = summarize_study(manifest, results, cv_warning_threshold=0.05, finished_at=T0)
    assert study.summary.total_energy_j is None
    assert "total_energy_j" not in study.configurations[0].metrics
    assert study.configurations[0].metrics["output_tokens_per_s"].std is None
    assert study.warnings[-1].startswith("each configuration ran one cycle")


def test_study_json_round_trips_and_validates_against_the_schema(tmp_path: Path) -> None:
    manifest, results = completed_study({0: [100.0, 130.0, 160.0], 2: [90.0, 91.0, 95.0]})
    study = summarize_study(
        manifest, results, cv_warning_threshold=0.05, finished_at=T0 + timedelta(hours=1)
    )
    path = study.save(tmp_path / "study")
    assert path == tmp_path / "study" / STUDY_RESULT_FILE
    assert StudyResult.from_json(tmp_path / "study") == study
    assert StudyResult.from_json(path) == study
    jsonschema.validate(json.loads(path.read_text()), json_schema("study"))
    manifest_path = manifest.save(tmp_path / "study")
    jsonschema.validate(json.loads(manifest_path.read_text()), json_schema("manifest"))


def test_a_corrupt_or_missing_study_json_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ResultFormatError, match=r"study.json: no such file$"):
        StudyResult.from_json(tmp_path)
    (tmp_path / STUDY_RESULT_FILE).write_text('{"schema_version": "1.0", "summary": ')
    with pytest.raises(ResultFormatError, match=r"corrupt study result: invalid JSON at line 1"):
        StudyResult.from_json(tmp_path)


@settings(max_examples=25, deadline=None)
@given(
    energies=st.lists(
        st.floats(min_value=1.0, max_value=1e5, allow_nan=False), min_size=1, max_size=4
    ),
    threshold=st.floats(min_value=1e-3, max_value=1.0),
)
def test_any_summary_round_trips_through_json(energies: list[float], threshold: float) -> None:
    cycles = len(energies)
    manifest, results = completed_study({0: energies, 2: energies[::-1]}, cycles=cycles)
    study = summarize_study(
        manifest,
        results,
        cv_warning_threshold=threshold,
        finished_at=T0 + timedelta(hours=1),
        resamples=200,
    )
    assert StudyResult.model_validate_json(study.model_dump_json()) == study
    energy = study.configurations[0].metrics["total_energy_j"]
    assert energy.mean == pytest.approx(math.fsum(energies) / cycles)
    assert study.summary.total_energy_j == pytest.approx(2 * math.fsum(energies))


def test_the_shipped_fixtures_load_with_the_current_reader() -> None:
    directory = FIXTURES / "v1.0"
    stored = json.loads((directory / STUDY_RESULT_FILE).read_text())
    study = StudyResult.from_json(directory)
    assert stored["schema_version"] == "1.0"
    assert study.schema_version == SCHEMA_VERSION
    assert study.study_name == stored["study_name"] == "bs-sweep"
    assert study.summary.total == 7
    assert [c.point_index for c in study.configurations] == [0, 2]
    assert study.configurations[0].metrics["output_tokens_per_j"].n == 3
    assert any("varies" in w for w in study.configurations[0].warnings)
    manifest = StudyManifest.load(directory)
    assert manifest.design_hash == study.design_hash
    assert manifest.study_id == study.study_id
    assert manifest.counts()["completed"] == 6
    assert manifest.counts()["skipped"] == 1


def test_example_study_is_a_completed_study_on_disk(tmp_path: Path) -> None:
    from llem_schema.testing import EXAMPLE_SWEEP, example_study

    directory = example_study(tmp_path, energy_j=lambda overrides, cycle: 50.0 + cycle)
    assert directory == tmp_path / "grid_2026-11-22T14-03-05"
    manifest = StudyManifest.load(directory)
    assert manifest.status == "completed"
    assert [e.status for e in manifest.entries] == ["completed"] * 8
    study = StudyResult.from_json(directory)
    assert [c.overrides for c in study.configurations] == [
        {"pytorch.batch_size": batch, "max_new_tokens": tokens}
        for batch in EXAMPLE_SWEEP["pytorch.batch_size"]
        for tokens in EXAMPLE_SWEEP["max_new_tokens"]
    ]
    for configuration in study.configurations:
        assert configuration.metrics["energy_j"].values == [50.0, 51.0]
    for entry in manifest.entries:
        result_dir = entry.result_dir(directory)
        assert result_dir is not None
        assert ExperimentResult.from_json(result_dir).experiment_id == entry.experiment_id
