"""The study manifest: built from a plan, changed by copies, saved atomically, loaded safely."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from llem_schema import (
    MANIFEST_FILE,
    SCHEMA_VERSION,
    ManifestEntry,
    ResultFormatError,
    SchemaVersionError,
    StudyManifest,
    StudyPlan,
    expand_study,
    parse_study,
)
from llem_schema.study_manifest import validate_result_path
from llem_schema.testing import EXAMPLE_BACKENDS
from llem_schema.versions import MANIFEST_MIGRATIONS, _Step

T0 = datetime(2026, 11, 22, 14, 0, 0, tzinfo=UTC)
SHA = "ab" * 32


def plan() -> StudyPlan:
    return expand_study(
        parse_study(
            {
                "name": "bs-sweep",
                "base": {"n": 8, "max_new_tokens": 16},
                "sweep": {"pytorch.batch_size": [1, 0, 8]},
                "skip_invalid": True,
                "cycles": 2,
            }
        ),
        backends=EXAMPLE_BACKENDS,
    )


def manifest() -> StudyManifest:
    return StudyManifest.new(
        plan(),
        study_id="bs-sweep_2026-11-22T14-00-00",
        study_name="bs-sweep",
        study_file_sha256=SHA,
        created_at=T0,
    )


def completed(m: StudyManifest, run_index: int, minutes: int = 1) -> StudyManifest:
    return m.with_entry(
        run_index,
        status="completed",
        started_at=T0 + timedelta(minutes=minutes),
        finished_at=T0 + timedelta(minutes=minutes + 1),
        experiment_id=f"run-{run_index}",
        result_path=f"runs/run-{run_index}",
        updated_at=T0 + timedelta(minutes=minutes + 1),
    )


def test_new_lists_every_run_pending_then_skipped_points_with_their_reason() -> None:
    m = manifest()
    p = plan()
    assert m.status == "running"
    assert m.design_hash == p.design_hash
    assert m.created_at == m.updated_at == T0
    assert m.schema_version == SCHEMA_VERSION
    runs, [skipped] = m.entries[:4], m.entries[4:]
    assert [(e.run_index, e.point_index, e.cycle, e.status) for e in runs] == [
        (0, 0, 0, "pending"),
        (1, 2, 0, "pending"),
        (2, 0, 1, "pending"),
        (3, 2, 1, "pending"),
    ]
    assert runs[1].overrides == {"pytorch.batch_size": 8}
    assert runs[1].config_hash == p.point(2).config_hash
    assert skipped.run_index == 4
    assert skipped.point_index == 1
    assert skipped.cycle is None
    assert skipped.status == "skipped"
    assert (
        skipped.error == "config key 'pytorch.batch_size': Input should be greater than 0 (got 0)"
    )
    assert m.counts() == {"pending": 4, "running": 0, "completed": 0, "failed": 0, "skipped": 1}
    assert m.remaining() == runs


def test_with_entry_returns_an_updated_copy_and_leaves_the_original() -> None:
    m = manifest()
    later = T0 + timedelta(minutes=5)
    running = m.with_entry(0, status="running", started_at=T0, updated_at=later)
    assert running.entries[0].status == "running"
    assert running.updated_at == later
    assert m.entries[0].status == "pending"
    assert m.updated_at == T0
    done = completed(running, 0)
    failed = done.with_entry(1, status="failed", error="timed out after 3600 s")
    assert failed.updated_at > later  # defaults to now
    assert failed.counts() == {
        "pending": 2,
        "running": 0,
        "completed": 1,
        "failed": 1,
        "skipped": 1,
    }
    assert [e.run_index for e in failed.remaining()] == [1, 2, 3]
    assert failed.entry(0).result_dir("/data/study") == Path("/data/study/runs/run-0")


def test_with_status_sets_the_study_status() -> None:
    m = manifest().with_status("interrupted", updated_at=T0 + timedelta(hours=1))
    assert m.status == "interrupted"
    assert m.updated_at == T0 + timedelta(hours=1)


def test_changes_are_validated() -> None:
    m = manifest()
    with pytest.raises(ValidationError, match="statu"):
        m.with_entry(0, statu="completed")
    with pytest.raises(ValidationError, match="needs an error saying why"):
        m.with_entry(0, status="failed")
    with pytest.raises(ValidationError, match="needs its experiment_id and result_path"):
        m.with_entry(0, status="completed")
    with pytest.raises(ValueError, match="cycle cannot change"):
        m.with_entry(0, cycle=5)
    with pytest.raises(KeyError, match="no run 9"):
        m.with_entry(9, status="running")
    with pytest.raises(ValidationError, match="no pending or running entry"):
        m.with_status("completed")
    with pytest.raises(ValidationError, match="updated_at precedes created_at"):
        m.with_status("failed", updated_at=T0 - timedelta(seconds=1))


@pytest.mark.parametrize(
    "path",
    [
        "../outside",
        "runs/../../outside",
        "/etc/passwd",
        "C:\\results\\x",
        "C:x",
        "\\\\host\\share",
        "runs\\x",
        "",
        "./x",
        "runs//x",
        "a\0b",
    ],
)
def test_a_result_path_that_could_leave_the_study_directory_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="result_path"):
        validate_result_path(path)
    with pytest.raises(ValidationError, match="result_path"):
        manifest().with_entry(0, result_path=path)


def test_a_loaded_manifest_with_an_escaping_path_is_a_one_line_error(tmp_path: Path) -> None:
    document = json.loads(completed(manifest(), 0).model_dump_json())
    document["entries"][0]["result_path"] = "../../home/user"
    path = tmp_path / MANIFEST_FILE
    path.write_text(json.dumps(document))
    with pytest.raises(ResultFormatError) as caught:
        StudyManifest.load(tmp_path)
    assert str(caught.value).startswith(
        f"{path}: invalid study manifest: entries.0.result_path: result_path must stay inside "
        "the study directory"
    )


def test_nested_result_paths_inside_the_study_are_fine() -> None:
    assert validate_result_path("runs/tiny_pytorch_2026-11-22T14-03-05") == (
        "runs/tiny_pytorch_2026-11-22T14-03-05"
    )
    assert validate_result_path("tiny..x_1") == "tiny..x_1"  # '..' only refused as a component


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    m = completed(manifest(), 0).with_entry(1, status="failed", error="crashed (exit code -9)")
    path = m.save(tmp_path / "study")
    assert path == tmp_path / "study" / MANIFEST_FILE
    assert StudyManifest.load(tmp_path / "study") == m
    assert StudyManifest.load(path) == m
    assert [p.name for p in path.parent.iterdir()] == [MANIFEST_FILE]  # no temporary left


def test_save_is_atomic_a_failed_write_leaves_the_previous_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = manifest()
    first.save(tmp_path)
    second = completed(first, 0)

    def interrupted(self: Path, target: Path) -> Path:
        raise KeyboardInterrupt  # Ctrl-C between writing the temporary and renaming it

    monkeypatch.setattr(Path, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        second.save(tmp_path)
    monkeypatch.undo()
    assert StudyManifest.load(tmp_path) == first
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_FILE]


def test_a_missing_manifest_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ResultFormatError) as caught:
        StudyManifest.load(tmp_path)
    assert str(caught.value) == f"{tmp_path / MANIFEST_FILE}: no such file"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"schema_version": "1.0", "entries": [',
            "corrupt study manifest: invalid JSON at line 1",
        ),
        ("[1, 2]", "not an llem study manifest (no schema_version)"),
        (
            '{"schema_version": "1.0", "study_id": "x"}',
            "invalid study manifest: study_name: Field required",
        ),
    ],
)
def test_a_corrupt_manifest_is_a_one_line_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / MANIFEST_FILE).write_text(text)
    with pytest.raises(ResultFormatError) as caught:
        StudyManifest.load(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / MANIFEST_FILE}: {message}")
    assert "\n" not in str(caught.value)


def test_a_newer_major_version_asks_to_upgrade(tmp_path: Path) -> None:
    document = json.loads(manifest().model_dump_json()) | {"schema_version": "99.0"}
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(document))
    with pytest.raises(SchemaVersionError, match=re.escape("upgrade llem-schema")):
        StudyManifest.load(tmp_path)


def test_an_older_version_is_migrated_on_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rename(document: dict[str, Any]) -> dict[str, Any]:
        document["study_file_sha256"] = document.pop("study_sha256")
        return document

    monkeypatch.setitem(MANIFEST_MIGRATIONS._steps, "0.9", _Step("1.0", rename))
    document = json.loads(manifest().model_dump_json())
    document["schema_version"] = "0.9"
    document["study_sha256"] = document.pop("study_file_sha256")
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(document))
    loaded = StudyManifest.load(tmp_path)
    assert loaded.schema_version == SCHEMA_VERSION
    assert loaded.study_file_sha256 == SHA
    assert loaded == manifest()


def test_inconsistent_entries_are_refused() -> None:
    document = json.loads(manifest().model_dump_json())
    swapped = json.loads(json.dumps(document))
    swapped["entries"][0]["run_index"], swapped["entries"][1]["run_index"] = 1, 0
    with pytest.raises(ValidationError, match="numbered by run_index"):
        StudyManifest.model_validate(swapped)
    twice = json.loads(json.dumps(document))
    twice["entries"][2]["cycle"] = 0
    with pytest.raises(ValidationError, match="point 0 appears twice in cycle 0"):
        StudyManifest.model_validate(twice)
    other = json.loads(json.dumps(document))
    other["entries"][2]["overrides"] = {"pytorch.batch_size": 2}
    with pytest.raises(ValidationError, match="another config_hash or overrides"):
        StudyManifest.model_validate(other)


def test_only_skipped_entries_lack_a_cycle_or_hash() -> None:
    with pytest.raises(ValidationError, match="only a skipped entry"):
        ManifestEntry(run_index=0, point_index=0, cycle=None, config_hash=None, overrides={})
