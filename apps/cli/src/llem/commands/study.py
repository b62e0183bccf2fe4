"""``llem study``: run a study of many configurations, resume it, and show its statistics.

``llem study STUDY.yaml`` is short for ``llem study run STUDY.yaml``. Everything heavy (the
study modules, pydantic models, Rich tables) loads inside the command bodies, so ``llem
--help`` stays fast.
"""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from typer.core import TyperGroup

from llem.commands._store import db_option

__all__ = ["app"]


class _RunByDefault(TyperGroup):
    """A group whose ``run`` command is implied: ``llem study FILE`` is ``llem study run FILE``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        result: list[str] = super().parse_args(ctx, args)
        return result


app = typer.Typer(
    rich_markup_mode=None,
    cls=_RunByDefault,
    help=(
        "Run a study (a sweep of configurations, each measured over several cycles), resume "
        "it, and show its statistics. `llem study STUDY.yaml` is `llem study run STUDY.yaml`."
    ),
    no_args_is_help=True,
)


@app.command("run")
def run(
    study_file: Annotated[
        Path | None,
        typer.Argument(help="Study YAML; with --resume, a changed copy to check (or --force)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Directory the study directory goes into (default: output_dir)."
        ),
    ] = None,
    db: Annotated[Path | None, db_option("<output>/llem.db")] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="List the runs and the estimated time; run nothing."),
    ] = False,
    parallel: Annotated[
        bool, typer.Option("--parallel", help="One experiment per GPU at a time, each pinned.")
    ] = False,
    devices: Annotated[
        str | None,
        typer.Option(help="With --parallel: the GPUs to use, such as 0,1 (default: every GPU)."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Run what a study left undone (its directory); its study.yaml unless given.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="With --resume: use a changed study file, keeping completed runs."
        ),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logs (runs' logs included).")
    ] = False,
    executor: Annotated[
        Literal["local", "slurm"] | None,
        typer.Option(
            help="Where the runs run: this machine, or one Slurm job each (default: the study "
            "file's executor; on a resume, the one it ran with).",
        ),
    ] = None,
    partition: Annotated[
        str | None, typer.Option(help="Slurm partition of the runs' jobs.")
    ] = None,
    account: Annotated[str | None, typer.Option(help="Slurm account of the runs' jobs.")] = None,
    gpus_per_run: Annotated[int | None, typer.Option(help="GPUs per run's job.")] = None,
    cpus_per_run: Annotated[int | None, typer.Option(help="CPUs per run's job.")] = None,
    mem: Annotated[str | None, typer.Option(help="Memory per run's job, such as 32G.")] = None,
    time_limit: Annotated[
        str | None,
        typer.Option(help="Time limit per run's job (sbatch --time)."),
    ] = None,
    max_parallel: Annotated[
        int | None,
        typer.Option(help="Runs Slurm may run at once."),
    ] = None,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Submit the runs to Slurm and return; --resume collects them.",
        ),
    ] = False,
    cancel_on_interrupt: Annotated[
        bool,
        typer.Option(
            "--cancel-on-interrupt",
            help="Ctrl-C cancels the Slurm jobs (default: ask, or leave them running).",
        ),
    ] = False,
) -> None:
    """Run every configuration of a study, each in its own process (or Slurm job); resume
    one."""
    from llem.commands._store import resolve_db
    from llem.errors import UsageError
    from llem.render.format import console
    from llem.render.progress import make_study_display
    from llem_harness.study.session import RunOptions, load_study, resume_study, start_study

    if verbose:
        from llem.logs import configure_logging

        configure_logging(verbose=True)
    if study_file is None and resume is None:
        raise UsageError("give a study file (llem study STUDY.yaml), or --resume STUDY_DIR")
    if resume is not None and output is not None:
        raise UsageError("--output does not apply to --resume: the study stays in its directory")
    if resume is not None and dry_run:
        raise UsageError("--dry-run plans a new study; it does not combine with --resume")
    if force and resume is None:
        raise UsageError("--force only applies with --resume")
    if devices is not None and not parallel:
        raise UsageError("--devices needs --parallel")

    slurm_settings = {
        name: value
        for name, value in (
            ("partition", partition),
            ("account", account),
            ("gpus_per_run", gpus_per_run),
            ("cpus_per_run", cpus_per_run),
            ("mem", mem),
            ("time_limit", time_limit),
            ("max_parallel", max_parallel),
        )
        if value is not None
    }
    if executor == "local" and (slurm_settings or detach or cancel_on_interrupt):
        raise UsageError("Slurm settings do not apply to --executor local")
    if parallel and executor == "slurm":
        raise UsageError("--parallel runs on this machine's GPUs; with Slurm use --max-parallel")
    chosen = parallel_devices(devices) if parallel else (None,)
    if resume is None:
        assert study_file is not None
        loaded = load_study(study_file)
        output_dir = output if output is not None else Path(loaded.study.output_dir)
        if dry_run:  # refused where the run would be
            from llem.render.study import print_dry_run
            from llem_harness.study.devices import check_parallel_plan

            check_parallel_plan(loaded.plan, chosen)
            print_dry_run(loaded, db=resolve_db(db, output_dir), console=console())
            return
    options = RunOptions(
        store=db,
        devices=chosen,
        display=make_study_display(interactive=sys.stderr.isatty()),
        enter_skips=sys.stderr.isatty() and sys.stdin.isatty(),
        verbose=verbose,
        executor_kind=executor,
        slurm_settings=slurm_settings,
        detach=detach,
        cancel_on_interrupt=_cancel_jobs(always=cancel_on_interrupt),
    )
    if resume is None:
        from llem_schema.study_plan import format_overrides

        for skip in loaded.plan.skipped:  # said before the first run, not found afterwards
            typer.echo(
                f"skipped: point {skip.index} ({format_overrides(skip.overrides)}): {skip.reason}",
                err=True,
            )
        outcome = start_study(loaded, output_dir, options)
    else:
        outcome = resume_study(resume, study_file, force=force, options=options)

    if detach:
        counts = outcome.manifest.counts()
        typer.echo(
            f"study {outcome.manifest.study_id}: {counts['running']} run(s) in Slurm; "
            f"llem study status {outcome.layout.root} shows them, llem study --resume "
            f"{outcome.layout.root} collects them"
        )
        return
    outcome.raise_if_interrupted()
    manifest, layout = outcome.manifest, outcome.layout
    counts = manifest.counts()
    typer.echo(
        f"study {manifest.study_id}: {counts['completed']} completed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped; see {layout.manifest_file}"
    )
    typer.echo(f"statistics: {layout.result_file} (llem study show {layout.root})")
    if counts["failed"]:
        raise typer.Exit(1)


def _cancel_jobs(*, always: bool) -> Callable[[int], bool]:
    """Whether Ctrl-C cancels a study's jobs in Slurm: yes with --cancel-on-interrupt; else
    asked at a terminal (default no), and no elsewhere."""

    def decide(jobs: int) -> bool:
        if always:
            return True
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            return False
        try:
            return typer.confirm(
                f"cancel the {jobs} Slurm job(s) of this study? (no: they go on; --resume "
                "collects them)",
                default=False,
                err=True,
            )
        except (KeyboardInterrupt, typer.Abort, EOFError):
            return False

    return decide


@app.command("status")
def status(
    study_dir: Annotated[Path, typer.Argument(help="The study directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="One object per run.")] = False,
) -> None:
    """Where each run of a study is: completed, failed, skipped, pending, or queued, running
    or ended in Slurm (asked now)."""
    from llem.render.format import Column, Listing, console, dumps
    from llem_harness.study.status import study_status

    found = study_status(study_dir)
    counts = found.counts()
    order = ("completed", "running", "queued", "ended", "pending", "failed", "skipped")
    summary = ", ".join(f"{counts[name]} {name}" for name in order if counts.get(name))
    if as_json:
        typer.echo(
            dumps(
                [
                    {
                        "run_index": run.entry.run_index,
                        "point_index": run.entry.point_index,
                        "cycle": run.entry.cycle,
                        "status": run.status,
                        "experiment_id": run.entry.experiment_id,
                        "slurm_job_id": run.entry.slurm_job_id,
                        "slurm_state": run.job.describe() if run.job else None,
                        "error": run.entry.error,
                    }
                    for run in found.runs
                ]
            )
        )
        return
    out = console()
    followed = "followed by an llem process" if found.followed else "not followed now"
    out.print(f"study {found.manifest.study_id} ({followed}): {summary}", markup=False)
    if found.note:
        typer.echo(f"note: {found.note}", err=True)
    shown = [run for run in found.runs if run.status != "completed"]
    if shown:
        out.print(
            Listing(
                [
                    Column("run", [str(r.entry.run_index) for r in shown], right=True),
                    Column("point", [str(r.entry.point_index) for r in shown], right=True),
                    Column(
                        "cycle",
                        ["" if r.entry.cycle is None else str(r.entry.cycle) for r in shown],
                        right=True,
                    ),
                    Column("status", [r.status for r in shown]),
                    Column("slurm job", [r.entry.slurm_job_id or "" for r in shown]),
                    Column(
                        "slurm state / error",
                        [r.job.describe() if r.job else (r.entry.error or "") for r in shown],
                    ),
                ]
            )
        )


@app.command("show")
def show(
    study_dir: Annotated[Path, typer.Argument(help="The study directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print study.json.")] = False,
) -> None:
    """The statistics across cycles of each configuration, and the study's warnings."""
    from llem.render.format import console
    from llem.render.study import print_study, study_json

    if as_json:
        typer.echo(study_json(study_dir))
        return
    print_study(study_dir, console())


def parse_devices(text: str) -> list[str]:
    """``--devices "0,1"`` -> ``["0", "1"]``: CUDA_VISIBLE_DEVICES entries (indices or GPU
    UUIDs)."""
    from llem.errors import UsageError

    devices = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not device for device in devices):
        raise UsageError(f"--devices {text!r}: give device indices or UUIDs, such as 0,1")
    if any(" " in device for device in devices):
        raise UsageError(f"--devices {text!r}: separate devices with commas only")
    duplicates = sorted({device for device in devices if devices.count(device) > 1})
    if duplicates:
        raise UsageError(f"--devices {text!r}: device {duplicates[0]} is given twice")
    return devices


def parallel_devices(devices: str | None) -> list[str]:
    """The devices of ``--parallel``: ``--devices``, else every GPU (exit 2 without one)."""
    from llem.errors import UsageError
    from llem_harness.study.devices import visible_gpus

    if devices is not None:
        return parse_devices(devices)
    found = visible_gpus()
    if not found:
        raise UsageError("--parallel needs GPUs (none found); give --devices to choose them")
    return found
