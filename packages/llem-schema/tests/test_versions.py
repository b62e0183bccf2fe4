"""Schema versions: every version that shipped keeps a fixture that must load forever."""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from llem_schema import (
    SCHEMA_VERSION,
    ExperimentConfig,
    ExperimentResult,
    RawProcessResult,
    ResultFormatError,
    measurement_config_hash,
    parse_config,
)
from llem_schema.io import load_document, read_json_object
from llem_schema.testing import EXAMPLE_BACKENDS
from llem_schema.versions import (
    RAW_MIGRATIONS,
    RESULT_MIGRATIONS,
    MigrationRegistry,
    _Step,
    parse_version,
)

FIXTURES = Path(__file__).parent / "fixtures"
SHIPPED_VERSIONS = ["1.0", "1.1", "1.2", "1.3", "1.4", "1.5"]
TINY_RUN = FIXTURES / "v1.0" / "tiny-run"
"""A real `llem run -n 4 --max-new-tokens 4 --batch-size 2` of the tiny model by llem 0.1.0
(schema 1.0, CPU, no energy source), kept as it was written."""


def test_every_shipped_version_has_a_fixture_and_the_current_one_is_among_them() -> None:
    assert sorted(p.name for p in FIXTURES.iterdir()) == [f"v{v}" for v in SHIPPED_VERSIONS]
    for version in SHIPPED_VERSIONS:
        assert {"manifest.json", "raw_process_0.json", "result.json", "study.json"} <= {
            p.name for p in (FIXTURES / f"v{version}").iterdir()
        }
    assert SCHEMA_VERSION in SHIPPED_VERSIONS


@pytest.mark.parametrize("version", SHIPPED_VERSIONS)
def test_shipped_fixture_loads_with_the_current_reader(version: str) -> None:
    directory = FIXTURES / f"v{version}"
    stored = json.loads((directory / "result.json").read_text())
    assert stored["schema_version"] == version
    result = ExperimentResult.from_json(directory)
    assert result.schema_version == SCHEMA_VERSION
    assert result.experiment_id == stored["experiment_id"]
    assert result.total_energy_j == stored["total_energy_j"] == 250.0
    assert result.output_tokens == stored["output_tokens"]
    assert len(result.process_results) == 2
    assert [w.message for w in result.measurement_warnings] == [
        w if isinstance(w, str) else w["message"] for w in stored["measurement_warnings"]
    ]
    assert result.energy_scope == "gpu"  # the fixtures meter GPUs only
    assert result.gpu_energy_j == 250.0
    assert result.cpu_energy_j is None


def test_the_current_version_needs_no_migration() -> None:
    document = {"schema_version": SCHEMA_VERSION, "x": 1}
    assert RESULT_MIGRATIONS.migrate(document) == document


def test_migrations_chain_in_order_and_stamp_each_version() -> None:
    registry = MigrationRegistry("example")
    seen: list[str] = []

    @registry.register("0.8", "0.9")
    def rename(doc: dict[str, Any]) -> dict[str, Any]:
        seen.append(doc["schema_version"])
        doc["energy_j"] = doc.pop("energy_joules")
        return doc

    @registry.register("0.9", "1.0")
    def add_default(doc: dict[str, Any]) -> dict[str, Any]:
        seen.append(doc["schema_version"])
        return doc | {"measurement_warnings": []}

    original = {"schema_version": "0.8", "energy_joules": 5.0}
    migrated = registry.migrate(original, target="1.0")
    assert migrated == {"schema_version": "1.0", "energy_j": 5.0, "measurement_warnings": []}
    assert seen == ["0.8", "0.9"]
    assert original == {"schema_version": "0.8", "energy_joules": 5.0}  # input untouched


def test_a_gap_in_the_chain_is_a_clear_error() -> None:
    registry = MigrationRegistry("example")
    with pytest.raises(
        ResultFormatError, match=re.escape("no migration of example schema version 0.5 to 1.0")
    ):
        registry.migrate({"schema_version": "0.5"}, target="1.0")


def test_migrations_only_go_forward_and_once_per_version() -> None:
    registry = MigrationRegistry("example")
    with pytest.raises(ValueError, match="migration must go forward"):
        registry.register("1.1", "1.0")
    registry.register("1.0", "1.1")(lambda doc: doc)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("1.0", "1.2")


@pytest.mark.parametrize(("text", "parsed"), [("1.0", (1, 0)), ("2.15", (2, 15))])
def test_parse_version(text: str, parsed: tuple[int, int]) -> None:
    assert parse_version(text) == parsed


@pytest.mark.parametrize("text", ["1", "1.0.0", "01.0", "a.b", 1.0, None])
def test_parse_version_refuses_other_forms(text: object) -> None:
    with pytest.raises(ResultFormatError, match=re.escape("is not of the form 'major.minor'")):
        parse_version(text)


@pytest.mark.parametrize("version", SHIPPED_VERSIONS)
def test_shipped_raw_fixture_loads_with_the_current_reader(version: str) -> None:
    path = FIXTURES / f"v{version}" / "raw_process_0.json"
    raw = load_document(
        RawProcessResult,
        read_json_object(path, kind="raw process result"),
        migrations=RAW_MIGRATIONS,
        source=path,
    )
    assert raw.schema_version == SCHEMA_VERSION
    assert raw.process_index == 0
    assert raw.requests


def test_embedded_process_results_are_migrated_with_the_raw_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rename_back(doc: dict[str, Any]) -> dict[str, Any]:
        doc["hostname"] = doc.pop("host")
        return doc

    monkeypatch.setitem(RAW_MIGRATIONS._steps, "0.9", _Step("1.0", rename_back))
    document = json.loads((FIXTURES / "v1.0" / "result.json").read_text())
    old = document["process_results"][0]
    old["schema_version"] = "0.9"
    old["host"] = old.pop("hostname")
    (tmp_path / "result.json").write_text(json.dumps(document))
    result = ExperimentResult.from_json(tmp_path)
    assert result.process_results[0].schema_version == SCHEMA_VERSION
    assert result.process_results[0].hostname == "example-host"


def test_an_embedded_raw_result_of_an_unknown_old_version_names_the_file(tmp_path: Path) -> None:
    document = json.loads((FIXTURES / "v1.0" / "result.json").read_text())
    document["process_results"][0]["schema_version"] = "0.5"
    path = tmp_path / "result.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ResultFormatError) as caught:
        ExperimentResult.from_json(path)
    assert str(caught.value) == (
        f"{path}: no migration of raw process result schema version 0.5 to {SCHEMA_VERSION}"
    )


def test_a_real_run_of_the_first_version_loads_and_keeps_its_config_hash() -> None:
    stored = json.loads((TINY_RUN / "result.json").read_text())
    assert stored["schema_version"] == "1.0"
    result = ExperimentResult.from_json(TINY_RUN)
    assert result.schema_version == SCHEMA_VERSION
    assert result.process_results[0].model_info is None  # 1.0 did not record it
    assert [r.batch_index for r in result.process_results[0].requests] == [0, 0, 1, 1]
    # The PyTorch settings moved out of llem_schema into the backend's own model in 1.1;
    # the config of this run, resolved with a model of the same settings, hashes as it did.
    config = parse_config(result.effective_config, backends=EXAMPLE_BACKENDS)
    assert config.backend_section() == {
        "batch_size": 2,
        "attn_implementation": None,
        "torch_compile": False,
    }
    assert config.measurement_config_hash() == stored["measurement_config_hash"]
    assert (
        measurement_config_hash(ExperimentConfig.model_validate(result.effective_config))
        == (stored["measurement_config_hash"])
    )  # as stored, the section is complete already


def test_the_current_fixture_records_where_the_model_was_placed() -> None:
    result = ExperimentResult.from_json(FIXTURES / f"v{SCHEMA_VERSION}")
    infos = [raw.model_info for raw in result.process_results]
    assert all(info is not None and info.device_uuids for info in infos)


def _v1_2_with_rapl() -> dict[str, Any]:
    """The 1.2 fixture as a run that also read host RAPL (package + DRAM) would have been
    written then: every figure of the total, GPU and CPU energy added."""
    document: dict[str, Any] = json.loads((FIXTURES / "v1.2" / "result.json").read_text())
    rapl = {"rapl:example-host:package-0": 40.0, "rapl:example-host:dram-0": 10.0}
    process = document["process_results"][0]
    for uuid, joules in rapl.items():
        domain = "cpu_package" if "package" in uuid else "dram"
        process["energy"].append(
            {
                "device_uuid": uuid,
                "domain": domain,
                "energy_j": joules,
                "method": "counter",
                "counter_energy_j": joules,
            }
        )
    document["energy_per_device_j"] |= rapl
    total = document["total_energy_j"] = 300.0
    tokens = document["output_tokens"]
    document["energy_breakdown"] |= {
        "raw_j": total,
        "baseline_energy_j": None,
        "adjusted_j": None,
        "baseline_power_w": None,
        "baseline_method": "unavailable",
        "baseline_age_s": None,
    }
    document["baseline_power_w"] = document["energy_adjusted_j"] = None
    document["efficiency"] = {
        "output_tokens_per_j": tokens / total,
        "energy_per_output_token_j": total / tokens,
        "output_tokens_per_j_adjusted": None,
        "energy_per_output_token_adjusted_j": None,
    }
    return document


def test_a_1_2_result_with_gpu_and_cpu_energy_keeps_its_figures_labelled_total(
    tmp_path: Path,
) -> None:
    (tmp_path / "result.json").write_text(json.dumps(_v1_2_with_rapl()))
    result = ExperimentResult.from_json(tmp_path)
    assert result.energy_scope == "total"
    assert (result.gpu_energy_j, result.cpu_energy_j, result.total_energy_j) == (250.0, 50.0, 300.0)
    assert result.energy_domains == ["gpu", "cpu_package", "dram"]
    assert result.efficiency.output_tokens_per_j == result.output_tokens / 300.0


def test_warnings_of_1_2_get_the_code_their_wording_names() -> None:
    from llem_schema.versions import _result_1_3

    document = json.loads((FIXTURES / "v1.2" / "result.json").read_text())
    document["measurement_warnings"] = [
        "persistence mode is off on GPU GPU-0: the driver may unload between runs",
        "GPU clocks were throttled (hardware thermal) for 3.0 s of the window: ...",
        "incomplete: the run was stopped before every request of processes 1 finished",
        "something no llem ever said",
    ]
    document["aggregation"]["warnings"] = ["processes did not run together for at least half"]
    migrated = _result_1_3(document)
    assert [w["code"] for w in migrated["measurement_warnings"]] == [
        "persistence_off",
        "throttled",
        "interrupted",
        "unclassified",
    ]
    assert migrated["measurement_warnings"][3]["message"] == "something no llem ever said"
    assert migrated["aggregation"]["warnings"][0]["code"] == "window_overlap"


def test_a_1_2_result_that_clamped_loads_with_its_adjusted_efficiency_withheld(
    tmp_path: Path,
) -> None:
    document = json.loads((FIXTURES / "v1.2" / "result.json").read_text())
    baseline_j = 300.0  # more than the 250 J measured: 1.2 clamped to 0 J and said 0 J/token
    document["energy_breakdown"] |= {"baseline_energy_j": baseline_j, "adjusted_j": 0.0}
    document["energy_adjusted_j"] = 0.0
    document["efficiency"] |= {
        "output_tokens_per_j_adjusted": None,
        "energy_per_output_token_adjusted_j": 0.0,
    }
    (tmp_path / "result.json").write_text(json.dumps(document))
    result = ExperimentResult.from_json(tmp_path)
    assert result.energy_adjusted_j == 0.0
    assert result.efficiency.energy_per_output_token_adjusted_j is None
    assert "baseline_clamped" in [w.code for w in result.measurement_warnings]
    assert "baseline_clamped" in [w.code for w in result.aggregation.warnings]


def test_a_rapl_device_no_process_names_is_still_cpu_energy(tmp_path: Path) -> None:
    document = _v1_2_with_rapl()
    for process in document["process_results"]:
        process["energy"] = [e for e in process["energy"] if e["domain"] == "gpu"]
    (tmp_path / "result.json").write_text(json.dumps(document))
    result = ExperimentResult.from_json(tmp_path)
    assert (result.gpu_energy_j, result.cpu_energy_j) == (250.0, 50.0)
    assert result.energy_scope == "total"
