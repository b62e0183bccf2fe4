"""RAPL from a fake powercap tree: zones, wrap-around, and every way it can be unreadable."""

from pathlib import Path

import pytest

from llem_energy import RaplCounter, RaplReader, RaplUnavailableError, rapl_delta_uj
from llem_energy.testing import write_rapl_zone


def test_package_and_dram_zones_are_found_and_core_ignored(rapl_root: Path) -> None:
    reader = RaplReader.open(rapl_root, hostname="node1")
    assert [(z.device_id, z.domain) for z in reader.zones] == [
        ("rapl:node1:package-0", "cpu_package"),
        ("rapl:node1:dram-0", "dram"),
    ]
    assert reader.read_uj() == {"rapl:node1:package-0": 1_000_000, "rapl:node1:dram-0": 2_000_000}


def test_delta_allows_for_one_wrap() -> None:
    assert rapl_delta_uj(100, 350, 1000) == 250
    assert rapl_delta_uj(900, 50, 1000) == 150


def test_counter_accumulates_across_several_wraps(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    write_rapl_zone(root, "intel-rapl:0", name="package-0", energy_uj=800, max_energy_range_uj=1000)
    counter = RaplCounter(RaplReader.open(root, hostname="h"))
    counter.start()
    for value in (100, 600, 200, 900):  # wraps twice: 800->100 and 600->200
        write_rapl_zone(
            root, "intel-rapl:0", name="package-0", energy_uj=value, max_energy_range_uj=1000
        )
        counter.poll()
    assert counter.energy_j() == {"rapl:h:package-0": pytest.approx((300 + 500 + 600 + 700) / 1e6)}


def test_missing_tree_says_rapl_is_not_exposed(tmp_path: Path) -> None:
    with pytest.raises(RaplUnavailableError, match=r"no .*: RAPL is not exposed here \(a VM"):
        RaplReader.open(tmp_path / "absent")


def test_tree_without_package_zones_is_unavailable(tmp_path: Path) -> None:
    write_rapl_zone(tmp_path, "intel-rapl:0:0", name="core", energy_uj=1)
    with pytest.raises(RaplUnavailableError, match="no package or DRAM zone"):
        RaplReader.open(tmp_path)


def test_permission_denied_is_a_clear_reason(
    rapl_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests may run as root, where chmod cannot deny a read; emulate the kernel's refusal
    # (energy_uj is root-only since Linux 5.10) at the file read instead.
    real_read_text = Path.read_text

    def read_text(self: Path, *args: object, **kwargs: object) -> str:
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", read_text)
    with pytest.raises(
        RaplUnavailableError, match=r"permission denied reading .*energy_uj: .*run as root"
    ):
        RaplReader.open(rapl_root)


def test_garbage_in_a_counter_file_is_a_reason_not_a_crash(rapl_root: Path) -> None:
    (rapl_root / "intel-rapl:0" / "energy_uj").write_text("n/a\n")
    with pytest.raises(RaplUnavailableError, match="holds 'n/a', not a counter"):
        RaplReader.open(rapl_root)
