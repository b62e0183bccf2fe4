"""The controller of ``llem study --executor slurm`` against Slurm alone: a study of trivial
jobs, submitted and followed by llem, against the same jobs from one ``sbatch --array``.

A one-node cluster of this host is started for the bench (``scripts/local_slurm.py``, in a
temporary directory, its own ports) and stopped at the end; it needs root and Debian's
``slurmctld slurmd slurm-client munge``. Every job asks for what a study's job asks for
(``llem_harness.study.slurm.sbatch_options`` of ``executor: {kind: slurm, gpus_per_run: 0,
cpus_per_run: 1}``: one task, one CPU, no GPU, the study's time limit, its output appended to
a log per task), and every job's script is ``#!/bin/bash`` + ``false``: it exits at once,
with status 1. (Not ``true``: Slurm would call that job COMPLETED, and the runner waits up to
``RESULT_GRACE_S``, 30 s, for the result of a COMPLETED job to show on a shared filesystem
before it fails the run; a trivial job saves none, so every study would take 30 s more.)

- **Baseline, Slurm alone**: ``sbatch --parsable --array=0-{RUNS-1}`` of that script, then
  ``squeue --array --states=all --jobs=ID`` (the array's id) every ``BASELINE_POLL_S`` until
  none of its tasks is active; timed from just before ``sbatch`` to the first poll that finds
  them all ended.
- **llem**: ``start_study`` of a study of ``cycles: RUNS`` (one point, RUNS runs) with
  ``RunOptions(executor_kind="slurm", slurm_poll_s=...)``, results indexed in a store as by
  default, timed end to end: the study directory, manifest and store, each run's spec and log
  line, the one ``sbatch``, following the jobs with ``squeue``, concluding each run, and
  ``study.json``. ``llem_harness.study.slurm_runner.job_script`` is patched to return the
  trivial script, so no run's child starts: each job exits at once having saved nothing, and
  every run ends ``failed`` (Slurm job ... ended FAILED). That is expected: what is measured
  is submitting and following, not the runs. Once at the runner's default poll
  interval (2 s) and once at 0.5 s.

Target (the issue's): the study within 1.5x of Slurm alone. The machine's cores bound how
many jobs Slurm runs at once (one CPU each).

Each case: one warm-up, then ROUNDS timed rounds with the cases in turn; the table shows the
median, the spread (max - min) and the ratio of medians to the baseline. ``--profile`` adds a
cProfile of one more llem round (0.5 s poll), costliest calls by cumulative time.

Run: uv run --frozen python bench/bench_study_slurm.py [--rounds N] [--runs N] [--profile N]
"""

import argparse
import cProfile
import importlib.util
import io
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Final
from unittest import mock

from llem_harness.study import slurm_runner
from llem_harness.study.display import PlainDisplay
from llem_harness.study.session import RunOptions, load_study, start_study
from llem_harness.study.slurm import ACTIVE_STATES, Slurm, sbatch_options
from llem_schema.study_config import SlurmExecutorConfig

RUNS: Final = 200
ROUNDS: Final = 3
TARGET_RATIO: Final = 1.5
BASELINE_POLL_S: Final = 0.1
BASELINE_LIMIT_S: Final = 3600.0
LLEM_POLLS_S: Final = (2.0, 0.5)
TRIVIAL_SCRIPT: Final = "#!/bin/bash\nfalse\n"
LOCAL_SLURM: Final = Path(__file__).parent.parent / "scripts" / "local_slurm.py"
STUDY: Final = """\
name: slurm-bench
base:
  n: 1
  max_new_tokens: 2
  warmup: {{count: 0}}
  baseline: {{enabled: false}}
  energy: {{source: none}}
executor:
  kind: slurm
  gpus_per_run: 0
  cpus_per_run: 1
cycles: {runs}
"""


def trivial_job_script(runs_dir: Path, python: str = sys.executable) -> str:
    """``llem_harness.study.slurm.job_script``'s stand-in: a job that exits at once."""
    return TRIVIAL_SCRIPT


def load_local_slurm() -> ModuleType:
    spec = importlib.util.spec_from_file_location("local_slurm", LOCAL_SLURM)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {LOCAL_SLURM}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the cases -----------------------------------------------------------------------------


def job_options(work: Path, name: str) -> list[str]:
    """What sbatch gets for a study's jobs, here for the baseline's array in ``work``."""
    (work / "runs").mkdir(parents=True, exist_ok=True)
    return sbatch_options(
        SlurmExecutorConfig(gpus_per_run=0, cpus_per_run=1),
        job_name=name,
        workdir=work,
        log_pattern=work / "runs" / "run_%4a.log",
        timeout_s=3600.0,  # StudyConfig's default timeout_s
    )


def slurm_alone(work: Path, env: Mapping[str, str], runs: int) -> None:
    """One ``sbatch --array`` of ``runs`` trivial jobs, waited for with ``squeue``."""
    options = job_options(work, "bench-baseline")
    submitted = subprocess.run(
        ["sbatch", "--parsable", f"--array=0-{runs - 1}", *options],
        input=TRIVIAL_SCRIPT,
        capture_output=True,
        text=True,
        env=dict(env),
        check=True,
    )
    array_id = submitted.stdout.strip().split(";")[0]
    query = ["squeue", "--noheader", "--array", "--states=all", f"--jobs={array_id}"]
    deadline = time.monotonic() + BASELINE_LIMIT_S
    while True:
        listed = subprocess.run(
            [*query, "--format=%i|%T"], capture_output=True, text=True, env=dict(env), check=True
        ).stdout.splitlines()
        states = [line.split("|")[1] for line in listed if "|" in line]
        if len(states) == runs and not ACTIVE_STATES.intersection(states):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"array {array_id}: squeue still lists {states} (or too few)")
        time.sleep(BASELINE_POLL_S)
    assert all(state == "FAILED" for state in states), sorted(set(states))


def llem_study(work: Path, env: Mapping[str, str], runs: int, poll_s: float) -> None:
    """A study of ``runs`` runs through the Slurm runner, each job the trivial script."""
    work.mkdir(parents=True)
    file = work / "study.yaml"
    file.write_text(STUDY.format(runs=runs))
    loaded = load_study(file)
    options = RunOptions(
        executor_kind="slurm",
        slurm_poll_s=poll_s,
        slurm=Slurm(environment=dict(env)),
        display=PlainDisplay(io.StringIO()),
    )
    with mock.patch.object(slurm_runner, "job_script", trivial_job_script):
        outcome = start_study(loaded, work / "results", options)
    entries = outcome.manifest.entries
    assert len(entries) == runs, len(entries)
    assert all(e.status == "failed" and e.slurm_job_id for e in entries), outcome.manifest.counts()
    assert all("ended FAILED" in (e.error or "") for e in entries), entries[0].error


# -- timing --------------------------------------------------------------------------------


def timed(action: Callable[[str], object], tag: str) -> float:
    start = time.perf_counter()
    action(tag)
    return time.perf_counter() - start


def alternate(cases: dict[str, Callable[[str], object]], rounds: int) -> dict[str, list[float]]:
    """One warm-up of every case, then ``rounds`` rounds running each case once in turn; each
    call gets a tag of its own (for its directory)."""
    for name, action in cases.items():
        action(f"{name}-warmup")
    times: dict[str, list[float]] = {name: [] for name in cases}
    for number in range(rounds):
        for name, action in cases.items():
            times[name].append(timed(action, f"{name}-{number}"))
            print(f"  round {number + 1}: {name} {times[name][-1]:.2f} s", file=sys.stderr)
    return times


def row(case: str, values: Sequence[float], baseline_s: float, target: bool = False) -> str:
    median = statistics.median(values)
    spread = max(values) - min(values)
    ratio = median / baseline_s
    verdict = ""
    if target:
        verdict = f"< {TARGET_RATIO:g}x: {'met' if ratio < TARGET_RATIO else 'not met'}"
    return f"| {case} | {median:.2f} s | {spread:.2f} s | {ratio:.2f} | {verdict} |"


def run_bench(work: Path, env: Mapping[str, str], rounds: int, runs: int, profile: int) -> None:
    def baseline(tag: str) -> None:
        slurm_alone(work / tag, env, runs)

    def subject(poll_s: float) -> Callable[[str], None]:
        return lambda tag: llem_study(work / tag, env, runs, poll_s)

    cases: dict[str, Callable[[str], object]] = {"baseline": baseline}
    for poll_s in LLEM_POLLS_S:
        cases[f"llem {poll_s:g}"] = subject(poll_s)
    times = alternate(cases, rounds)
    base = statistics.median(times["baseline"])
    cpus = os.cpu_count()
    lines = [
        "",
        f"{runs} trivial jobs (one CPU each; {cpus} CPUs, so Slurm runs {cpus} at once), "
        f"{rounds} rounds after one warm-up",
        "",
        "| case | median | spread | ratio | target |",
        "|---|---|---|---|---|",
        row(
            f"baseline: one `sbatch --array=0-{runs - 1}`, `squeue` every {BASELINE_POLL_S:g} s "
            "until none is active",
            times["baseline"],
            base,
        ),
    ]
    for poll_s in LLEM_POLLS_S:
        default = " (the default)" if poll_s == RunOptions().slurm_poll_s else ""
        lines.append(
            row(
                f"**llem: `start_study`, {runs} runs, `slurm_poll_s={poll_s:g}`{default}**",
                times[f"llem {poll_s:g}"],
                base,
                target=True,
            )
        )
    lines += [
        "",
        "llem's runs all end `failed` (their jobs run `false` and save no result): expected, "
        "the runs are not what is measured.",
    ]
    print("\n".join(lines))
    if profile:
        profiler = cProfile.Profile()
        poll_s = LLEM_POLLS_S[-1]
        profiler.runcall(llem_study, work / "profile", env, runs, poll_s)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(profile)
        print(f"\ncProfile of one llem round (slurm_poll_s={poll_s:g}), by cumulative time:")
        print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"timed rounds ({ROUNDS})")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"jobs per case ({RUNS})")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="print the N costliest calls"
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.runs < 1:
        parser.error("--rounds and --runs must be at least 1")
    local_slurm = load_local_slurm()
    reason: str | None = local_slurm.unavailable()
    if reason is not None:
        sys.exit(f"bench_study_slurm: {reason}")
    print(
        f"llem study --executor slurm bench, {datetime.now(UTC).isoformat(timespec='seconds')}, "
        f"{platform.node()}, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}: `{' '.join(sys.argv)}`"
    )
    with tempfile.TemporaryDirectory(prefix="llem-bench-slurm-") as temporary:
        root = Path(temporary)
        additions: dict[str, str] = local_slurm.start(root / "cluster")
        try:
            run_bench(root / "work", os.environ | additions, args.rounds, args.runs, args.profile)
        finally:
            local_slurm.stop(root / "cluster")


if __name__ == "__main__":
    main()
