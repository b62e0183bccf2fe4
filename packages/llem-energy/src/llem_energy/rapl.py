"""CPU package and DRAM energy from Linux powercap RAPL counters (``/sys/class/powercap``).

Each zone's ``energy_uj`` counts microjoules and wraps to zero after ``max_energy_range_uj``;
:class:`RaplCounter` accumulates deltas across wraps as long as it is polled at least once
per wrap period (minutes at full load). The sysfs root is a parameter so tests point it at a
temporary tree.
"""

import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from llem_energy.errors import RaplPermissionError, RaplUnavailableError
from llem_schema.measurement import EnergyDomain

__all__ = ["DEFAULT_POWERCAP_ROOT", "RaplCounter", "RaplReader", "RaplZone", "rapl_delta_uj"]

logger = logging.getLogger(__name__)

DEFAULT_POWERCAP_ROOT: Final = Path("/sys/class/powercap")

_NOT_EXPOSED: Final = (
    "RAPL is not exposed here (a VM, a container without /sys/class/powercap, or a CPU "
    "without RAPL); set energy.source to 'nvml' or 'none'"
)


def rapl_delta_uj(start_uj: int, end_uj: int, max_energy_range_uj: int) -> int:
    """Energy between two readings of one counter, µJ, allowing for one wrap-around."""
    if end_uj >= start_uj:
        return end_uj - start_uj
    return max_energy_range_uj - start_uj + end_uj


@dataclass(frozen=True, slots=True)
class RaplZone:
    """One readable RAPL zone: a CPU package or its DRAM."""

    path: Path
    domain: EnergyDomain
    device_id: str
    """'rapl:<host>:package-<n>' or 'rapl:<host>:dram-<n>' (the DeviceEnergy id)."""
    max_energy_range_uj: int

    def read_uj(self) -> int:
        """The zone's counter now, µJ; raises :class:`RaplUnavailableError` when unreadable."""
        return _read_int(self.path / "energy_uj")


def _read_int(path: Path) -> int:
    try:
        text = path.read_text(encoding="ascii")
    except PermissionError:
        raise RaplPermissionError(
            f"permission denied reading {path}: since Linux 5.10 (CVE-2020-8694) only root may "
            "read RAPL counters; run as root, or `sudo chmod a+r "
            "/sys/class/powercap/intel-rapl:*/energy_uj`, or set energy.source to 'nvml' or 'none'"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RaplUnavailableError(f"cannot read {path}: {exc}; {_NOT_EXPOSED}") from None
    try:
        return int(text.strip())
    except ValueError:
        raise RaplUnavailableError(
            f"{path} holds {text.strip()[:40]!r}, not a counter; {_NOT_EXPOSED}"
        ) from None


def _package_number(zone_dir: Path) -> str:
    # intel-rapl:0 -> "0"; intel-rapl:0:1 -> "0" (the parent package)
    return zone_dir.name.split(":")[1] if ":" in zone_dir.name else "0"


class RaplReader:
    """The package and DRAM zones under a powercap root, checked readable when opened."""

    def __init__(self, zones: list[RaplZone]) -> None:
        self.zones = zones

    @classmethod
    def open(
        cls, root: Path = DEFAULT_POWERCAP_ROOT, *, hostname: str | None = None
    ) -> "RaplReader":
        """Find and read every package and DRAM zone once.

        Raises :class:`RaplUnavailableError` with the reason when there is none, or when one
        cannot be read (permissions, a VM's empty tree).
        """
        host = hostname or socket.gethostname()
        if not root.is_dir():
            raise RaplUnavailableError(f"no {root}: {_NOT_EXPOSED}")
        zones: list[RaplZone] = []
        for zone_dir in sorted(root.glob("*-rapl:*")):
            name_file = zone_dir / "name"
            try:
                name = name_file.read_text(encoding="ascii").strip()
            except OSError as exc:
                logger.debug("skipping %s: %s", zone_dir, exc)
                continue
            number = _package_number(zone_dir)
            if name.startswith("package-"):
                domain: EnergyDomain = "cpu_package"
                device_id = f"rapl:{host}:{name}"
            elif name == "dram":
                domain = "dram"
                device_id = f"rapl:{host}:dram-{number}"
            else:
                continue  # core, uncore and psys overlap the package or the platform
            zone = RaplZone(
                path=zone_dir,
                domain=domain,
                device_id=device_id,
                max_energy_range_uj=_read_int(zone_dir / "max_energy_range_uj"),
            )
            zone.read_uj()
            zones.append(zone)
        if not zones:
            raise RaplUnavailableError(f"no package or DRAM zone under {root}: {_NOT_EXPOSED}")
        return cls(zones)

    def read_uj(self) -> dict[str, int]:
        """Every zone's counter now, µJ, by device id."""
        return {zone.device_id: zone.read_uj() for zone in self.zones}


class RaplCounter:
    """Energy accumulated per zone since :meth:`start`, across counter wrap-arounds."""

    def __init__(self, reader: RaplReader) -> None:
        self._reader = reader
        self._last_uj: dict[str, int] = {}
        self._total_uj: dict[str, int] = {}

    def start(self) -> None:
        """Take the first reading; totals restart at zero."""
        self._last_uj = self._reader.read_uj()
        self._total_uj = dict.fromkeys(self._last_uj, 0)

    def poll(self) -> None:
        """Read every zone and add what each consumed since the last reading."""
        for zone in self._reader.zones:
            now_uj = zone.read_uj()
            last = self._last_uj[zone.device_id]
            self._total_uj[zone.device_id] += rapl_delta_uj(last, now_uj, zone.max_energy_range_uj)
            self._last_uj[zone.device_id] = now_uj

    def energy_j(self) -> dict[str, float]:
        """Energy per zone since :meth:`start`, J, up to the last :meth:`poll`."""
        return {device_id: uj / 1e6 for device_id, uj in self._total_uj.items()}

    @property
    def zones(self) -> list[RaplZone]:
        """The zones counted."""
        return self._reader.zones
