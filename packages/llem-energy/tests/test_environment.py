from pathlib import Path

from llem_energy import collect_environment, cpu_model, in_container, package_versions
from llem_energy.testing import FakeNvml


def test_cpu_model_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9654 96-Core Processor\n")
    assert cpu_model(info) == "AMD EPYC 9654 96-Core Processor"


def test_container_detection(tmp_path: Path) -> None:
    assert not in_container(tmp_path, {})
    assert in_container(tmp_path, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    (tmp_path / "proc" / "1").mkdir(parents=True)
    (tmp_path / "proc" / "1" / "cgroup").write_text("0::/\n")
    assert not in_container(tmp_path, {})
    (tmp_path / "proc" / "1" / "cgroup").write_text("12:cpu:/kubepods/besteffort/pod1\n")
    assert in_container(tmp_path, {})
    (tmp_path / "proc" / "1" / "cgroup").write_text("0::/\n")
    (tmp_path / ".dockerenv").touch()
    assert in_container(tmp_path, {})


def test_package_versions_by_metadata_skip_missing() -> None:
    versions = package_versions(["pydantic", "nvidia-ml-py", "no-such-package-llem"])
    assert set(versions) == {"pydantic", "nvidia-ml-py"}
    assert versions["pydantic"][0].isdigit()


def test_snapshot_with_fake_gpus(tmp_path: Path) -> None:
    fake = FakeNvml.with_gpus(2)
    snapshot = collect_environment(nvml=fake, root=tmp_path, environ={}, packages=["pydantic"])
    assert snapshot.driver_version == "550.54.15"
    assert snapshot.cuda_version == "12.4"
    assert [g.uuid for g in snapshot.gpus] == [g.uuid for g in fake.gpus]
    assert snapshot.gpus[0].memory_total_mb == 81559.0
    assert snapshot.gpus[0].persistence_mode is True
    assert set(snapshot.package_versions) == {"pydantic"}
    assert not snapshot.in_container
    assert fake.init_count == 0  # NVML opened here is shut down here


def test_snapshot_without_nvml_is_not_an_error(tmp_path: Path) -> None:
    snapshot = collect_environment(nvml=FakeNvml(library_missing=True), root=tmp_path, environ={})
    assert snapshot.gpus == []
    assert snapshot.driver_version is None
    assert snapshot.python_version.count(".") == 2
