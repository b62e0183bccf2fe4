"""The load generator is never the bottleneck: llem's `openai` client against a bare asyncio +
httpx2 loop, both against a local server that streams a fixed answer at once.

- The server (a separate process, plain asyncio streams) answers every POST to
  /v1/completions with CHUNKS server-sent events and a usage chunk, without waiting, so the
  clients' own costs are all that is measured.
- Baseline: a bare loop written here: an httpx2.AsyncClient, a semaphore of CONCURRENCY,
  each request streamed and its lines read, REQUESTS requests as fast as they go.
- Two more bare loops for scale: one that only reads each answer's bytes (the least any
  client can do; llem splits lines itself from these bytes), and one that does what a
  benchmark client must to time tokens, as vLLM's serving benchmark does it: each event's
  JSON parsed (json.loads), a timestamp kept per token.
- llem: `llem.measure` with the `openai` backend (store off, energy off, warmup off) over the
  same requests: what a user runs, per-chunk timestamps, request records, aggregation and
  all; its figure is completed requests / the measurement window.
- Send-time error: `llem.measure` at RATE requests/s (Poisson) for DURATION_S; for every
  request, when it started minus when the schedule meant it to (both from the result).

Targets (issue 12): llem >= 0.95 of the bare loop's requests/s; send-time error p99 < 2 ms at
200 requests/s. Rounds are interleaved (bare, llem, llem, bare, ...).
Run: uv run --frozen python bench/bench_load_generator.py [--rounds N]
"""

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import httpx2

from llem_harness import measure
from llem_schema import ExperimentConfig
from llem_schema.metrics import percentile

REQUESTS: Final = 2000
CONCURRENCY: Final = 32
CHUNKS: Final = 16
RATE: Final = 200.0
DURATION_S: Final = 10.0
ROUNDS: Final = 5
TARGET_RATIO: Final = 0.95
TARGET_P99_MS: Final = 2.0


def _event(text: str) -> bytes:
    return f"data: {json.dumps({'choices': [{'index': 0, 'text': text}]})}\n\n".encode()


ANSWER: Final = (
    b"".join(_event(f" t{i}") for i in range(CHUNKS))
    + b"data: "
    + json.dumps(
        {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": CHUNKS}}
    ).encode()
    + b"\n\ndata: [DONE]\n\n"
)
MODELS: Final = json.dumps({"object": "list", "data": [{"id": "bench"}]}).encode()


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length:
                await reader.readexactly(length)
            if head.startswith(b"GET"):
                body, kind = MODELS, b"application/json"
            else:
                body, kind = ANSWER, b"text/event-stream"
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: " + kind
                + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )  # fmt: skip
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _pin(cpus: set[int]) -> None:
    """Keep this process on ``cpus`` where the platform can (Linux): the server and the
    clients on cores of their own, so that the clients' costs are what is compared."""
    if hasattr(os, "sched_setaffinity") and cpus:
        os.sched_setaffinity(0, cpus)


def _serve(port: int, cpus: set[int]) -> None:
    _pin(cpus)

    async def main() -> None:
        server = await asyncio.start_server(_handle, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


async def _bare_loop(base_url: str, *, parse: bool = False, lines: bool = True) -> float:
    """The baseline: REQUESTS streamed requests, CONCURRENCY at a time; requests/s. With
    ``parse``, each event's JSON is parsed and a token's arrival kept, as a peer's client
    does to time tokens; without ``lines``, only the answer's bytes are read."""
    slots = asyncio.Semaphore(CONCURRENCY)
    limits = httpx2.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx2.AsyncClient(base_url=base_url, limits=limits) as client:

        async def one(index: int) -> None:
            async with slots:
                body = {
                    "model": "bench",
                    "prompt": f"p{index}",
                    "max_tokens": CHUNKS,
                    "stream": True,
                }
                times = []
                async with client.stream("POST", "/completions", json=body) as response:
                    if not lines:
                        async for _ in response.aiter_bytes():
                            arrived_s = time.perf_counter()
                        return
                    async for line in response.aiter_lines():
                        arrived_s = time.perf_counter()
                        if parse and line.startswith("data:") and line != "data: [DONE]":
                            chunk = json.loads(line[5:])
                            if chunk["choices"] and chunk["choices"][0].get("text"):
                                times.append(arrived_s)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(REQUESTS)))
        return REQUESTS / (time.perf_counter() - started)


def _config(base_url: str, output: Path, **load: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "backend": "openai",
            "model": "bench",
            "n": REQUESTS,
            "max_new_tokens": CHUNKS,
            "warmup": {"count": 0},
            "baseline": {"enabled": False},
            "energy": {"source": "none"},
            "output_dir": str(output),
            "load": load,
            "openai": {"base_url": base_url},
        }
    )


def _llem_round(base_url: str, output: Path) -> float:
    result = measure(_config(base_url, output, max_concurrency=CONCURRENCY), store=False)
    metrics = result.request_metrics
    if metrics is None or metrics.failed_requests:
        raise RuntimeError(f"llem's round failed requests: {metrics}")
    return metrics.request_throughput_per_s


def _send_errors_ms(base_url: str, output: Path) -> list[float]:
    config = _config(base_url, output, request_rate=RATE, duration_s=DURATION_S)
    result = measure(config, store=False)
    return [
        (r.start_s - r.scheduled_s) * 1000.0
        for p in result.process_results
        for r in p.requests
        if r.start_s is not None and r.scheduled_s is not None
    ]


def main(rounds: int) -> None:
    logging.disable(logging.WARNING)  # each short run notes its short steady state: not here
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpus = set(cpus[len(cpus) // 2 :]) if len(cpus) >= 2 else set()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(port, server_cpus), daemon=True
    )
    server.start()
    _pin(set(cpus) - server_cpus)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx2.get(f"{base_url}/models", timeout=1.0)
            break
        except httpx2.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    sides: dict[str, Callable[[], float]] = {
        "bare": lambda: asyncio.run(_bare_loop(base_url)),
        "bytes": lambda: asyncio.run(_bare_loop(base_url, lines=False)),
        "parsing": lambda: asyncio.run(_bare_loop(base_url, parse=True)),
        "llem": lambda: _llem_round(base_url, output),
    }
    figures: dict[str, list[float]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory(prefix="llem-bench-load-") as tmp:
        output = Path(tmp)
        for run in sides.values():  # warm every path once
            run()
        for index in range(rounds):  # interleaved, the order turned each round
            order = list(sides) if index % 2 == 0 else list(sides)[::-1]
            for side in order:
                figures[side].append(sides[side]())
        errors = sorted(_send_errors_ms(base_url, output))
    server.terminate()
    median = {side: statistics.median(values) for side, values in figures.items()}
    ratio = median["llem"] / median["bare"]
    p50, p99 = percentile(errors, 50), percentile(errors, 99)
    print(
        f"load generator bench: {REQUESTS} requests x {CHUNKS} streamed chunks, {CONCURRENCY} "
        f"in flight, local server answering at once; {rounds} interleaved rounds each"
    )
    print(f"{'case':52} {'median':>16} {'spread':>14} {'ratio':>7} {'target':>8}")
    for side, case, target in (
        ("bare", "bare asyncio + httpx2 loop, lines read (baseline)", ""),
        ("bytes", "bare loop, bytes read (no lines)", ""),
        ("parsing", "bare loop parsing events, as vLLM's benchmark", ""),
        ("llem", "llem measure, openai backend", f">= {TARGET_RATIO}"),
    ):
        spread = max(figures[side]) - min(figures[side])
        print(
            f"{case:52} {median[side]:10.0f} req/s {spread:8.0f} req/s "
            f"{median[side] / median['bare']:7.3f} {target:>8}"
        )
    print(
        f"llem / the parsing loop: {median['llem'] / median['parsing']:.3f}; "
        f"llem / the bytes-reading loop: {median['llem'] / median['bytes']:.3f}"
    )
    print(
        f"send-time error at {RATE:g} requests/s over {DURATION_S:g} s ({len(errors)} requests): "
        f"p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {errors[-1]:.3f} ms (target p99 < "
        f"{TARGET_P99_MS} ms)"
    )
    met = ratio >= TARGET_RATIO and p99 < TARGET_P99_MS
    print(f"targets: {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds per side")
    main(parser.parse_args().rounds)
