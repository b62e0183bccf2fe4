import hashlib
import json
from pathlib import Path

import pytest

from llem_persistence import PersistenceError, StagingRepository, UnsafePathError
from llem_schema import SCHEMA_VERSION
from llem_schema.testing import example_config, example_raw_result

EXPERIMENT = example_raw_result().experiment_id


@pytest.fixture
def staging(tmp_path: Path) -> StagingRepository:
    return StagingRepository(tmp_path / "results")


def test_saved_results_load_back_in_process_order(staging: StagingRepository) -> None:
    raws = [example_raw_result(process_index=i, num_processes=3, seed=i) for i in (2, 0, 1)]
    for raw in raws:
        staging.save_raw(EXPERIMENT, raw)
    assert staging.load_all_raw(EXPERIMENT) == sorted(raws, key=lambda r: r.process_index)
    assert staging.has_raw(EXPERIMENT)
    assert staging.list_staged() == [EXPERIMENT]
    names = sorted(p.name for p in staging.experiment_dir(EXPERIMENT).iterdir())
    assert names == [f"process_{i}.{ext}" for i in range(3) for ext in ("done", "json")]


def test_a_result_without_its_completion_marker_is_not_loaded(staging: StagingRepository) -> None:
    staging.save_raw(EXPERIMENT, example_raw_result(process_index=0, num_processes=2))
    staging.save_raw(EXPERIMENT, example_raw_result(process_index=1, num_processes=2))
    (staging.experiment_dir(EXPERIMENT) / "process_1.done").unlink()
    assert [r.process_index for r in staging.load_all_raw(EXPERIMENT)] == [0]
    completeness = staging.validate_process_completeness(EXPERIMENT, 2)
    assert (completeness.present, completeness.missing, completeness.complete) == ([0], [1], False)


def test_completeness_reports_duplicates(staging: StagingRepository) -> None:
    raw = example_raw_result(process_index=1, num_processes=2)
    staging.save_raw(EXPERIMENT, raw)
    # A second file claiming process 1, written as a process would (file, then marker).
    data = raw.model_dump_json().encode()
    directory = staging.experiment_dir(EXPERIMENT)
    (directory / "process_0.json").write_bytes(data)
    marker = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (directory / "process_0.done").write_text(json.dumps(marker))
    completeness = staging.validate_process_completeness(EXPERIMENT, 2)
    assert completeness.duplicates == [1]
    assert completeness.missing == [0]
    assert not completeness.complete


def test_a_file_changed_after_staging_is_named_in_the_error(staging: StagingRepository) -> None:
    path = staging.save_raw(EXPERIMENT, example_raw_result())
    path.write_text(path.read_text().replace('"hostname": "example-host"', '"hostname": "x"'))
    with pytest.raises(PersistenceError) as caught:
        staging.load_all_raw(EXPERIMENT)
    assert str(caught.value) == (
        f"{path}: content does not match its completion marker (changed after it was staged); "
        "remove the file to aggregate without it"
    )


def test_a_corrupt_staged_file_is_a_clear_error(staging: StagingRepository) -> None:
    path = staging.save_raw(EXPERIMENT, example_raw_result())
    data = b'{"schema_version": "1.0", "oops'
    path.write_bytes(data)
    (path.with_suffix(".done")).write_text(json.dumps({"sha256": hashlib.sha256(data).hexdigest()}))
    with pytest.raises(
        PersistenceError,
        match=r"process_0.json: corrupt raw process result: invalid JSON at line 1",
    ):
        staging.load_all_raw(EXPERIMENT)


def test_a_raw_result_of_another_experiment_is_refused(staging: StagingRepository) -> None:
    with pytest.raises(PersistenceError, match="cannot be staged under 'other-exp'"):
        staging.save_raw("other-exp", example_raw_result())


@pytest.mark.parametrize(
    "bad_id", ["..", "../outside", "/etc", "a/b", "a\0b", "x" * 200, ".staging", ""]
)
def test_ids_that_could_escape_are_refused_everywhere(
    staging: StagingRepository, bad_id: str
) -> None:
    for call in (
        lambda: staging.experiment_dir(bad_id),
        lambda: staging.load_all_raw(bad_id),
        lambda: staging.has_raw(bad_id),
        lambda: staging.delete(bad_id),
    ):
        with pytest.raises(UnsafePathError):
            call()


def test_a_symlink_out_of_the_staging_root_is_refused(
    staging: StagingRepository, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    staging.root.mkdir(parents=True)
    (staging.root / "evil").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="outside"):
        staging.delete("evil")
    with pytest.raises(UnsafePathError, match="outside"):
        staging.load_all_raw("evil")
    assert (outside / "keep.txt").read_text() == "precious"
    assert staging.list_staged() == []


def test_manifest_round_trip_and_delete(staging: StagingRepository) -> None:
    config = example_config(num_processes=2)
    staging.begin(config, EXPERIMENT, 2)
    manifest = staging.load_manifest(EXPERIMENT)
    assert manifest.config == config
    assert manifest.expected_processes == 2
    assert staging.delete(EXPERIMENT)
    assert not staging.delete(EXPERIMENT)
    assert staging.list_staged() == []
    assert not staging.has_raw(EXPERIMENT)


def test_a_missing_manifest_is_a_clear_error(staging: StagingRepository) -> None:
    with pytest.raises(PersistenceError, match=r"experiment.json: no such file$"):
        staging.load_manifest(EXPERIMENT)


def test_a_run_is_running_while_its_process_lives_even_if_killed(
    staging: StagingRepository,
) -> None:
    import signal
    import subprocess
    import sys

    staging.begin(example_config(), EXPERIMENT, 1)
    assert not staging.is_running(EXPERIMENT)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from llem_persistence import StagingRepository\n"
            "with StagingRepository(sys.argv[1]).running(sys.argv[2]):\n"
            "    print('holding', flush=True); time.sleep(60)\n",
            str(staging.root.parent),
            EXPERIMENT,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "holding\n"
    assert staging.is_running(EXPERIMENT)
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    assert not staging.is_running(EXPERIMENT)  # the kernel released the dead run's lock


def test_only_a_current_valid_raw_takes_the_fast_path() -> None:
    from llem_persistence.staging import _current_raw

    raw = example_raw_result()
    text = raw.model_dump_json()
    assert _current_raw(text) == raw
    current = f'"schema_version":"{SCHEMA_VERSION}"'
    newer = text.replace(current, '"schema_version":"1.99"')
    assert newer != text
    assert _current_raw(newer) is None  # the general path decides: a newer minor passes
    assert _current_raw(text.replace(current + ",", "")) is None
    assert _current_raw(f'{{"schema_version": "{SCHEMA_VERSION}"}}') is None


def test_the_staging_root_goes_with_its_last_staged_run(tmp_path: Path) -> None:
    from llem_schema.testing import example_config

    staging = StagingRepository(tmp_path / "results")
    staging.begin(example_config(), "run-a", 1)
    staging.begin(example_config(), "run-b", 1)
    assert staging.delete("run-a")
    assert sorted(p.name for p in staging.root.iterdir()) == ["run-b"]  # another's: it stays
    assert staging.delete("run-b")
    assert not staging.root.exists()
    staging.begin(example_config(), "run-c", 1)  # and comes back with the next one
    assert staging.experiment_dir("run-c").is_dir()
