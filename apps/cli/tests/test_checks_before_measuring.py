"""What can be checked without measuring is checked before a model loads: a prompt file that
is missing, empty or malformed, a model path that does not exist, a ``--db`` that is not a
store, a study point whose value is invalid, a file given to the wrong command. Each is one
line, exit 2, in ``llem run``, ``llem run --dry-run`` and ``llem config validate`` alike, and
no row is added to the store (a run that cannot start is not a failed run)."""

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest

ROOT = Path(__file__).resolve().parents[3]


class Outcome(Protocol):
    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


Llem = Callable[..., Outcome]

MALFORMED = {
    "missing.jsonl": "prompt file {path} does not exist; check prompts.source (a .jsonl or .csv path)",
    "empty.jsonl": "prompt file {path} holds no prompts (it is empty)",
    "bad.jsonl": "prompt file {path}: line 1 is not valid JSON (Expecting value)",
}


@pytest.fixture
def prompt_files(tmp_path: Path) -> Path:
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "bad.jsonl").write_text("not json\n")
    return tmp_path


@pytest.mark.parametrize("name", sorted(MALFORMED))
@pytest.mark.parametrize("mode", ["run", "dry-run", "validate"])
def test_a_bad_prompt_file_is_exit_2_before_anything_loads(
    llem: Llem, prompt_files: Path, name: str, mode: str
) -> None:
    path = prompt_files / name
    results = prompt_files / "results"
    args = {
        "run": ["run", "--dataset", str(path), "-n", "4", "-o", str(results)],
        "dry-run": ["run", "--dataset", str(path), "-n", "4", "-o", str(results), "--dry-run"],
        "validate": [
            "config",
            "validate",
            str(ROOT / "examples" / "tiny-quickstart.yaml"),
            "--set",
            f"prompts.source={path}",
        ],
    }[mode]
    outcome = llem(*args)
    assert (outcome.exit_code, outcome.stdout) == (2, "")
    assert outcome.stderr == f"error: {MALFORMED[name].format(path=path)}\n"
    assert not results.exists()  # nothing recorded, no directory made


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_model_path_that_does_not_exist_is_exit_2_and_no_row(
    llem: Llem, tmp_path: Path, dry_run: bool
) -> None:
    missing = tmp_path / "no-such-model"
    args = ["run", "--model", str(missing), "-n", "4", "-o", str(tmp_path / "results")]
    outcome = llem(*args, *(["--dry-run"] if dry_run else []))
    assert outcome.exit_code == 2
    assert outcome.stderr == (
        f"error: model directory {missing} does not exist; point model to a directory holding "
        "config.json and the weights, or to a hub id already in the local cache\n"
    )
    assert not (tmp_path / "results").exists()  # nothing made, not even the directory


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_db_that_is_not_a_store_is_exit_2_and_stays_as_it_was(
    llem: Llem, tmp_path: Path, dry_run: bool
) -> None:
    notes = tmp_path / "notes.db"
    notes.write_text("my notes\n")
    with sqlite3.connect(tmp_path / "other.db") as other:
        other.execute("CREATE TABLE mine (x)")
    for db, reason in [
        (notes, "is not an llem results store (not an SQLite file)"),
        (tmp_path / "other.db", "is an SQLite database of another application, not an llem "),
    ]:
        before = db.read_bytes()
        args = ["run", "-n", "4", "-o", str(tmp_path / "results"), "--db", str(db)]
        outcome = llem(*args, *(["--dry-run"] if dry_run else []))
        assert outcome.exit_code == 2, outcome.stderr
        assert outcome.stderr.startswith(f"error: {db} {reason}")
        assert outcome.stderr.endswith("; point --db at an llem.db\n")
        assert db.read_bytes() == before
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_a_study_file_given_to_run_and_a_config_given_to_study_name_their_command(
    llem: Llem,
) -> None:
    study, config = ROOT / "examples" / "study.yaml", ROOT / "examples" / "tiny-quickstart.yaml"
    for args in (["run", str(study)], ["config", "validate", str(study)]):
        outcome = llem(*args)
        assert outcome.exit_code == 2
        assert outcome.stderr == (
            f"error: {study} is a study file (it has base, cv_warning_threshold, cycles, ...), "
            f"not an experiment config; run it with `llem study {study}`\n"
        )
    outcome = llem("study", str(config), "--dry-run")
    assert outcome.exit_code == 2
    assert outcome.stderr == (
        f"error: {config} is an experiment config (it has baseline, decoder, energy, ...), not "
        f"a study file; run it with `llem run {config}`\n"
    )


def test_an_invalid_sweep_value_refuses_the_study_unless_it_says_skip_invalid(
    llem: Llem, tmp_path: Path
) -> None:
    study = tmp_path / "sweep.yaml"
    study.write_text(
        "name: sweep\nbase: {model: llem/tiny, n: 4, max_new_tokens: 4}\n"
        "sweep:\n  pytorch.batch_size: [1, two]\n"
    )
    args = ["study", str(study), "-o", str(tmp_path / "results"), "--dry-run"]
    refused = llem(*args)
    assert refused.exit_code == 2
    assert refused.stderr == (
        f"error: {study}: study 'sweep': point 1 (pytorch.batch_size=two) is not a valid "
        "experiment: config key 'pytorch.batch_size': Input should be a valid integer, unable to "
        "parse string as an integer (got 'two'); correct the value, or set skip_invalid: true in "
        "the study to skip such points\n"
    )
    study.write_text(study.read_text() + "skip_invalid: true\n")
    planned = llem(*args)
    assert planned.exit_code == 0, planned.stderr
    assert "1 point(s) skipped" in planned.stdout
    assert "skipped: point 1 (pytorch.batch_size=two): config key 'pytorch.batch_size'" in (
        " ".join(planned.stdout.split())
    )


def test_parallel_dry_run_without_gpus_fails_as_the_run_does(
    llem: Llem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    study = ROOT / "examples" / "study.yaml"
    outcomes = [
        llem("study", str(study), "-o", str(tmp_path), "--parallel", *extra)
        for extra in (["--dry-run"], [])
    ]
    assert [o.exit_code for o in outcomes] == [2, 2]
    assert outcomes[0].stderr == outcomes[1].stderr
    assert outcomes[0].stderr.startswith("error: --parallel needs GPUs (none found)")
    assert not any(tmp_path.iterdir())


def test_skipped_points_are_said_when_the_study_starts(
    llem: Llem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llem_harness.errors import UsageError
    from llem_harness.study import session

    def start_study(*args: object, **kwargs: object) -> None:
        raise UsageError("stopped before the first run")

    monkeypatch.setattr(session, "start_study", start_study)
    study = tmp_path / "sweep.yaml"
    study.write_text(
        "name: sweep\nbase: {model: llem/tiny, n: 4, max_new_tokens: 4}\n"
        "sweep:\n  pytorch.batch_size: [1, 0]\nskip_invalid: true\n"
    )
    outcome = llem("study", str(study), "-o", str(tmp_path / "results"))
    assert outcome.stderr.splitlines() == [
        "skipped: point 1 (pytorch.batch_size=0): config key 'pytorch.batch_size': Input should "
        "be greater than 0 (got 0)",
        "error: stopped before the first run",
    ]


def test_a_db_whose_directory_a_file_is_in_the_way_of_is_exit_2(llem: Llem, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("mine\n")
    db = blocker / "llem.db"
    outcome = llem("run", "-n", "4", "-o", str(tmp_path / "results"), "--db", str(db))
    assert outcome.exit_code == 2
    assert outcome.stderr == f"error: cannot create {db}: a file is in the way of its directory\n"
    assert blocker.read_text() == "mine\n"


def test_checking_an_older_store_leaves_it_as_it_was(llem: Llem, tmp_path: Path) -> None:
    """A dry run or a validation reads the store it would index into; it migrates nothing."""
    import shutil

    fixture = ROOT / "packages" / "llem-store" / "tests" / "fixtures" / "store-v2"
    results = tmp_path / "results"
    shutil.copytree(fixture, results)
    before = (results / "llem.db").read_bytes()
    outcome = llem("run", "-n", "4", "-o", str(results), "--dry-run")
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.stderr == ""  # nothing to say about it: it is a store, to be migrated later
    assert (results / "llem.db").read_bytes() == before  # not migrated (schema 2 still)
    assert not list(results.glob("*.bak"))  # no copy made before a migration either
    with sqlite3.connect(f"file:{results / 'llem.db'}?mode=ro", uri=True) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (2,)


def test_a_study_whose_prompt_file_cannot_be_read_is_refused_before_it_starts(
    llem: Llem, tmp_path: Path
) -> None:
    study = tmp_path / "sweep.yaml"
    missing = tmp_path / "missing.jsonl"
    study.write_text(
        f"name: sweep\nbase: {{n: 4, prompts: {{source: {missing}}}}}\n"
        "sweep:\n  pytorch.batch_size: [1, 2]\n"
    )
    for extra in (["--dry-run"], []):
        outcome = llem("study", str(study), "-o", str(tmp_path / "results"), *extra)
        assert outcome.exit_code == 2
        assert outcome.stderr == (
            f"error: {study}: point 0 (pytorch.batch_size=1): prompt file {missing} does not "
            "exist; check prompts.source (a .jsonl or .csv path)\n"
        )
    assert not (tmp_path / "results").exists()
