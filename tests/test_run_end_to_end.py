"""`llem run` end to end on the built-in tiny model: real torch, transformers, staging,
aggregation and result files. Only NVML is faked, where energy is the subject."""

import csv
import re
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from llem_energy import nvml as nvml_module
from llem_energy.simulated import simulated_uuid
from llem_energy.testing import FakeGpu, FakeNvml
from llem_harness import run_experiment
from llem_persistence import read_timeseries
from llem_schema import ExperimentConfig, ExperimentResult, RawProcessResult
from llem_store import ExperimentFilter, ResultStore


def llem(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llem", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def saved_dir(stdout: str) -> Path:
    match = re.search(r"^result: (.+)$", stdout, re.MULTILINE)
    assert match, stdout
    return Path(match[1].strip())


def test_one_process_on_cpu_writes_a_complete_result(
    tmp_path: Path, llem_env: dict[str, str]
) -> None:
    results = tmp_path / "results"
    completed = llem(
        "run",
        "-n",
        "6",
        "--max-new-tokens",
        "8",
        "--batch-size",
        "3",
        "-o",
        str(results),
        "--export-csv",
        env=llem_env,
    )
    assert completed.returncode == 0, completed.stderr
    directory = saved_dir(completed.stdout)
    assert directory.parent == results
    result = ExperimentResult.from_json(directory)
    assert result.effective_config["n"] == 6
    assert result.model == "llem/tiny"
    (process,) = result.process_results
    assert sorted(r.request_index for r in process.requests) == list(range(6))
    assert [r.batch_index for r in process.requests] == [0, 0, 0, 1, 1, 1]
    assert result.output_tokens == sum(r.output_tokens for r in process.requests) > 0
    assert result.latency.ttft is not None
    assert result.latency.ttft.count == 6
    assert result.latency.e2e is not None
    assert result.warmup_result is not None
    assert result.warmup_result.batches == 3
    assert result.aggregation.complete
    assert result.environment_snapshot is not None
    assert result.flops is not None
    assert process.peak_memory_mb is not None
    assert process.peak_memory_source == "rss"
    # this machine has no GPU and no RAPL: energy is None, and the result says why
    assert result.total_energy_j is None
    assert "no_energy" in [w.code for w in result.measurement_warnings]
    assert not (results / ".staging" / result.experiment_id).exists()
    with (directory / "result.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["experiment_id"] for row in rows] == [result.experiment_id]
    assert "output tokens/s" in completed.stdout  # the summary table


def test_every_energy_field_is_filled_when_a_gpu_is_measured(
    tmp_path: Path, fresh_baselines: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wiring of baseline, per-device energy, timeseries and throttling into the result
    (fields an earlier tool computed but never set), with NVML faked at its boundary. The
    model runs on the CPU, so the config names the GPUs to meter (as for a server)."""
    fake = FakeNvml(  # idle at baseline time (utilisation 0), so the figure is cached
        [
            FakeGpu(uuid="GPU-e2e-0", utilization_pct=0),
            FakeGpu(uuid="GPU-e2e-1", power_w=200.0, utilization_pct=0),
        ]
    )
    monkeypatch.setattr(nvml_module, "load_nvml", lambda: fake)
    monkeypatch.setenv("LLEM_CACHE_DIR", str(fresh_baselines))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    config = ExperimentConfig.model_validate(
        {
            "n": 4,
            "max_new_tokens": 8,
            "output_dir": str(tmp_path / "results"),
            "baseline": {"duration_s": 0.3},
            "energy": {"sample_rate_hz": 50, "devices": "all"},
            "warmup": {"count": 1},
        }
    )
    directory = run_experiment(config).directory
    result = ExperimentResult.from_json(directory)
    assert result.total_energy_j is not None
    assert result.total_energy_j > 0
    assert sorted(result.energy_per_device_j) == ["GPU-e2e-0", "GPU-e2e-1"]
    assert result.baseline_power_w is not None
    assert result.energy_adjusted_j is not None
    assert result.energy_breakdown is not None
    assert result.energy_breakdown.baseline_method == "fresh"
    assert result.energy_breakdown.energy_method == "counter"
    assert result.efficiency.output_tokens_per_j is not None
    assert result.thermal_throttle is not None
    assert result.multi_gpu is not None
    assert result.multi_gpu.num_gpus == 2
    assert result.timeseries == "timeseries.parquet"
    table = read_timeseries(directory)
    assert set(table.column("gpu_index").to_pylist()) == {0, 1}
    assert result.process_results[0].sample_count == table.num_rows
    assert result.environment_snapshot is not None
    assert [g.uuid for g in result.environment_snapshot.gpus] == ["GPU-e2e-0", "GPU-e2e-1"]
    # a second run reuses the cached baseline and says so, with its age
    again = ExperimentResult.from_json(run_experiment(config).directory)
    assert again.energy_breakdown is not None
    assert again.energy_breakdown.baseline_method == "cached"
    assert again.energy_breakdown.baseline_age_s is not None


def test_two_worker_processes(tmp_path: Path, llem_env: dict[str, str]) -> None:
    completed = llem(
        "run",
        "-n",
        "6",
        "--max-new-tokens",
        "6",
        "--batch-size",
        "2",
        "--num-processes",
        "2",
        "-o",
        str(tmp_path),
        env=llem_env,
    )
    assert completed.returncode == 0, completed.stderr
    result = ExperimentResult.from_json(saved_dir(completed.stdout))
    assert [p.process_index for p in result.process_results] == [0, 1]
    indices = sorted(r.request_index for p in result.process_results for r in p.requests)
    assert indices == list(range(6))  # every prompt measured exactly once
    assert result.aggregation.num_processes == 2
    assert result.aggregation.complete
    assert result.aggregation.temporal_overlap_verified  # a barrier opens the windows together
    assert result.output_tokens == sum(
        r.output_tokens for p in result.process_results for r in p.requests
    )


def test_simulated_gpus_run_the_whole_energy_path_and_say_so(
    tmp_path: Path, llem_env: dict[str, str], fresh_baselines: Path
) -> None:
    """LLEM_SIMULATED_GPUS: every process of the run opens the simulated NVML and meters
    one simulated GPU (the model is on the CPU), and the result can never pass for a
    measurement. 3 prompts over 2 processes are 2 and 1: the one with 1 finishes a whole
    request first and keeps metering until the other is done, so the windows close
    together."""
    env = llem_env | {"LLEM_SIMULATED_GPUS": "2", "LLEM_CACHE_DIR": str(fresh_baselines)}
    completed = llem(
        "run",
        "-n",
        "3",
        "--max-new-tokens",
        "32",
        "--batch-size",
        "1",
        "--num-processes",
        "2",
        "--set",
        "baseline.duration_s=0.5",
        "--set",
        "energy.sample_rate_hz=50",
        "-o",
        str(tmp_path / "results"),
        env=env,
    )
    assert completed.returncode == 0, completed.stderr
    result = ExperimentResult.from_json(saved_dir(completed.stdout))
    assert result.simulated
    assert all(p.simulated for p in result.process_results)
    simulated = [w for w in result.measurement_warnings if w.code == "simulated_gpus"]
    assert len(simulated) == 1  # raised by both processes, given once
    assert "LLEM_SIMULATED_GPUS=2" in simulated[0].message
    assert "[simulated_gpus]" in completed.stdout  # the summary shows it
    # one simulated GPU per process, by local rank, each counted once
    assert sorted(result.energy_per_device_j) == [simulated_uuid(0), simulated_uuid(1)]
    assert result.energy_scope == "gpu"
    assert result.gpu_energy_j is not None
    assert result.gpu_energy_j > 0
    assert result.efficiency.output_tokens_per_j is not None
    assert result.energy_breakdown is not None
    assert result.energy_breakdown.baseline_method == "fresh"
    assert "baseline_not_idle" not in [w.code for w in result.measurement_warnings]
    devices = [e for p in result.process_results for e in p.energy if e.domain == "gpu"]
    assert {e.power_reading for e in devices} == {"instant"}
    assert all(e.sample_rate_hz is not None and e.sample_rate_hz > 10 for e in devices)
    # the windows open and close at common barriers: the process with fewer requests keeps
    # metering until the other's last token (without the closing barrier it would stop at
    # its own, a request earlier)
    assert result.aggregation.temporal_overlap_verified

    def window_end(raw: RawProcessResult) -> datetime:
        return raw.start_time + timedelta(seconds=raw.duration_s)

    def last_token(raw: RawProcessResult) -> datetime:
        ends = [r.start_s + (r.e2e_ms or 0.0) / 1000 for r in raw.requests if r.start_s]
        return raw.start_time + timedelta(seconds=max(ends))

    many, few = sorted(result.process_results, key=lambda raw: -len(raw.requests))
    assert (len(many.requests), len(few.requests)) == (2, 1)
    assert window_end(few) >= last_token(many) - timedelta(milliseconds=5)
    assert window_end(few) - last_token(few) > timedelta(milliseconds=10)
    assert result.aggregation.end_skew_s is not None
    assert result.aggregation.end_skew_s < 0.25
    assert result.timeseries is not None


def test_a_bad_simulated_gpus_value_is_one_line_and_exit_2(
    tmp_path: Path, llem_env: dict[str, str]
) -> None:
    completed = llem(
        "run", "-n", "2", "-o", str(tmp_path), env=llem_env | {"LLEM_SIMULATED_GPUS": "two"}
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines()[-1] == (
        "error: LLEM_SIMULATED_GPUS must be a whole number from 1 to 16 (the GPUs to "
        "simulate), got 'two'; unset it to use the real GPUs"
    )
    assert not list(tmp_path.glob("*/result.json"))


# Loaded at interpreter start in every process that has it on PYTHONPATH. In worker 1 (the
# launcher sets RANK=1 in it once it runs) staging waits until worker 0 has staged its
# result, then the worker dies by SIGKILL instead of staging its own.
KILL_RANK_1 = textwrap.dedent(
    """
    import os, signal, time
    from llem_persistence import staging

    original = staging.StagingRepository.save_raw

    def save_raw_or_die(self, experiment_id, raw):
        if os.environ.get("RANK") != "1":
            return original(self, experiment_id, raw)
        marker = self.experiment_dir(experiment_id) / "process_0.done"
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)

    staging.StagingRepository.save_raw = save_raw_or_die
    """
)


def test_a_killed_worker_leaves_the_staging_and_llem_aggregate_recovers_it(
    tmp_path: Path, llem_env: dict[str, str]
) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(KILL_RANK_1)
    env = llem_env | {"PYTHONPATH": str(hooks)}
    results = tmp_path / "results"
    completed = llem(
        "run",
        "-n",
        "4",
        "--max-new-tokens",
        "4",
        "--num-processes",
        "2",
        "-o",
        str(results),
        env=env,
    )
    assert completed.returncode == 1
    error = completed.stderr.strip().splitlines()[-1]
    match = re.fullmatch(
        r"error: process 1 killed by signal 9 \(SIGKILL\); the processes that finished "
        r"are staged in (\S+)/\.staging/(\S+); recover them with `llem aggregate (\S+) "
        r"--output (\S+)`",
        error,
    )
    assert match, completed.stderr
    experiment_id = match[2]
    assert match[1] == match[4] == str(results)
    assert match[3] == experiment_id
    assert (results / ".staging" / experiment_id / "process_0.json").is_file()
    assert not [p for p in results.iterdir() if p.is_dir() and p.name != ".staging"]
    with ResultStore(results / "llem.db", create=False) as store:
        failed = store.get(experiment_id)
    assert failed.status == "failed"
    assert failed.error == "process 1 killed by signal 9 (SIGKILL)"
    assert failed.result_path is None

    recovered = llem("aggregate", experiment_id, "--output", str(results), env=llem_env)
    assert recovered.returncode == 0, recovered.stderr
    assert "incomplete, missing processes 1" in recovered.stdout
    (directory,) = [p for p in results.iterdir() if p.is_dir() and p.name != ".staging"]
    result = ExperimentResult.from_json(directory)
    assert not result.aggregation.complete
    with ResultStore(results / "llem.db", create=False) as store:
        recovered_row = store.get(experiment_id)
    assert recovered_row.status == "incomplete"  # the failed row now points at the result
    assert recovered_row.result_path == directory.absolute()
    assert recovered_row.requests == len(result.process_results[0].requests)
    assert result.aggregation.missing_processes == [1]
    assert [p.process_index for p in result.process_results] == [0]
    assert not (results / ".staging" / experiment_id).exists()


def test_a_bad_config_exits_2_naming_the_key(tmp_path: Path, llem_env: dict[str, str]) -> None:
    config = tmp_path / "experiment.yaml"
    config.write_text("n: 10\npytorch:\n  batch: 4\n")
    completed = llem("run", str(config), env=llem_env)
    assert completed.returncode == 2
    assert completed.stderr.startswith(
        f"error: {config}: unknown config key 'pytorch.batch'; did you mean 'batch_size'?"
    )
    assert completed.stderr.count("\n") == 1


def test_aggregate_of_an_unknown_id_is_a_usage_error(
    tmp_path: Path, llem_env: dict[str, str]
) -> None:
    completed = llem("aggregate", "nope", "--output", str(tmp_path), env=llem_env)
    assert completed.returncode == 2
    assert completed.stderr == (
        f"error: no staged experiment 'nope' in {tmp_path / '.staging'} (staged: none)\n"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT semantics are POSIX")
def test_ctrl_c_saves_what_finished_marked_incomplete_and_exits_130(
    tmp_path: Path, llem_env: dict[str, str]
) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "llem", "run", "-n", "400", "--max-new-tokens", "64", "-o",
         str(tmp_path)],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=llem_env,
        # A shell without job control starts background jobs with SIGINT ignored, and
        # children inherit that: give llem the default disposition a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    ) as run:  # fmt: skip
        assert run.stderr is not None
        inference = 0
        for line in run.stderr:
            inference += line.startswith("inference")
            if inference == 2:  # started, then a tenth of the requests done
                break
        else:
            pytest.fail("llem run ended before a tenth of its requests were done")
        run.send_signal(signal.SIGINT)
        stdout, rest = run.communicate(timeout=60)
    assert run.returncode == 130, rest
    last = rest.strip().splitlines()[-1]
    match = re.fullmatch(
        r"error: interrupted; what finished is saved, marked incomplete, in (.+)", last
    )
    assert match, last
    result = ExperimentResult.from_json(match[1])
    assert f"result: {match[1]}" in stdout  # the summary of what was saved
    (process,) = result.process_results
    assert process.interrupted
    assert 40 <= len(process.requests) < 400
    assert [r.request_index for r in process.requests] == list(range(len(process.requests)))
    assert not result.aggregation.complete
    assert not any((tmp_path / ".staging").glob("*/process_*.json"))
    with ResultStore(tmp_path / "llem.db", create=False) as store:
        (interrupted,) = store.list_experiments(ExperimentFilter(statuses=None))
    assert (interrupted.experiment_id, interrupted.status) == (result.experiment_id, "incomplete")
