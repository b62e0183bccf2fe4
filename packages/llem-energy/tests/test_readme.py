"""The README's example of measuring one's own code runs as written: on this machine as it
is (no GPU here: no energy, a warning saying why), and with two GPUs faked at NVML."""

import contextlib
import io
import re
from pathlib import Path

import pytest

from llem_energy import RaplReader, RaplUnavailableError
from llem_energy import nvml as nvml_module
from llem_energy.testing import FakeNvml

README = Path(__file__).resolve().parents[1] / "README.md"


def example() -> str:
    blocks: list[str] = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    return blocks[0]


def run_example() -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(example(), str(README), "exec"), {})
    return printed.getvalue()


def no_rapl(cls: type[RaplReader], root: Path) -> RaplReader:
    raise RaplUnavailableError(f"no {root}: RAPL is not exposed here")


def test_the_example_measures_two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml.with_gpus(2)
    monkeypatch.setattr(nvml_module, "load_nvml", lambda: fake)
    monkeypatch.setattr(RaplReader, "open", classmethod(no_rapl))
    lines = run_example().splitlines()
    assert re.fullmatch(r"\d+\.\d\d s, \d+\.\d+ J in all", lines[0]), lines
    assert [line.split(":")[0] for line in lines[1:3]] == [gpu.uuid for gpu in fake.gpus]
    assert all(line.endswith("J (counter)") for line in lines[1:3])


def test_the_example_runs_where_there_is_no_energy_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(nvml_module, "load_nvml", lambda: FakeNvml(library_missing=True))
    monkeypatch.setattr(RaplReader, "open", classmethod(no_rapl))
    lines = run_example().splitlines()
    assert re.fullmatch(r"\d+\.\d\d s, None J in all", lines[0]), lines
    assert lines[1].startswith(
        "warning [no_energy]: no energy measured: NVML cannot be used and RAPL is not exposed here"
    )
