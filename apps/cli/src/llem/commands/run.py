"""``llem run``: measure one experiment and save its result directory."""

from pathlib import Path
from typing import Annotated, Literal

import typer

from llem.commands._store import db_option, resolve_db
from llem.commands.config import SetOption, parse_sets


def run(
    config_file: Annotated[
        Path | None, typer.Argument(help="Experiment YAML; without it, the defaults.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model directory or cached hub id; 'llem/tiny' is built in.")
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(help="Prompts: 'builtin', 'synthetic', or a .jsonl/.csv file."),
    ] = None,
    n: Annotated[int | None, typer.Option("-n", "--n", help="Number of prompts.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Prompts per batch.")] = None,
    precision: Annotated[Literal["fp32", "fp16", "bf16"] | None, typer.Option()] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Output tokens per request.")] = None,
    num_processes: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    energy: Annotated[
        Literal["auto", "nvml", "rapl", "none"] | None, typer.Option(help="Energy source.")
    ] = None,
    no_baseline: Annotated[bool, typer.Option("--no-baseline", help="Skip idle power.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Results directory.")
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
) -> None:
    """Measure energy, throughput and latency of one experiment."""
    from llem.config import load_experiment_config

    if verbose:
        from llem.logs import configure_logging

        configure_logging(verbose=True)
    overrides: dict[str, object] = {
        "model": model,
        "prompts.source": dataset,
        "n": n,
        "pytorch.batch_size": batch_size,
        "precision": precision,
        "max_new_tokens": max_new_tokens,
        "num_processes": num_processes,
        "energy.source": energy,
        "baseline.enabled": False if no_baseline else None,
        "output_dir": str(output) if output is not None else None,
    } | parse_sets(sets)
    config = load_experiment_config(config_file, overrides)
    if dry_run:
        _plan(config)
        return

    from rich.console import Console

    from llem.harness import run_experiment
    from llem.harness.progress import make_reporter
    from llem.harness.summary import summary
    from llem_schema import ExperimentResult

    store_path = resolve_db(db, Path(config.output_dir))
    directory = run_experiment(config, reporter=make_reporter(), store_path=store_path)
    result = ExperimentResult.from_json(directory)
    if export_csv:
        from llem_persistence import export_csv as write_csv

        write_csv([result], directory / "result.csv")
    Console().print(summary(result, directory))


def _plan(config: object) -> None:
    from llem_schema import ExperimentConfig

    assert isinstance(config, ExperimentConfig)
    batches = -(-config.n // (config.num_processes * config.pytorch.batch_size))
    typer.echo(
        f"would run {config.model} ({config.backend}, {config.precision}) on {config.n} "
        f"{config.prompts.source} prompts: {config.num_processes} process(es), "
        f"{batches} batch(es) of up to {config.pytorch.batch_size} each, "
        f"{config.max_new_tokens} new tokens per request"
    )
    typer.echo(
        f"energy: {config.energy.source} at {config.energy.sample_rate_hz:g} Hz; baseline: "
        + (f"{config.baseline.duration_s:g} s" if config.baseline.enabled else "off")
        + f"; results into {config.output_dir}/"
    )
    typer.echo(f"measurement_config_hash: {config.measurement_config_hash()}")
