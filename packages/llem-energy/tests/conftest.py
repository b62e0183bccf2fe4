"""Shared fixtures: a manual clock, fake NVML with GPUs on it, and a fake RAPL tree."""

from pathlib import Path

import pytest

from llem_energy.testing import FakeNvml, ManualClock, write_rapl_zone


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake_nvml(clock: ManualClock) -> FakeNvml:
    """Two H100-like GPUs sharing the manual clock."""
    return FakeNvml.with_gpus(2, clock=clock)


@pytest.fixture
def rapl_root(tmp_path: Path) -> Path:
    """One package with its DRAM zone, plus a core zone llem must ignore."""
    root = tmp_path / "powercap"
    write_rapl_zone(root, "intel-rapl:0", name="package-0", energy_uj=1_000_000)
    write_rapl_zone(root, "intel-rapl:0:0", name="core", energy_uj=500_000)
    write_rapl_zone(root, "intel-rapl:0:1", name="dram", energy_uj=2_000_000)
    return root


@pytest.fixture
def no_rapl(tmp_path: Path) -> Path:
    return tmp_path / "no-powercap"
