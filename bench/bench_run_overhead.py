"""Measurement overhead of `llem run`: output tokens/s against plain transformers `generate`.

Both sides run the built-in tiny model (`llem/tiny`, fp32, CPU) on the same prompts, with
the same batch size, max_new_tokens and greedy decoding, and generate exactly the same
number of tokens (EOS ignored on both sides). Rounds are interleaved in one run, the side
that goes first alternating: llem, plain, plain, llem, llem, plain, ...

- llem: `llem_harness.worker.measure_process` in-process, the real measurement path (the
  PyTorch backend found by its entry point, model load, warmup, energy window, per-token
  timestamps, request records, staged raw result), energy source `none`, baseline off, a
  temporary results dir. Its figure is output tokens
  / the measurement window of the raw result it returns.
- plain (baseline): the same model directory loaded with `AutoModelForCausalLM` /
  `AutoTokenizer` (left padding), `model.generate` under `torch.inference_mode` (as llem
  calls it) over the same batches, timed from before the first batch is tokenized to after
  the last one returned.

Both sides use one torch thread (see THREADS). Besides the medians it prints the best round
of each side (the one least slowed by other load on the machine), the per-round ratios, and
llem's own bookkeeping per batch replayed without the model (streamer timestamps, request
records): a figure other load on the machine barely moves, unlike the throughput ratio.

Target (issue 5): llem at least 0.97 of the plain figure on CPU.
Run: uv run --frozen python bench/bench_run_overhead.py
"""

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as transformers_logging

from llem_backend_pytorch import TokenTimer, ensure_tiny_model
from llem_energy import cpu_model
from llem_harness import create_backend, resolve_config
from llem_harness.progress import Stages
from llem_harness.prompts import load_prompts
from llem_harness.worker import measure_process
from llem_schema import ExperimentConfig, RequestRecord, RequestTiming, WorkerContext

ROUNDS = 25
N = 32
BATCH_SIZE = 8
MAX_NEW_TOKENS = 64
WARMUP_BATCHES = 2
TARGET = 0.97
REPLAYS = 200
# One intra-op thread on both sides: on a small shared machine a second thread mostly adds
# noise (a descheduled worker thread stalls every op), and this model is too small to need it.
THREADS = 1

CONFIG = resolve_config(
    ExperimentConfig.model_validate(
        {
            "model": "llem/tiny",
            "n": N,
            "max_new_tokens": MAX_NEW_TOKENS,
            "decoder": {"mode": "greedy", "ignore_eos": True},
            "warmup": {"count": WARMUP_BATCHES},
            "baseline": {"enabled": False},
            "energy": {"source": "none"},
            "pytorch": {"batch_size": BATCH_SIZE},
        }
    )
)


def batches(prompts: Sequence[str], size: int) -> list[list[str]]:
    return [list(prompts[i : i + size]) for i in range(0, len(prompts), size)]


class Plain:
    """The baseline: the tiny model through plain transformers, no streamer, no records."""

    def __init__(self, model_dir: Path, prompts: Sequence[str]) -> None:
        self.tokenizer: Any = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        model.eval()  # type: ignore[no-untyped-call]
        self.model: Any = model
        self.batches = batches(prompts, BATCH_SIZE)

    def generate(self, batch: list[str]) -> int:
        encoded = self.tokenizer(
            batch,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=CONFIG.max_input_tokens,
        )
        with torch.inference_mode():
            sequences = self.model.generate(
                **encoded,
                max_new_tokens=MAX_NEW_TOKENS,
                do_sample=False,
                num_beams=1,
                eos_token_id=None,  # EOS ignored, as decoder.ignore_eos does on llem's side
                pad_token_id=self.tokenizer.pad_token_id,
            )
        rows, length = sequences.shape
        return int(rows * (length - encoded["input_ids"].shape[1]))

    def warmup(self) -> None:
        for batch in self.batches[:WARMUP_BATCHES]:
            self.generate(batch)

    def round(self) -> tuple[int, float]:
        start = time.perf_counter()
        tokens = sum(self.generate(batch) for batch in self.batches)
        return tokens, time.perf_counter() - start


def llem_round(results_dir: Path, index: int) -> tuple[int, float]:
    raw = measure_process(
        CONFIG,
        f"bench-overhead-{index}",
        backend=create_backend("pytorch"),
        results_dir=results_dir,
        context=WorkerContext(process_index=0, num_processes=1),
        stages=Stages(),
    )
    return sum(r.output_tokens for r in raw.requests), raw.duration_s


def bookkeeping_s() -> float:
    """llem's own work inside the window for one batch, replayed without the model: a
    timestamp per step per row in the streamer, then the timing and record of each request
    (the backend's check of streamed against returned tokens, ~0.02 ms, is left out)."""
    step = torch.arange(BATCH_SIZE)
    start = time.perf_counter()
    for _ in range(REPLAYS):
        timer = TokenTimer(BATCH_SIZE, eos_token_ids=frozenset())
        start_s = time.perf_counter()
        for _ in range(MAX_NEW_TOKENS):
            timer.put(step)
        for index, times in enumerate(timer.token_times_s):
            timing = RequestTiming(
                request_index=index,
                input_tokens=1,
                output_tokens=len(times),
                start_s=start_s,
                token_times_s=times,
            )
            RequestRecord.from_timing(timing)
    return (time.perf_counter() - start) / REPLAYS


def row(case: str, rates: list[float], ratio: float, target: str) -> str:
    median = statistics.median(rates)
    spread = max(rates) - min(rates)
    return f"{case:38} {median:10.0f} tok/s {spread:8.0f} tok/s {ratio:7.3f} {target:>8}"


def main(rounds: int = ROUNDS) -> None:
    torch.set_num_threads(THREADS)
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    model_dir = ensure_tiny_model()
    prompts = load_prompts(CONFIG)
    plain = Plain(model_dir, prompts)
    expected_tokens = N * MAX_NEW_TOKENS
    llem_rates: list[float] = []
    plain_rates: list[float] = []
    with tempfile.TemporaryDirectory(prefix="llem-bench-") as tmp:
        results_dir = Path(tmp)
        plain.warmup()
        llem_round(results_dir, -1)  # a whole unmeasured round; each round also warms up
        for index in range(rounds):
            order = (("llem", llem_rates), ("plain", plain_rates))
            # which side goes first alternates, so neither always follows the other
            for side, rates in order if index % 2 == 0 else order[::-1]:
                tokens, window_s = (
                    llem_round(results_dir, index) if side == "llem" else plain.round()
                )
                if tokens != expected_tokens:
                    raise RuntimeError(f"{side} generated {tokens} tokens, not {expected_tokens}")
                rates.append(tokens / window_s)
        bookkeeping = [bookkeeping_s() for _ in range(rounds)]
    ratio = statistics.median(llem_rates) / statistics.median(plain_rates)
    plain_batch_s = expected_tokens / statistics.median(plain_rates) / len(plain.batches)
    paired = [ours / theirs for ours, theirs in zip(llem_rates, plain_rates, strict=True)]
    quartiles = statistics.quantiles(paired, n=4)

    print(
        f"llem run overhead bench: llem/tiny fp32 on CPU ({cpu_model() or platform.machine()}, "
        f"{THREADS} torch thread), n={N}, batch {BATCH_SIZE}, {MAX_NEW_TOKENS} new tokens "
        f"(EOS ignored), greedy: {expected_tokens} output tokens per round; "
        f"{rounds} interleaved rounds each (llem, plain, plain, llem, ...)"
    )
    print(f"{'case':38} {'median':>16} {'spread':>14} {'ratio':>7} {'target':>8}")
    print(row("plain transformers generate (baseline)", plain_rates, 1.0, ""))
    print(row("llem measure_process, window", llem_rates, ratio, f">= {TARGET}"))
    best = max(llem_rates) / max(plain_rates)
    print(
        f"best round (least disturbed by other load): plain {max(plain_rates):.0f} tok/s, "
        f"llem {max(llem_rates):.0f} tok/s, ratio {best:.3f}"
    )
    print(
        f"per-round ratio llem/plain (round i against round i): median {statistics.median(paired):.3f}, "
        f"quartiles {quartiles[0]:.3f} to {quartiles[2]:.3f}, min {min(paired):.3f}, "
        f"max {max(paired):.3f}"
    )
    book = statistics.median(bookkeeping)
    print(
        f"llem bookkeeping per batch, replayed: median {book * 1e3:.3f} ms, spread "
        f"{(max(bookkeeping) - min(bookkeeping)) * 1e3:.3f} ms; "
        f"{book / plain_batch_s:.2%} of a plain batch ({plain_batch_s * 1e3:.0f} ms)"
    )
    print(
        f"target {TARGET}: {'met' if ratio >= TARGET else 'MISSED'} (ratio of medians {ratio:.3f})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help="rounds per side (more: tighter medians)"
    )
    main(parser.parse_args().rounds)
