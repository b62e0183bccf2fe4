"""The example configs under `examples/`: each is a valid experiment that shows what its name
says, the prompt file one of them uses is there and readable, and the quick start runs end to
end through the `llem` command on the built-in tiny model."""

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from llem_harness import load_experiment_config
from llem_harness.prompts import load_prompts, read_prompt_file
from llem_schema import ExperimentConfig, ExperimentResult
from llem_schema.config import BUILTIN_PROMPTS, SYNTHETIC_PROMPTS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _quickstart(config: ExperimentConfig) -> bool:
    return config.model == "llem/tiny" and config.n * config.max_new_tokens <= 2000


def _sampling(config: ExperimentConfig) -> bool:
    decoder = config.decoder
    # the file sets the preset and overrides one of its settings; the rest come from it
    return (
        decoder.preset == "factual"
        and decoder.mode == "sampling"
        and decoder.temperature == 0.5
        and (decoder.top_p, decoder.top_k) == (0.9, 40)
        and decoder.ignore_eos
    )


def _two_processes(config: ExperimentConfig) -> bool:
    return config.num_processes == 2 and config.n >= 2


def _local_bf16(config: ExperimentConfig) -> bool:
    return (
        config.model != "llem/tiny"
        and config.precision == "bf16"
        and config.n >= 100
        and config.backend_section()["batch_size"] == 8
        and config.warmup.until_converged
        and config.baseline.enabled
    )


def _from_file(config: ExperimentConfig) -> bool:
    return config.prompts.source not in (BUILTIN_PROMPTS, SYNTHETIC_PROMPTS)


def _serve(config: ExperimentConfig) -> bool:
    openai = config.backend_section()
    return (
        config.backend == "openai"
        and openai["server"] is not None
        and config.load.rate_per_s == 8.0
        and config.load.max_concurrency == 64
        and config.slo is not None
    )


SHOWS: dict[str, Callable[[ExperimentConfig], bool]] = {
    "tiny-quickstart.yaml": _quickstart,
    "sampling-decoder.yaml": _sampling,
    "two-processes.yaml": _two_processes,
    "local-model-bf16.yaml": _local_bf16,
    "prompts-from-file.yaml": _from_file,
    "serve.yaml": _serve,
}


STUDIES = ("study.yaml", "serve-rates.yaml")  # study files: tests/test_study_end_to_end.py


def test_every_example_is_listed_here() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted([*SHOWS, *STUDIES])


@pytest.mark.parametrize("name", sorted(SHOWS))
def test_example_is_a_valid_config_showing_what_its_name_says(name: str) -> None:
    config = load_experiment_config(EXAMPLES / name)
    assert SHOWS[name](config), config.model_dump()


@pytest.mark.parametrize("name", sorted(SHOWS))
def test_example_explains_its_keys_in_comments(name: str) -> None:
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    assert text.startswith("# ")
    assert "uv run llem run examples/" + name in text


def test_prompt_file_example_reads_its_file_from_the_repository_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = load_experiment_config(EXAMPLES / "prompts-from-file.yaml")
    source = ROOT / config.prompts.source
    assert source.is_file()
    pool = read_prompt_file(source, column=config.prompts.column)
    assert len(pool) == len(set(pool)) >= config.n
    monkeypatch.chdir(ROOT)  # the example says: run from the repository root
    prompts = load_prompts(config)
    assert len(prompts) == config.n
    assert set(prompts) <= set(pool)


def test_quickstart_example_runs_end_to_end(tmp_path: Path, llem_env: dict[str, str]) -> None:
    results = tmp_path / "results"
    completed = subprocess.run(
        [sys.executable, "-m", "llem", "run", "examples/tiny-quickstart.yaml", "-o", str(results)],
        cwd=ROOT,
        env=llem_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    match = re.search(r"^result: (.+)$", completed.stdout, re.MULTILINE)
    assert match, completed.stdout
    directory = Path(match[1].strip())
    assert directory.parent == results
    result = ExperimentResult.from_json(directory)
    config = load_experiment_config(EXAMPLES / "tiny-quickstart.yaml")
    assert result.effective_config["name"] == config.name
    assert result.effective_config["n"] == config.n
    assert result.model == config.model
    (process,) = result.process_results
    assert sorted(r.request_index for r in process.requests) == list(range(config.n))
    assert 0 < result.output_tokens <= config.n * config.max_new_tokens
    assert result.aggregation.complete
