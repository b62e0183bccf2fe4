"""``llem run``: measure one experiment and save its result directory."""

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from llem.commands._store import db_option, resolve_db
from llem.commands.config import SetOption, parse_sets

if TYPE_CHECKING:
    from llem_schema import ExperimentConfig


def run(
    config_file: Annotated[
        Path | None, typer.Argument(help="Experiment YAML; without it, the defaults.")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="The backend to measure with (`llem backends` lists them).  [default: pytorch]"
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Model directory or cached hub id; 'llem/tiny' is built in.  [default: llem/tiny]"
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            metavar="SOURCE",
            help="Prompts: 'builtin', 'synthetic', or a .jsonl/.csv file.  [default: builtin]",
        ),
    ] = None,
    n: Annotated[
        int | None,
        typer.Option("-n", "--num-prompts", help="Number of prompts to measure.  [default: 100]"),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Prompts per batch (the backend's batch_size setting).  [default: 1]"),
    ] = None,
    precision: Annotated[
        Literal["fp32", "fp16", "bf16"] | None,
        typer.Option(help="Weights and activations.  [default: fp32]"),
    ] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Output tokens per request.  [default: 128]")
    ] = None,
    num_processes: Annotated[
        int | None, typer.Option(help="Worker processes.  [default: 1]")
    ] = None,
    request_rate: Annotated[
        str | None,
        typer.Option(
            metavar="RATE",
            help="Requests per second sent on the arrival schedule, or 'inf' (all at once).  [default: inf]",
        ),
    ] = None,
    max_concurrency: Annotated[
        int | None, typer.Option(help="Requests in flight at most.  [default: no limit]")
    ] = None,
    energy: Annotated[
        Literal["auto", "nvml", "rapl", "none"] | None,
        typer.Option(help="Energy source; none: throughput and latency only.  [default: auto]"),
    ] = None,
    no_baseline: Annotated[bool, typer.Option("--no-baseline", help="Skip idle power.")] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="DIR", help="Results directory.  [default: results]"
        ),
    ] = None,
    export_csv: Annotated[
        bool, typer.Option("--export-csv", help="Also write result.csv beside result.json.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and show the plan; run nothing.")
    ] = False,
    sets: SetOption = None,
    db: Annotated[Path | None, db_option("<output>/llem.db")] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logs (same as llem -v run).")
    ] = False,
    launcher: Annotated[
        Literal["auto", "local", "slurm"],
        typer.Option(
            help="Who starts the processes: this machine (local); srun, across nodes (slurm); "
            "auto: each task of an srun step is one process, else local.",
        ),
    ] = "auto",
    nodes: Annotated[
        int | None, typer.Option(help="Nodes srun runs the processes on.  [default: 1]")
    ] = None,
    gpus_per_node: Annotated[
        int | None,
        typer.Option(
            help="GPUs per node, one process each.  [default: none asked for; num_processes "
            "spread over the nodes]"
        ),
    ] = None,
    partition: Annotated[str | None, typer.Option(help="Slurm partition for srun.")] = None,
    account: Annotated[str | None, typer.Option(help="Slurm account for srun.")] = None,
    time_limit: Annotated[
        str | None, typer.Option(help="Time limit of the srun step (srun --time).")
    ] = None,
) -> None:
    """Measure energy, throughput and latency of one experiment."""
    from llem.errors import UsageError
    from llem_harness import load_experiment_config

    if verbose:
        from llem.logs import configure_logging

        configure_logging(verbose=True)
    slurm_options = {
        "--nodes": nodes,
        "--gpus-per-node": gpus_per_node,
        "--partition": partition,
        "--account": account,
        "--time-limit": time_limit,
    }
    given = [name for name, value in slurm_options.items() if value is not None]
    if given and launcher != "slurm":
        raise UsageError(f"{', '.join(given)} only apply with --launcher slurm")
    overrides: dict[str, object] = {
        "backend": backend,
        "model": model,
        "prompts.source": dataset,
        "n": n,
        "precision": precision,
        "max_new_tokens": max_new_tokens,
        "num_processes": num_processes,
        "load.request_rate": _number_or_text(request_rate),
        "load.max_concurrency": max_concurrency,
        "energy.source": energy,
        "baseline.enabled": False if no_baseline else None,
        "output_dir": str(output) if output is not None else None,
    } | parse_sets(sets)
    config = load_experiment_config(
        config_file, overrides, backend_overrides={"batch_size": batch_size}
    )
    if dry_run:
        from llem_harness.run import check_experiment

        check_experiment(config, store=resolve_db(db, Path(config.output_dir)))
        _plan(config)
        return

    from llem.render.format import console
    from llem.render.progress import RichProgress, make_progress
    from llem.render.summary import summary
    from llem_harness import RunInterruptedError, run_experiment
    from llem_harness.multinode import slurm_task

    task = slurm_task() if launcher == "auto" else None
    if task is not None and task.rank > 0:  # one of srun's tasks: task 0 reports
        run_experiment(
            config,
            store=resolve_db(db, Path(config.output_dir)),
            verbose=verbose or logging.getLogger("llem").isEnabledFor(logging.DEBUG),
        )
        return
    progress = make_progress()
    try:
        if launcher == "slurm":
            from llem_harness.slurm_run import SrunLaunch, run_with_srun

            measured = run_with_srun(
                config,
                SrunLaunch(
                    nodes=nodes or 1,
                    gpus_per_node=gpus_per_node,
                    partition=partition,
                    account=account,
                    time_limit=time_limit,
                ),
                progress=progress,
                store=resolve_db(db, Path(config.output_dir)),
                verbose=verbose or logging.getLogger("llem").isEnabledFor(logging.DEBUG),
            )
        else:
            measured = run_experiment(
                config,
                progress=progress,
                store=resolve_db(db, Path(config.output_dir)),
                verbose=verbose or logging.getLogger("llem").isEnabledFor(logging.DEBUG),
                launcher="local" if launcher == "local" else "auto",
            )
    except RunInterruptedError as interrupted:
        if isinstance(progress, RichProgress):
            progress.close()
        if interrupted.saved is not None:  # what finished, marked incomplete
            from llem_schema import ExperimentResult

            partial = ExperimentResult.from_json(interrupted.saved)
            console().print(summary(partial, interrupted.saved))
        raise
    finally:
        if isinstance(progress, RichProgress):
            progress.close()
    if export_csv:
        from llem_persistence import export_csv as write_csv

        write_csv([measured.result], measured.directory / "result.csv")
    console().print(summary(measured.result, measured.directory))
    typer.echo(f"id: {measured.result.experiment_id}")  # the last line: what other commands take
    if measured.not_indexed is not None:
        from llem.errors import reindex_advice

        typer.echo(f"not indexed: {reindex_advice(measured.not_indexed)}", err=True)
    failed = measured.result.request_metrics
    if failed is not None and failed.failed_requests:
        typer.echo(
            f"error: {failed.failed_requests} of {failed.requests} requests failed (the result "
            "is saved; its warnings say why)",
            err=True,
        )
        raise typer.Exit(1)


def _number_or_text(value: str | None) -> float | str | None:
    """``--request-rate 8`` as a number; ``inf`` and anything else left for the config's
    own check to judge."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def _plan(config: "ExperimentConfig") -> None:
    settings = ", ".join(f"{k}={v}" for k, v in config.backend_section().items()) or "defaults"
    typer.echo(
        f"would run {config.model} on backend {config.backend} ({settings}), "
        f"{config.precision}, on {config.n} {config.prompts.source} prompts: "
        f"{config.num_processes} process(es), {config.max_new_tokens} new tokens per request"
    )
    load = config.load
    if load.rate_per_s is not None or load.max_concurrency is not None:
        typer.echo(
            f"load: {load.request_rate} requests/s, burstiness {load.burstiness:g}, "
            f"at most {load.max_concurrency or 'unlimited'} in flight"
        )
    typer.echo(
        f"energy: {config.energy.source} at {config.energy.sample_rate_hz:g} Hz; baseline: "
        + (f"{config.baseline.duration_s:g} s" if config.baseline.enabled else "off")
        + f"; results into {config.output_dir}/"
    )
    typer.echo(f"measurement_config_hash: {config.measurement_config_hash()}")
