"""``llem env``: what this machine can measure, before anything runs."""

import json
from typing import Annotated, Any

import typer


def env(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False) -> None:
    """GPUs, NVML, RAPL, the energy source `auto` would use, and what would be warned about."""
    from llem_energy import EnergyMeter, MeasurementFacts, machine_warnings
    from llem_schema import EnergyConfig

    with EnergyMeter.create(EnergyConfig(source="auto")) as meter:
        snapshot = meter.environment()
        rapl = [zone.device_id for zone in meter.rapl.zones] if meter.rapl is not None else []
        warnings = machine_warnings(
            MeasurementFacts(
                duration_s=0.0,
                energy_unavailable_reason=meter.unavailable_reason,
                energy_unavailable_details=meter.unavailable_details,
                persistence_mode=meter.persistence,
                ecc_enabled=meter.ecc,
                mig_enabled=meter.mig,
                simulated=meter.simulated,
                extra=meter.setup_warnings,
            )
        )
        report: dict[str, Any] = {
            "energy_sources": list(meter.sources),
            "rapl_domains": rapl,
            "warnings": [w.model_dump(mode="json") for w in warnings],
            "environment": snapshot.model_dump(mode="json"),
        }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    _print(report)


def _print(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    environment = report["environment"]
    console.print(
        f"host {environment['hostname']}: {environment['os']}, Python "
        f"{environment['python_version']}, CPU {environment['cpu_model'] or '?'} "
        f"({environment['cpu_count']} logical)"
        + (", in a container" if environment["in_container"] else ""),
        highlight=False,
    )
    if environment["gpus"]:
        table = Table(
            "index", "GPU", "uuid", "memory MiB", "power limit W", "persistence", "ECC", "MIG"
        )
        for gpu in environment["gpus"]:
            table.add_row(
                *(
                    "-" if gpu[key] is None else str(gpu[key])
                    for key in (
                        "index",
                        "name",
                        "uuid",
                        "memory_total_mb",
                        "power_limit_w",
                        "persistence_mode",
                        "ecc_enabled",
                        "mig_enabled",
                    )
                )
            )
        console.print(table)
        console.print(
            f"driver {environment['driver_version']}, CUDA {environment['cuda_version']}",
            highlight=False,
        )
    else:
        console.print("no GPU visible to NVML")
    console.print(f"RAPL domains: {', '.join(report['rapl_domains']) or 'none readable'}")
    sources = " + ".join(report["energy_sources"]) or "none"
    console.print(f"energy.source auto would use: {sources}", highlight=False)
    for warning in report["warnings"]:
        console.print(
            f"[yellow]warning ({warning['code']}):[/yellow] {warning['message']}", highlight=False
        )
