"""The prepared GPU check (issue 13, item 10): what llem's energy measurement does on one real
GPU, in one run of under 8 minutes with no network. It prints one table and writes a JSON file.

1. **counter vs integrated**: the GPU's energy counter against the trapezoid of sampled
   power, at 10 Hz and at 100 Hz (``energy.sample_rate_hz``), each over a window of at least
   60 s of ``generate`` on a random-weight Llama of 1.1 B parameters (bf16, built locally from
   a config: nothing is downloaded; token ids are fed directly, no tokenizer).
2. **sampling rate / NVML latency**: the rate the sampler achieved in those windows (from the
   samples' timestamps), and the time of one ``NvmlDevice.read_sample`` and of one energy
   counter read (LATENCY_CALLS calls each, the GPU idle), median and p99.
3. **overhead**: tokens/s of plain ``model.generate`` in a loop against the same work inside
   llem's energy window at 10 Hz, timed from before ``meter.start()`` to after
   ``window.stop()``; rounds interleaved (plain, window, window, plain).
4. **J/token CV**: 5 windows around the same generate work; the sample standard deviation
   of J/token over its mean.
5. **baseline**: ``EnergyMeter.measure_baseline`` after the model is loaded and the device
   synchronised (as the harness calls it), its power and ``problems``; and the verdict of
   ``idle_problems`` on the busy 10 Hz window, which must not look idle.

Without a GPU (torch sees no CUDA device, or NVML no GPU; ``CUDA_VISIBLE_DEVICES=""`` forces
it) the check runs against one simulated GPU (``LLEM_SIMULATED_GPUS=1``, see
``llem_energy.simulated``) with llem's built-in tiny model on the CPU and windows of a few
seconds, and says so in the table and the JSON (``"simulated": true``): nothing it prints is
then a measurement. ``--quick`` keeps the windows short on a GPU too.

Run: uv run --frozen python bench/gpu_check.py [--quick] [--json PATH]
On the device machine: see bench/README.md, "GPU check" (wheels to carry, the one command).
"""

import argparse
import functools
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import torch
import transformers
from transformers import AutoModelForCausalLM, LlamaConfig
from transformers.utils import logging as transformers_logging

from llem_energy import (
    SIMULATED_GPUS_ENV,
    EnergyError,
    EnergyMeter,
    EnergyReading,
    NvmlDevice,
    NvmlSession,
    achieved_rate_hz,
    cpu_model,
    idle_problems,
    simulated_gpu_count,
)
from llem_schema import BaselineConfig, DeviceEnergy, EnergyConfig

BUDGET_S: Final = 480.0
"""The whole check must end within this, s (issue 13: 8 minutes)."""
RATES_HZ: Final = (10.0, 100.0)
OVERHEAD_RATE_HZ: Final = 10.0
LATENCY_CALLS: Final = 300
BASELINE_STATE: Final = "model loaded, device synchronised and idle"
"""As llem_harness.worker states it."""
SECTIONS: Final = (
    "counter vs integrated",
    "sampling rate",
    "NVML latency",
    "overhead",
    "J/token CV",
    "baseline",
    "wall time",
)
"""The table's sections, in order. The JSON's keys: counter_vs_integrated, sampling_rate,
nvml_latency, overhead, j_per_token_cv, baseline, wall_time_s; errors per failed part."""


@dataclass(frozen=True, slots=True)
class Plan:
    """How long each part runs, s."""

    rate_window_s: float
    """Each counter-vs-integrated window runs generate for at least this long."""
    overhead_window_s: float
    """Work of about this long per overhead round and side."""
    overhead_rounds: int
    """Rounds per side (plain and window), interleaved."""
    repeat_window_s: float
    """Work of about this long per J/token repeat."""
    repeats: int
    baseline_s: float
    warmup_units: int

    def planned_s(self) -> float:
        """The measured parts' length without the model build and warm-up, s; the baseline
        counted twice (it is measured again when the GPU does not look idle)."""
        return (
            2 * self.baseline_s
            + len(RATES_HZ) * self.rate_window_s
            + 2 * self.overhead_rounds * self.overhead_window_s
            + self.repeats * self.repeat_window_s
        )


FULL: Final = Plan(
    rate_window_s=60.0,
    overhead_window_s=5.0,
    overhead_rounds=2,
    repeat_window_s=15.0,
    repeats=5,
    baseline_s=15.0,
    warmup_units=3,
)
SHORT: Final = Plan(
    rate_window_s=2.0,
    overhead_window_s=0.75,
    overhead_rounds=2,
    repeat_window_s=0.75,
    repeats=5,
    baseline_s=1.0,
    warmup_units=2,
)

# The GPU model: Llama-style, 1.1 B parameters (Llama 3.2 1B's width, 16 layers, GQA).
GPU_MODEL: Final = LlamaConfig(
    vocab_size=32000,
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=2048,
    tie_word_embeddings=False,
)
GPU_WORK: Final = {"batch_size": 64, "prompt_tokens": 128, "new_tokens": 64}
CPU_WORK: Final = {"batch_size": 8, "prompt_tokens": 16, "new_tokens": 32}


def progress(message: str) -> None:
    """One progress line on stderr (the table goes to stdout), stamped with the process's age."""
    age_s = process_age_s()
    stamp = "" if age_s is None else f"[{age_s:6.1f} s] "
    print(f"{stamp}{message}", file=sys.stderr, flush=True)


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc), imports included; None elsewhere."""
    try:
        stat = Path("/proc/self/stat").read_text(encoding="ascii", errors="replace")
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime
        uptime_s = float(Path("/proc/uptime").read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime_s - start_ticks / os.sysconf("SC_CLK_TCK")


def find_gpu() -> tuple[str | None, str | None]:
    """(UUID of CUDA device 0, None) when torch sees a GPU and NVML can read it; else
    (None, why the check runs on a simulated GPU)."""
    if simulated_gpu_count() is not None:
        return None, f"{SIMULATED_GPUS_ENV} is set"
    if not torch.cuda.is_available():
        return None, "torch sees no CUDA GPU"
    try:
        with NvmlSession.open() as session:
            if session.device_count() == 0:
                return None, "NVML sees no GPU"
    except EnergyError as exc:
        return None, f"NVML cannot be used ({exc})"
    uuid = str(torch.cuda.get_device_properties(0).uuid)  # as llem_backend_pytorch reads it
    return (uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"), None


class Workload:
    """The same generate work, again and again: a batch of random token ids, greedy, EOS
    ignored, a fixed number of new tokens per call (a unit)."""

    def __init__(
        self,
        model: Any,
        *,
        device: torch.device,
        vocab_size: int,
        batch_size: int,
        prompt_tokens: int,
        new_tokens: int,
    ) -> None:
        self.model = model
        self.device = device
        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(3, vocab_size, (batch_size, prompt_tokens), generator=generator)
        self.input_ids = ids.to(device)
        self.attention_mask = torch.ones_like(self.input_ids)
        self.prompt_tokens = prompt_tokens
        self.new_tokens = new_tokens
        self.tokens_per_unit = batch_size * new_tokens
        self.unit_s = math.nan
        """Median time of one unit in the warm-up, s."""

    def sync(self) -> None:
        """Wait for the device to finish its queued work."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def unit(self) -> int:
        """One generate call; the new tokens it made."""
        with torch.inference_mode():
            sequences = self.model.generate(
                input_ids=self.input_ids,
                attention_mask=self.attention_mask,
                max_new_tokens=self.new_tokens,
                min_new_tokens=self.new_tokens,  # no row stops early and is padded
                do_sample=False,
                num_beams=1,
                eos_token_id=None,  # EOS ignored: every call makes the same tokens
                pad_token_id=0,
            )
        made = int(sequences.shape[0] * (sequences.shape[1] - self.prompt_tokens))
        if made != self.tokens_per_unit:
            raise RuntimeError(f"generate made {made} tokens, not {self.tokens_per_unit}")
        return made

    def units(self, count: int) -> int:
        return sum(self.unit() for _ in range(count))

    def run_for(self, seconds: float) -> int:
        """Units until at least ``seconds`` have passed; the tokens made."""
        start_s, tokens = time.perf_counter(), 0
        while True:
            tokens += self.unit()
            if time.perf_counter() - start_s >= seconds:
                return tokens

    def warm_up(self, count: int) -> None:
        times: list[float] = []
        for _ in range(count):
            start_s = time.perf_counter()
            self.unit()
            self.sync()
            times.append(time.perf_counter() - start_s)
        self.unit_s = statistics.median(times[1:] or times)

    def units_for(self, seconds: float) -> int:
        """Units that take about ``seconds`` (at least one)."""
        return max(1, round(seconds / self.unit_s))


def load_workload(gpu_uuid: str | None) -> tuple[Workload, dict[str, Any]]:
    """The 1.1 B random-weight model on CUDA device 0, or llem/tiny on the CPU."""
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    torch.manual_seed(0)
    start_s = time.perf_counter()
    if gpu_uuid is not None:
        device, dtype, work = torch.device("cuda", 0), torch.bfloat16, GPU_WORK
        with device:
            model = AutoModelForCausalLM.from_config(GPU_MODEL, dtype=dtype)  # type: ignore[no-untyped-call]
        name, vocab_size = "random-weight Llama, 16 layers, hidden 2048 (built locally)", 32000
    else:
        from llem_backend_pytorch import TINY_MODEL, ensure_tiny_model

        torch.set_num_threads(1)  # steadier on a small shared machine
        device, dtype, work = torch.device("cpu"), torch.float32, CPU_WORK
        model = AutoModelForCausalLM.from_pretrained(ensure_tiny_model(), dtype=dtype)
        name, vocab_size = f"{TINY_MODEL} (llem's built-in tiny model)", model.config.vocab_size
    model.eval()
    workload = Workload(model, device=device, vocab_size=vocab_size, **work)
    workload.sync()
    info = {
        "name": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(dtype).removeprefix("torch."),
        "device": str(device),
        "load_s": time.perf_counter() - start_s,
        **work,
    }
    return workload, info


def gpu_energy(reading: EnergyReading, uuid: str) -> DeviceEnergy:
    for energy in reading.energy:
        if energy.device_uuid == uuid:
            return energy
    codes = ", ".join(w.code for w in reading.warnings) or "none"
    raise EnergyError(f"the window has no energy figure for {uuid} (warnings: {codes})")


def windowed(
    work: Workload, meter: EnergyMeter, run: Callable[[], int]
) -> tuple[int, float, EnergyReading]:
    """``run`` inside one energy window: (tokens, s from before start() to after stop(), reading)."""
    work.sync()
    start_s = time.perf_counter()
    window = meter.start()
    tokens = run()
    work.sync()
    reading = window.stop()
    return tokens, time.perf_counter() - start_s, reading


def check_rate(
    work: Workload, meter: EnergyMeter, seconds: float
) -> tuple[dict[str, Any], EnergyReading]:
    """Counter against integrated energy, and the achieved rate, over one busy window."""
    tokens, _, reading = windowed(work, meter, lambda: work.run_for(seconds))
    gpu = meter.gpus[0]
    energy = gpu_energy(reading, gpu.uuid)
    counter, integrated = energy.counter_energy_j, energy.integrated_energy_j
    requested = meter.config.sample_rate_hz
    achieved = achieved_rate_hz(reading.samples)
    return {
        "requested_hz": requested,
        "duration_s": reading.duration_s,
        "tokens": tokens,
        "counter_j": counter,
        "integrated_j": integrated,
        "relative_difference": (integrated - counter) / counter
        if counter and integrated is not None
        else None,
        "mean_power_w": energy.energy_j / reading.duration_s if reading.duration_s else None,
        "power_reading": energy.power_reading,
        "power_scope": energy.power_scope,
        "counter_update_period_s": reading.facts.counter_update_period_s.get(gpu.uuid),
        "samples": sum(1 for s in reading.samples if s.gpu_index == gpu.index),
        "achieved_hz": achieved,
        "achieved_ratio": achieved / requested if achieved is not None else None,
        "window_rate_hz": energy.sample_rate_hz,
        "gaps": energy.sample_gaps,
        "warnings": [w.code for w in reading.warnings],
    }, reading


def timed_ms(call: Callable[[], object], calls: int) -> dict[str, float]:
    """Median, p99 and max of ``calls`` calls of ``call``, ms."""
    times: list[float] = []
    for _ in range(calls):
        start_s = time.perf_counter()
        call()
        times.append((time.perf_counter() - start_s) * 1e3)
    return {
        "median": statistics.median(times),
        "p99": statistics.quantiles(times, n=100)[98],
        "max": max(times),
    }


def check_latency(gpu: NvmlDevice, calls: int) -> dict[str, Any]:
    return {
        "calls": calls,
        "state": "GPU idle, model loaded",
        "read_sample_ms": timed_ms(lambda: gpu.read_sample(0.0), calls),
        "energy_counter_ms": timed_ms(gpu.energy_mj, calls),
    }


def check_overhead(work: Workload, meter: EnergyMeter, plan: Plan) -> dict[str, Any]:
    """Plain generate against the same units inside an energy window, interleaved."""
    units = work.units_for(plan.overhead_window_s)

    def plain() -> tuple[int, float]:
        work.sync()
        start_s = time.perf_counter()
        tokens = work.units(units)
        work.sync()
        return tokens, time.perf_counter() - start_s

    sides: dict[str, list[tuple[int, float]]] = {"plain": [], "window": []}
    for index in range(plan.overhead_rounds):
        order = ("plain", "window") if index % 2 == 0 else ("window", "plain")
        for side in order:
            if side == "plain":
                sides[side].append(plain())
            else:
                tokens, seconds, _ = windowed(work, meter, lambda: work.units(units))
                sides[side].append((tokens, seconds))
    rates = {
        side: sum(t for t, _ in runs) / sum(s for _, s in runs) for side, runs in sides.items()
    }
    return {
        "sample_rate_hz": meter.config.sample_rate_hz,
        "units_per_round": units,
        "tokens_per_round": units * work.tokens_per_unit,
        "rounds_per_side": plan.overhead_rounds,
        "plain_tokens_per_s": rates["plain"],
        "window_tokens_per_s": rates["window"],
        "ratio": rates["window"] / rates["plain"],
        "plain_rounds_s": [s for _, s in sides["plain"]],
        "window_rounds_s": [s for _, s in sides["window"]],
    }


def check_repeats(work: Workload, meter: EnergyMeter, plan: Plan) -> dict[str, Any]:
    """J/token over ``plan.repeats`` windows around the same units."""
    units = work.units_for(plan.repeat_window_s)
    uuid = meter.gpus[0].uuid
    runs: list[dict[str, Any]] = []
    for _ in range(plan.repeats):
        tokens, _, reading = windowed(work, meter, lambda: work.units(units))
        energy = gpu_energy(reading, uuid)
        adjusted = reading.adjusted_energy_j
        runs.append(
            {
                "tokens": tokens,
                "duration_s": reading.duration_s,
                "energy_j": energy.energy_j,
                "method": energy.method,
                "j_per_token": energy.energy_j / tokens,
                "adjusted_j_per_token": None if adjusted is None else adjusted / tokens,
            }
        )
    values = [run["j_per_token"] for run in runs]
    mean = statistics.fmean(values)
    stdev = statistics.stdev(values)
    return {
        "repeats": plan.repeats,
        "units_per_repeat": units,
        "mean_j_per_token": mean,
        "stdev_j_per_token": stdev,
        "cv": stdev / mean if mean else None,
        "runs": runs,
    }


def check_baseline(meter: EnergyMeter, plan: Plan, cache_dir: Path) -> dict[str, Any]:
    """The idle baseline as the harness takes it; a fresh cache, so it is always measured."""
    config = BaselineConfig(duration_s=plan.baseline_s, cache_ttl_s=0.0)
    start_s = time.perf_counter()
    found = meter.measure_baseline(config, cache_dir=cache_dir, state=BASELINE_STATE)
    taken_s = time.perf_counter() - start_s
    baseline = found[meter.gpus[0].uuid]
    warned = ("baseline_not_idle", "start_temperature")
    return {
        "state": baseline.state,
        "method": baseline.method,
        "power_w": baseline.power_w,
        "duration_s": baseline.duration_s,
        "taken_s": taken_s,
        "measured_twice": baseline.attempts == 2,
        "temperature_c": baseline.temperature_c,
        "problems": list(baseline.problems),
        "idle": not baseline.problems,
        "warnings": [w.code for w in meter.baseline_warnings if w.code in warned],
    }


def machine_info(meter: EnergyMeter) -> dict[str, Any]:
    gpu = meter.gpus[0]
    state = meter.device_states()[0]
    session = meter.session
    return {
        "gpu": gpu.name,
        "gpu_uuid": gpu.uuid,
        "power_limit_w": state.power_limit_w,
        "driver": session.driver_version() if session else None,
        "cuda_driver": session.cuda_version() if session else None,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cpu": cpu_model() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }


_RATE_KEYS: Final = (
    "requested_hz",
    "achieved_hz",
    "achieved_ratio",
    "window_rate_hz",
    "samples",
    "gaps",
)
"""What the JSON's sampling_rate repeats of each counter_vs_integrated window."""


def _f(value: Any, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value * 100:+.2f} %"


def table_rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The table: (section, figure, value, note) per row."""
    rows: list[tuple[str, str, str, str]] = []
    errors: dict[str, str] = result["errors"]
    for rate in result.get("counter_vs_integrated", []):
        hz = f"{rate['requested_hz']:.0f} Hz"
        rows.append(
            (
                SECTIONS[0],
                f"{hz}: counter / integrated / (integrated - counter) / counter",
                f"{_f(rate['counter_j'], '.1f', ' J')} / {_f(rate['integrated_j'], '.1f', ' J')}"
                f" / {_pct(rate['relative_difference'])}",
                f"{rate['duration_s']:.1f} s, {_f(rate['mean_power_w'], '.1f', ' W')} mean, "
                f"{rate['power_reading']} power, counter steps "
                f"{_f(rate['counter_update_period_s'], '.3f', ' s')}; warnings: "
                f"{', '.join(rate['warnings']) or 'none'}",
            )
        )
    for rate in result.get("counter_vs_integrated", []):
        rows.append(
            (
                SECTIONS[1],
                f"achieved at {rate['requested_hz']:.0f} Hz (from the samples)",
                f"{_f(rate['achieved_hz'], '.2f', ' Hz')} "
                f"({_f(rate['achieved_ratio'], '.3f')} of requested)",
                f"{rate['samples']} samples, {rate['gaps']} gaps",
            )
        )
    latency = result.get("nvml_latency")
    if latency:
        for key, label in (
            ("read_sample_ms", "NvmlDevice.read_sample"),
            ("energy_counter_ms", "energy counter read"),
        ):
            figures = latency[key]
            rows.append(
                (
                    SECTIONS[2],
                    label,
                    f"median {figures['median']:.3f} ms, p99 {figures['p99']:.3f} ms",
                    f"{latency['calls']} calls, {latency['state']}",
                )
            )
    overhead = result.get("overhead")
    if overhead:
        rows.append(
            (
                SECTIONS[3],
                "plain generate (baseline)",
                f"{overhead['plain_tokens_per_s']:.0f} tok/s",
                f"{overhead['rounds_per_side']} rounds of {overhead['tokens_per_round']} tokens",
            )
        )
        rows.append(
            (
                SECTIONS[3],
                f"inside the energy window, {overhead['sample_rate_hz']:.0f} Hz",
                f"{overhead['window_tokens_per_s']:.0f} tok/s, ratio {overhead['ratio']:.3f}",
                "start() to stop(), interleaved with the plain rounds",
            )
        )
    repeats = result.get("j_per_token_cv")
    if repeats:
        values = [run["j_per_token"] for run in repeats["runs"]]
        rows.append(
            (
                SECTIONS[4],
                f"{repeats['repeats']} repeats of the same work",
                f"CV {_f(None if repeats['cv'] is None else repeats['cv'] * 100, '.2f', ' %')}",
                f"mean {repeats['mean_j_per_token']:.4g} J/token "
                f"(min {min(values):.4g}, max {max(values):.4g})",
            )
        )
    baseline = result.get("baseline")
    if baseline:
        rows.append(
            (
                SECTIONS[5],
                "idle power (measure_baseline)",
                _f(baseline["power_w"], ".1f", " W"),
                f"{baseline['method']}, {_f(baseline['duration_s'], '.1f', ' s')}, "
                f"{_f(baseline['temperature_c'], '.1f', ' °C')}, {baseline['state']}"
                + (", measured twice" if baseline["measured_twice"] else ""),
            )
        )
        rows.append(
            (
                SECTIONS[5],
                "its problems (idle_problems of the idle window)",
                "; ".join(baseline["problems"]) or "none: idle",
                ", ".join(baseline["warnings"]) or "no baseline_not_idle warning",
            )
        )
        busy = baseline.get("busy_window_problems")
        if busy is not None:
            rows.append(
                (
                    SECTIONS[5],
                    "idle_problems of the busy 10 Hz window",
                    "; ".join(busy) or "none: idle",
                    "expected: not idle",
                )
            )
    for section, message in errors.items():
        rows.append((section, "ERROR", message, ""))
    wall = result["wall_time_s"]
    rows.append(
        (
            SECTIONS[6],
            "whole check, process start to end",
            f"{wall:.1f} s",
            f"budget {BUDGET_S:.0f} s: {'met' if wall <= BUDGET_S else 'MISSED'}",
        )
    )
    return rows


def render(result: dict[str, Any]) -> str:
    """The header lines and the table (Markdown, so it can go into bench/README.md as is)."""
    machine, model = result.get("machine") or {}, result["model"]
    lines = [f"llem GPU check, {result['date']}: `{result['command']}`"]
    if result["simulated"]:
        lines.append(
            f"**SIMULATED GPU** ({SIMULATED_GPUS_ENV}=1; {result['simulated_reason']}): llem's "
            "simulator, the tiny model on the CPU and short windows. NOT a measurement."
        )
    elif result["quick"]:
        lines.append("--quick: short windows, not the 60 s ones the check is for.")
    lines.append(
        f"GPU: {machine.get('gpu', 'n/a')}, power limit {_f(machine.get('power_limit_w'), '.0f', ' W')}, "
        f"driver {machine.get('driver')}, CUDA {machine.get('cuda_driver')}; torch "
        f"{machine.get('torch')}, transformers {machine.get('transformers')}, CPU "
        f"{machine.get('cpu')} ({machine.get('cpu_count')} cores)"
    )
    lines.append(
        f"model: {model.get('name')}, {model.get('parameters', 0) / 1e9:.3f} B parameters, "
        f"{model.get('dtype')} on {model.get('device')}; work: batch "
        f"{model.get('batch_size')} x {model.get('prompt_tokens')} prompt tokens, "
        f"{model.get('new_tokens')} new tokens per generate (greedy, EOS ignored)"
    )
    lines += ["", "| section | figure | value | note |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in table_rows(result)]
    return "\n".join(lines)


def run_check(quick: bool, command: str, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Every section in turn; a section that fails is recorded and the others still run.
    ``save`` gets the figures so far after each section (a run cut short keeps them)."""
    started_s = time.perf_counter()
    gpu_uuid, reason = find_gpu()
    simulated = gpu_uuid is None
    if simulated:
        os.environ.setdefault(SIMULATED_GPUS_ENV, "1")
    plan = SHORT if quick or simulated else FULL
    result: dict[str, Any] = {
        "check": "llem bench/gpu_check.py",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "simulated": simulated,
        "simulated_reason": reason,
        "quick": quick,
        "plan": asdict(plan),
        "budget_s": BUDGET_S,
        "model": {},
        "errors": {},
    }
    errors: dict[str, str] = result["errors"]
    progress(
        f"{'simulated GPU: ' + reason if reason else 'GPU ' + str(gpu_uuid)}; "
        f"measured parts planned at {plan.planned_s():.0f} s at most"
    )

    def section(name: str, planned_s: float, body: Callable[[], None]) -> None:
        elapsed_s = process_age_s() or time.perf_counter() - started_s
        if elapsed_s + planned_s > BUDGET_S:
            errors[name] = (
                f"skipped at {elapsed_s:.0f} s: it would pass the {BUDGET_S:.0f} s budget"
            )
            return
        progress(f"{name} ...")
        try:
            body()
        except Exception as exc:  # recorded; the other sections still run
            errors[name] = f"{type(exc).__name__}: {exc}"
            progress(f"{name} FAILED: {exc}")
        save(result)

    progress("building the model")
    work, result["model"] = load_workload(gpu_uuid)
    target: list[int | str] = [gpu_uuid] if gpu_uuid is not None else [0]
    meters = {
        # own_pids None: on a sandboxed machine NVML's PIDs are the host's, so this process's
        # own context could pass for foreign; the compute PIDs are still recorded
        rate: EnergyMeter.create(
            EnergyConfig(source="nvml", sample_rate_hz=rate), gpus=target, own_pids=lambda: None
        )
        for rate in RATES_HZ
    }
    meter = meters[OVERHEAD_RATE_HZ]
    try:
        result["machine"] = machine_info(meter)
        with tempfile.TemporaryDirectory(prefix="llem-gpu-check-") as cache:
            section(
                "baseline",
                2 * plan.baseline_s,
                lambda: result.update(baseline=check_baseline(meter, plan, Path(cache))),
            )
        section(
            "NVML latency",
            1.0,
            lambda: result.update(nvml_latency=check_latency(meter.gpus[0], LATENCY_CALLS)),
        )
        section("warm-up", 60.0, lambda: work.warm_up(plan.warmup_units))
        rates: list[dict[str, Any]] = []
        result["counter_vs_integrated"] = rates

        def rate_window(rate_hz: float) -> None:
            found, reading = check_rate(work, meters[rate_hz], plan.rate_window_s)
            rates.append(found)
            if rate_hz == OVERHEAD_RATE_HZ and "baseline" in result:
                busy = idle_problems(reading, meter.gpus)[meter.gpus[0].uuid]
                result["baseline"]["busy_window_problems"] = busy
                result["baseline"]["busy_window_idle"] = not busy

        for rate_hz in RATES_HZ:
            section(
                f"counter vs integrated ({rate_hz:.0f} Hz)",
                plan.rate_window_s + 2 * work.unit_s,
                functools.partial(rate_window, rate_hz),
            )
        result["sampling_rate"] = [{key: rate[key] for key in _RATE_KEYS} for rate in rates]
        section(
            "overhead",
            2 * plan.overhead_rounds * plan.overhead_window_s + 2 * work.unit_s,
            lambda: result.update(overhead=check_overhead(work, meter, plan)),
        )
        section(
            "J/token CV",
            plan.repeats * (plan.repeat_window_s + work.unit_s),
            lambda: result.update(j_per_token_cv=check_repeats(work, meter, plan)),
        )
    finally:
        for each in meters.values():
            each.close()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short windows (a few seconds)")
    parser.add_argument(
        "--json", type=Path, default=Path("gpu_check.json"), help="where to write the figures"
    )
    parser.add_argument(
        "--require-gpu",
        action="store_true",
        help="fail (exit 2) instead of falling back to a simulated GPU",
    )
    args = parser.parse_args(argv)
    if args.require_gpu:
        _, reason = find_gpu()
        if reason is not None:
            print(f"error: --require-gpu, but {reason}", file=sys.stderr)
            return 2
    command = " ".join(["bench/gpu_check.py", *(sys.argv[1:] if argv is None else argv)])
    started_s = time.perf_counter()
    path: Path = args.json
    path.parent.mkdir(parents=True, exist_ok=True)

    def save(result: dict[str, Any], *, finished: bool = False) -> None:
        result["finished"] = finished
        result["wall_time_s"] = process_age_s() or time.perf_counter() - started_s
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    result = run_check(args.quick, command, save)
    save(result, finished=True)
    print(render(result))
    print(f"\nfigures written to {path.resolve()}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
