"""``llem study`` as a user types it, in-process: ``show`` over a study directory built from
example results, the one-line refusals of impossible option combinations (exit 2), and which
devices ``--parallel`` picks. Running studies is in test_study_runner.py and the end-to-end
tests."""

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pytest

from llem.commands.study import parallel_devices, parse_devices
from llem.errors import UsageError
from llem_energy import nvml as nvml_module
from llem_energy.testing import FakeGpu, FakeNvml
from llem_harness.study.layout import StudyLayout, hold_study_lock
from llem_harness.study.results import write_study_result
from llem_schema import StudyManifest, expand_study, parse_study
from llem_schema.testing import EXAMPLE_BACKENDS, example_raw_result, example_result


class Outcome(Protocol):
    @property
    def exit_code(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


Llem = Callable[..., Outcome]

STUDY = {
    "name": "shown",
    "base": {"n": 4, "max_new_tokens": 4},
    "sweep": {"pytorch.batch_size": [1, 2, 0]},
    "cycles": 3,
    "skip_invalid": True,  # point 2, batch size 0, is skipped
}


def make_study_dir(root: Path, *, finished: bool = True) -> Path:
    """A study directory whose runs completed with example results (one cycle of point 1
    missing when not ``finished``)."""
    study = parse_study(STUDY, backends=EXAMPLE_BACKENDS)
    plan = expand_study(study, backends=EXAMPLE_BACKENDS)
    layout = StudyLayout(root / "shown_2026-11-22T14-03-05_0a1b2c")
    manifest = StudyManifest.new(
        plan,
        study_id=layout.study_id,
        study_name=study.name,
        created_at=datetime(2026, 11, 22, 14, 3, 5, tzinfo=UTC),
    )
    for run in plan.runs:
        if not finished and run.run_index == len(plan.runs) - 1:
            break
        config = plan.point(run.point_index).config
        experiment_id = f"tiny_pytorch_2026-11-22T14-03-05_00000{run.run_index}"
        raw = example_raw_result(
            config=config, seed=run.run_index, energy_j=100.0 + run.run_index
        ).model_copy(update={"experiment_id": experiment_id})
        directory = example_result([raw], config=config).save(layout.root)
        manifest = manifest.with_entry(
            run.run_index,
            status="completed",
            experiment_id=experiment_id,
            result_path=directory.name,
        )
    if finished:
        manifest = manifest.with_status("completed")
        manifest.save(layout.root)
        write_study_result(layout, manifest, study)
    else:
        manifest = manifest.with_status("interrupted")
        manifest.save(layout.root)
    return layout.root


def words(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines()]


def cells(line: str) -> list[str]:
    """A row's cells: the texts two or more spaces apart."""
    return re.split(r"\s{2,}", line.strip())


@pytest.mark.parametrize("width", [80, 120])
def test_show_fits_a_terminal_with_the_point_names_whole(
    llem: Llem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    study_dir = make_study_dir(tmp_path)
    piped = llem("study", "show", str(study_dir)).stdout.splitlines()
    whole = [set(cells(row)) for row in piped[3:5]]
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # Rich's terminal, this wide, no colours
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setenv("NO_COLOR", "1")
    outcome = llem("study", "show", str(study_dir))
    assert outcome.exit_code == 0, outcome.stderr
    lines = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", outcome.stdout).splitlines()
    assert max(map(len, lines)) <= width
    rule = next(i for i, line in enumerate(lines) if line.startswith("───"))
    headings = " ".join(" ".join(lines[rule - 2 : rule]).split())
    assert headings.startswith("tok/s tok/s")  # the metrics' headings on two lines
    assert "point overrides" in headings
    rows = [cells(row) for row in lines[rule + 1 : rule + 3]]
    assert [row[:2] for row in rows] == [
        ["0", "pytorch.batch_size=1"],
        ["1", "pytorch.batch_size=2"],
    ]
    for row, cells_whole in zip(rows, whole, strict=True):
        assert set(row) <= cells_whole  # no figure cut or broken
        assert row[2].count(" ± ") == 1  # tok/s mean ± std, the first figure kept
    warnings = next(i for i, line in enumerate(lines) if line.endswith("warning(s):"))
    note = " ".join(lines[rule + 3 : warnings])
    assert note.startswith("not shown at this width: ")
    assert "the same in every row: cycles 3" in note
    if width == 120:
        assert "95% CI" in headings


def test_show_prints_each_configuration_with_its_spread_and_the_warnings(
    llem: Llem, tmp_path: Path
) -> None:
    study_dir = make_study_dir(tmp_path)
    outcome = llem("study", "show", str(study_dir))
    assert outcome.exit_code == 0, outcome.stderr
    lines = words(outcome.stdout)
    assert lines[0] == (
        f"study {study_dir.name} (shown): completed; 6 completed, 0 failed, 1 skipped, 0 not run"
    )
    assert lines[1].startswith(f"study {study_dir.name} (shown), design ")
    assert "6 of 6 run(s) completed" in lines[1]
    # piped: plain, every column, a row a line, no box
    table = outcome.stdout.splitlines()[2:5]
    assert cells(table[0]) == [
        *("point", "overrides", "cycles"),
        *("tok/s mean ± std", "tok/s 95% CI", "tok/s CV"),
        *("tok/J mean ± std", "tok/J 95% CI", "tok/J CV"),
        *("energy J mean ± std", "energy J 95% CI", "energy J CV"),
    ]
    rows = [cells(row) for row in table[1:]]
    assert [row[:3] for row in rows] == [
        ["0", "pytorch.batch_size=1", "3"],
        ["1", "pytorch.batch_size=2", "3"],
    ]
    assert all(" ± " in row[3] and row[4].startswith("[") and row[5].endswith("%") for row in rows)
    assert all(line == line.rstrip() for line in outcome.stdout.splitlines())
    assert not set("┃│─") & set(outcome.stdout)
    assert any(line.startswith("- point 2 (pytorch.batch_size=0) was skipped: ") for line in lines)

    as_json = llem("study", "show", str(study_dir), "--json")
    assert as_json.exit_code == 0, as_json.stderr
    assert json.loads(as_json.stdout) == json.loads((study_dir / "study.json").read_text())


def test_show_of_an_unfinished_study_gives_its_manifest_counts(llem: Llem, tmp_path: Path) -> None:
    study_dir = make_study_dir(tmp_path, finished=False)
    outcome = llem("study", "show", str(study_dir))
    assert outcome.exit_code == 0, outcome.stderr
    assert words(outcome.stdout) == [
        f"study {study_dir.name} (shown): interrupted; 5 completed, 0 failed, 1 skipped, "
        f"1 not run; resume with `llem study --resume {study_dir}`",
        "no study.json yet: the study has not finished or been interrupted",
    ]
    as_json = llem("study", "show", str(study_dir), "--json")
    assert as_json.exit_code == 2
    assert as_json.stderr.startswith(f"error: {study_dir} has no study.json yet: study ")


def test_show_tells_a_study_running_now_from_one_whose_process_died(
    llem: Llem, tmp_path: Path
) -> None:
    study_dir = make_study_dir(tmp_path, finished=False)
    StudyManifest.load(study_dir).with_status("running").save(study_dir)
    counts = "5 completed, 0 failed, 1 skipped, 1 not run"
    with hold_study_lock(StudyLayout(study_dir)):
        running = llem("study", "show", str(study_dir))
    assert words(running.stdout)[0] == f"study {study_dir.name} (shown): running; {counts}"
    stopped = llem("study", "show", str(study_dir))
    assert words(stopped.stdout)[0] == (
        f"study {study_dir.name} (shown): stopped while running (its process is gone); "
        f"{counts}; resume with `llem study --resume {study_dir}`"
    )


def test_show_of_a_directory_that_is_no_study_exits_2(llem: Llem, tmp_path: Path) -> None:
    outcome = llem("study", "show", str(tmp_path))
    assert outcome.exit_code == 2
    assert outcome.stderr == (
        f"error: {tmp_path} is not a study directory (it has neither manifest.json nor "
        "study.json)\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give a study file (llem study STUDY.yaml), or --resume STUDY_DIR"),
        (
            ("--resume", "d", "-o", "o"),
            "--output does not apply to --resume: the study stays in its directory",
        ),
        (("s.yaml", "--force"), "--force only applies with --resume"),
        (("s.yaml", "--devices", "0,1"), "--devices needs --parallel"),
        (
            ("--resume", "d", "--dry-run"),
            "--dry-run plans a new study; it does not combine with --resume",
        ),
        (
            ("s.yaml", "--parallel", "--devices", "0,,1"),
            "--devices '0,,1': give device indices or UUIDs, such as 0,1",
        ),
        (("s.yaml", "--detach"), "--detach leaves runs to Slurm: give --executor slurm"),
        (
            ("s.yaml", "--partition", "gpu"),
            "partition: Slurm settings, for a study run with --executor slurm",
        ),
        (
            ("s.yaml", "--executor", "local", "--max-parallel", "2"),
            "Slurm settings do not apply to --executor local",
        ),
        (
            ("s.yaml", "--executor", "slurm", "--parallel"),
            "--parallel runs on this machine's GPUs; with Slurm use --max-parallel",
        ),
        (
            ("s.yaml", "--executor", "slurm", "--mem", "lots"),
            "executor.mem: String should match pattern '^[0-9]+[KMGT]?$'",
        ),
    ],
)
def test_impossible_combinations_are_one_line_and_exit_2(
    llem: Llem, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "s.yaml").write_text("name: s\nbase: {n: 1}\n")
    outcome = llem("study", "run", *[str(tmp_path / a) if a == "s.yaml" else a for a in args])
    assert outcome.exit_code == 2
    assert outcome.stderr == f"error: {message}\n"


def test_parallel_is_refused_for_a_study_file_whose_runs_are_slurm_jobs(
    llem: Llem, tmp_path: Path
) -> None:
    study_file = tmp_path / "s.yaml"
    study_file.write_text("name: s\nbase: {n: 1}\nexecutor: {kind: slurm}\n")
    outcome = llem("study", str(study_file), "--parallel", "--devices", "0,1", "-o", str(tmp_path))
    assert outcome.exit_code == 2
    assert outcome.stderr == (
        "error: --parallel runs on this machine's GPUs, but this study's runs are Slurm jobs: "
        "use --max-parallel, or --executor local\n"
    )
    assert list(tmp_path.iterdir()) == [study_file]


def test_a_misspelt_executor_setting_names_the_key(llem: Llem, tmp_path: Path) -> None:
    study_file = tmp_path / "s.yaml"
    study_file.write_text("name: s\nbase: {n: 1}\nexecutor: {kind: slurm, partiton: gpu}\n")
    outcome = llem("study", str(study_file), "-o", str(tmp_path / "out"))
    assert outcome.exit_code == 2
    assert outcome.stderr.startswith(f"error: {study_file}: ")
    assert "partiton" in outcome.stderr
    assert outcome.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_resume_of_a_directory_that_is_no_study_exits_2(llem: Llem, tmp_path: Path) -> None:
    outcome = llem("study", "--resume", str(tmp_path))
    assert outcome.exit_code == 2
    assert (
        outcome.stderr == f"error: {tmp_path} is not a study directory (it has no manifest.json)\n"
    )


def test_the_study_file_is_validated_before_anything_is_created(llem: Llem, tmp_path: Path) -> None:
    study_file = tmp_path / "s.yaml"
    study_file.write_text("name: s\nbase: {n: 1}\ncycle: 2\n")
    outcome = llem("study", str(study_file), "-o", str(tmp_path / "out"))
    assert outcome.exit_code == 2
    assert outcome.stderr.startswith(f"error: {study_file}: unknown study key 'cycle'")
    assert outcome.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
    missing = llem("study", str(tmp_path / "nope.yaml"))
    assert (missing.exit_code, missing.stderr) == (
        2,
        f"error: {tmp_path / 'nope.yaml'}: no such study file\n",
    )


def test_an_output_that_cannot_hold_a_study_is_one_line_and_exit_2(
    llem: Llem, tmp_path: Path
) -> None:
    study_file = tmp_path / "s.yaml"
    study_file.write_text("name: s\nbase: {n: 1}\n")
    outcome = llem("study", str(study_file), "-o", str(study_file / "out"))
    assert outcome.exit_code == 2
    assert re.fullmatch(
        rf"error: cannot create the study directory {re.escape(str(study_file))}/out/s_\S+ "
        r"\(Not a directory\); choose another --output\n",
        outcome.stderr,
    ), outcome.stderr


def test_parallel_uses_the_gpus_nvml_sees_or_the_devices_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakeNvml([FakeGpu(uuid="GPU-a"), FakeGpu(uuid="GPU-b"), FakeGpu(uuid="GPU-c")])
    monkeypatch.setattr(nvml_module, "load_nvml", lambda: fake)
    assert parallel_devices(None) == ["0", "1", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    assert parallel_devices(None) == ["2", "0"]
    assert parallel_devices("3, GPU-b") == ["3", "GPU-b"]
    monkeypatch.setattr(nvml_module, "load_nvml", lambda: FakeNvml([]))
    with pytest.raises(UsageError, match=r"^--parallel needs GPUs \(none found\); give --devices"):
        parallel_devices(None)
    with pytest.raises(UsageError, match="device 1 is given twice"):
        parse_devices("1,1")
