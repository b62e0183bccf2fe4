import json

import pytest
from typer.testing import CliRunner

from llem.cli import app
from llem_energy import nvml as nvml_module
from llem_energy.testing import FakeGpu, FakeNvml


def test_env_on_a_machine_without_gpus_says_no_energy_and_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(nvml_module, "load_nvml", lambda: FakeNvml(library_missing=True))
    result = CliRunner().invoke(app, ["env", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["environment"]["gpus"] == []
    if not report["rapl_domains"]:  # this test machine may or may not expose RAPL
        assert report["energy_sources"] == []
        assert report["warnings"][0]["code"] == "no_energy"
        assert report["warnings"][0]["message"].startswith("no energy measured: ")


def test_env_lists_gpus_the_source_auto_picks_and_what_would_be_warned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gpus = [FakeGpu(uuid="GPU-env-0"), FakeGpu(uuid="GPU-env-1", persistence_mode=False)]
    monkeypatch.setattr(nvml_module, "load_nvml", lambda: FakeNvml(gpus))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    result = CliRunner().invoke(app, ["env", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [g["uuid"] for g in report["environment"]["gpus"]] == ["GPU-env-0", "GPU-env-1"]
    assert report["energy_sources"][0] == "nvml"
    (off,) = [w for w in report["warnings"] if w["code"] == "persistence_off"]
    assert off["message"].startswith("persistence mode is off on GPU GPU-env-1")
    assert off["figures"] == {"device": "GPU-env-1"}
    table = CliRunner().invoke(app, ["env"], env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert "GPU-env-1" in table.output
    assert "energy.source auto would use: nvml" in table.output
