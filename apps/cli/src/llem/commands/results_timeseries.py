"""``llem results timeseries``: what an experiment's power timeseries holds, and the file."""

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from llem.commands._store import DbOption, open_store, refuse_to_replace, result_file
from llem.errors import UsageError
from llem.render.format import MISSING, Column, Listing, console, dumps, number

__all__ = ["timeseries"]


def timeseries(
    experiment_id: Annotated[
        str,
        typer.Argument(
            help="An experiment id, a unique beginning of one, or its result directory."
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Also write the samples: .parquet or .csv."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace --output if it exists.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The summary as JSON.")] = False,
    db: DbOption = None,
) -> None:
    """Per GPU: samples, the rate achieved, the longest gap, power, temperature and the energy
    integrated over the window; with -o, the samples as a file."""
    from llem_persistence import PersistenceError
    from llem_persistence.timeseries import (
        export_timeseries,
        read_timeseries,
        summarize_timeseries,
    )
    from llem_schema import ExperimentResult

    refuse_to_replace(output, overwrite=overwrite)
    with open_store(db) as store:
        summary = store.get(experiment_id)
    file = result_file(summary)
    result = ExperimentResult.from_json(file)
    try:
        table = read_timeseries(file)
    except PersistenceError as exc:
        raise UsageError(str(exc)) from None
    devices = summarize_timeseries(table, window_s=result.duration_s)
    if output is not None:
        try:
            export_timeseries(table, output)
        except PersistenceError as exc:
            raise UsageError(str(exc)) from None
        typer.echo(f"{table.num_rows} samples written to {output}", err=True)
    if as_json:
        typer.echo(dumps([dataclasses.asdict(device) for device in devices]))
        return
    columns = [
        Column("GPU", [str(d.gpu_index) for d in devices], right=True),
        Column("samples", [number(d.samples) for d in devices], right=True),
        Column("span s", [f"{d.first_s:.1f}..{d.last_s:.1f}" for d in devices], right=True),
        Column("rate Hz", [number(d.rate_hz) for d in devices], right=True),
        Column("longest gap s", [number(d.longest_gap_s) for d in devices], right=True),
        Column("mean W", [number(d.mean_power_w) for d in devices], right=True),
        Column("max W", [number(d.max_power_w) for d in devices], right=True),
        Column("max °C", [number(d.max_temperature_c) for d in devices], right=True),
        Column("window J", [number(d.window_energy_j) for d in devices], right=True),
    ]
    out = console()
    out.print(
        f"{summary.experiment_id}: {table.num_rows} samples of {len(devices)} GPU(s); window "
        f"{result.duration_s:.1f} s",
        markup=False,
    )
    out.print(Listing(columns) if devices else MISSING)
