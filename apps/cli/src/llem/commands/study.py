"""``llem study``: run a study of many configurations, resume it, and show its statistics.

``llem study STUDY.yaml`` is short for ``llem study run STUDY.yaml``. Everything heavy (the
study modules, pydantic models, Rich tables) loads inside the command bodies, so ``llem
--help`` stays fast.
"""

import sys
from pathlib import Path
from typing import Annotated, Any

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
) -> None:
    """Run every configuration of a study, each in its own process; resume one."""
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
