"""What each process does (step 3 of a run): load the model, open the energy meter on the
devices it was placed on, baseline, warmup, the energy window around inference, and the raw
result staged atomically."""

import contextlib
import inspect
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Final, cast

from llem_energy import (
    EnergyMeter,
    cpu_model,
    in_container,
    process_tree,
    simulated_gpu_count,
    warning,
)
from llem_harness.arrivals import arrival_times, request_count, shard_indices
from llem_harness.errors import HarnessError
from llem_harness.progress import Stages
from llem_harness.prompts import load_prompts, prompt_warnings
from llem_harness.warmup import run_warmup
from llem_persistence import StagingRepository, write_timeseries
from llem_schema import (
    DeviceInfo,
    ExperimentConfig,
    InferenceBackend,
    ModelInfo,
    RawProcessResult,
    Request,
    RequestRecord,
    RequestTiming,
    WorkerContext,
    measurement_config_hash,
)

__all__ = ["measure_process", "metered_gpus", "requests_of"]

logger = logging.getLogger(__name__)

Barrier = Callable[[], None]

BASELINE_STATE: Final = "model loaded, device synchronised and idle"
"""The state a run measures idle power in (and caches it under)."""


def requests_of(
    config: ExperimentConfig, prompts: Sequence[str], context: WorkerContext
) -> list[Request]:
    """The requests process ``context`` sends: its share of the experiment's, each with its
    prompt (repeated where the requests outnumber them) and, under a finite request rate, its
    time in the arrival schedule."""
    count = request_count(config)
    rate = config.load.rate_per_s
    times = arrival_times(config.load, count=count, seed=config.seed) if rate else None
    mine = shard_indices(
        count, context.num_processes, context.process_index, spread=times is not None
    )
    return [
        Request(
            index=i,
            prompt=prompts[i % len(prompts)],
            scheduled_s=None if times is None else times[i],
        )
        for i in mine
    ]


def metered_gpus(
    config: ExperimentConfig, info: ModelInfo, context: WorkerContext
) -> str | list[int | str]:
    """The GPUs to meter: ``energy.devices`` where the config names them; else the GPUs the
    backend placed the model on, by UUID (none for a model on the CPU), or every GPU of the
    host where the model runs in another process on GPUs the backend cannot name. With
    simulated GPUs (``LLEM_SIMULATED_GPUS``) each process meters one of them, by its local
    rank, wherever the model is."""
    if config.energy.devices is not None:
        return config.energy.devices
    simulated = simulated_gpu_count()
    if simulated is not None:
        return [context.local_index % simulated]
    if info.devices_unknown:
        return "all"
    return list(info.device_uuids)


def measure_process(
    config: ExperimentConfig,
    experiment_id: str,
    *,
    backend: InferenceBackend,
    results_dir: Path,
    context: WorkerContext,
    stages: Stages,
    barrier: Barrier = lambda: None,
) -> RawProcessResult:
    """Measure this process's share of the requests and stage its raw result.

    ``barrier`` waits for every process of the run: around the baseline (no device works
    while any measures idle power), right before the energy window opens, and once this
    process's requests are done, right before it closes, so every window opens and closes
    together: a process that finished its share first keeps metering its device's idle
    tail while the others finish theirs.
    """
    staging = StagingRepository(results_dir)
    meter: EnergyMeter | None = None
    held = _HeldStops()  # from the window's close to the staged result
    try:
        with stages.stage(f"loading {config.model}"):
            info = backend.load(config, context)
        meter = EnergyMeter.create(
            config.energy,
            gpus=metered_gpus(config, info, context),
            own_pids=_run_pids(info, context),
            host=context.local_index == 0,  # host-wide (RAPL) energy: metered once per host
        )
        if config.baseline.enabled:
            barrier()  # every process's model is loaded: every device is idle from here
            if meter.device_ids:
                backend.synchronize()
                with stages.stage(f"baseline idle power ({config.baseline.duration_s:g} s)"):
                    baselines = meter.measure_baseline(config.baseline, state=BASELINE_STATE)
                for device_id, baseline in baselines.items():
                    stages.note(
                        f"baseline {device_id}: {baseline.method}"
                        + (f", {baseline.power_w:.1f} W" if baseline.power_w is not None else "")
                    )
            barrier()  # no process warms up while another still measures idle power
        prompts = load_prompts(config, count_tokens=backend.count_tokens)
        prompt_notes = prompt_warnings(config, prompts, count_tokens=backend.count_tokens)
        requests = requests_of(config, prompts, context)
        warm = config.warmup
        with stages.stage(
            "warmup", total=warm.max_count if warm.until_converged else warm.count
        ) as advance:
            warmup = run_warmup(warm, requests, backend.warmup, advance)
        barrier()
        with stages.stage("inference", total=len(requests)) as advance:
            backend.synchronize()
            window = meter.start()
            run_started_s = time.perf_counter()
            timings, stop = _collect(backend.run(requests), advance)
            if stop is None:
                try:
                    backend.synchronize()
                    barrier()  # the windows close together
                except KeyboardInterrupt as late:  # this share is done; another's is not
                    stop = late
            held.hold()  # a finished share is kept whole
            reading = window.stop()
        if stop is not None and not timings:
            raise stop
        # stopped before its share was done (not merely while waiting for the others)
        interrupted = stop is not None and len(timings) < len(requests)
        records = _records(
            requests,
            timings,
            backend.name,
            origin_s=window.origin_s,
            run_started_s=run_started_s,
            partial=interrupted,
        )
        notes = (
            [
                warning(
                    "interrupted",
                    f"interrupted: {len(records)} of {len(requests)} requests finished before "
                    "the run was stopped; the others were not sent or did not finish",
                    finished=len(records),
                    requests=len(requests),
                )
            ]
            if interrupted
            else []
        )
        timeseries = staging.timeseries_path(experiment_id, context.process_index)
        has_samples = write_timeseries(reading.timeseries, timeseries)
        memory = backend.peak_memory()
        raw = RawProcessResult(
            experiment_id=experiment_id,
            measurement_config_hash=measurement_config_hash(config),
            model=config.model,
            backend=backend.name,
            backend_version=backend.version,
            process_index=context.process_index,
            num_processes=context.num_processes,
            hostname=socket.gethostname(),
            model_info=info,
            devices=meter.devices or [_cpu_device(info.device)],
            start_time=reading.start_time,
            end_time=reading.end_time,
            duration_s=reading.duration_s,
            requests=records,
            interrupted=interrupted,
            energy=reading.energy,
            sample_count=reading.sample_count,
            peak_memory_mb=None if memory is None else memory.mb,
            peak_memory_source=None if memory is None else memory.source,
            flops=backend.estimate_flops(records),
            warmup=warmup,
            throttle=reading.throttle,
            measurement_warnings=[
                *(warning("backend", message) for message in info.warnings),
                *prompt_notes,
                *reading.warnings_with(prompt_count=len(requests)),
                *notes,
            ],
            environment=reading.environment,
            simulated=meter.simulated is not None,
            timeseries=timeseries.name if has_samples else None,
        )
        staging.save_raw(experiment_id, raw)
        held.release(deliver=True)  # a stop asked for while staging takes effect here
        if stop is not None:
            raise stop  # what finished is staged; the run stops here (Ctrl-C or SIGTERM)
        return raw
    finally:
        held.release(deliver=False)
        try:
            backend.unload()
        finally:
            if meter is not None:
                meter.close()


class _HeldStops:
    """Ctrl-C and SIGTERM held back while a finished share is staged, so it is never cut
    short: :meth:`release` restores the handlers and, asked to, acts on what came meanwhile.
    A second signal while held acts at once (a stuck staging can still be stopped). Main
    thread only, as signal handlers are; elsewhere it holds nothing."""

    _SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._previous: dict[signal.Signals, Any] = {}
        self._asked: list[signal.Signals] = []

    def hold(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self._SIGNALS:
            handler = signal.getsignal(signum)
            if handler is None or handler is signal.SIG_IGN:
                continue  # not set from Python, or ignored: left as it is
            self._previous[signum] = handler
            signal.signal(signum, self._note)

    def _note(self, number: int, frame: FrameType | None) -> None:
        self._asked.append(signal.Signals(number))
        if len(self._asked) > 1:  # asked again: now
            self.release(deliver=True)

    def release(self, *, deliver: bool) -> None:
        """Restore the handlers; with ``deliver``, act on the first signal held back (the
        run is ending with an error otherwise: that error is what to report)."""
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        asked, self._asked = self._asked, []
        if deliver and asked and asked[0] in previous:
            handler = previous[asked[0]]
            if callable(handler):
                handler(asked[0], None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(asked[0])


def _collect(
    run: Iterable[RequestTiming], advance: Callable[[int], None]
) -> tuple[list[RequestTiming], KeyboardInterrupt | None]:
    """Every timing ``run`` yields, and the interruption (Ctrl-C's KeyboardInterrupt, or
    SIGTERM's :class:`~llem_harness.errors.Terminated`) that stopped it first, if one did.

    A backend sees the interruption where it is waiting (or has it thrown in at the ``yield``
    where it is paused), so one that can finish what is in flight yields those timings before
    it lets the interruption go; the timings collected by then are what finished.
    """
    timings: list[RequestTiming] = []
    iterator = iter(run)
    try:
        for timing in iterator:
            timings.append(timing)
            advance(1)
    except KeyboardInterrupt as stop:
        interruption = stop
    else:
        return timings, None
    if inspect.isgenerator(iterator) and (
        inspect.getgeneratorstate(iterator) == inspect.GEN_SUSPENDED
    ):
        paused = cast("Generator[RequestTiming]", iterator)
        with contextlib.suppress(KeyboardInterrupt, StopIteration):
            timings.append(paused.throw(KeyboardInterrupt()))
            timings.extend(paused)
    return timings, interruption


def _records(
    requests: Sequence[Request],
    timings: Sequence[RequestTiming],
    backend: str,
    *,
    origin_s: float,
    run_started_s: float,
    partial: bool = False,
) -> list[RequestRecord]:
    """The timings as records, in request order; every request exactly once (at most once
    when the run was stopped early, ``partial``). Their times count from the window's start,
    ``origin_s``; a request's schedule from when ``run`` was called, ``run_started_s`` (both
    on ``time.perf_counter``'s clock)."""
    by_index = {timing.request_index: timing for timing in timings}
    expected = [request.index for request in requests]
    returned_ok = (
        set(by_index) <= set(expected) if partial else sorted(by_index) == sorted(expected)
    )
    if len(by_index) != len(timings) or not returned_ok:
        returned = sorted(timing.request_index for timing in timings)
        raise HarnessError(
            f"backend {backend!r} returned timings for requests {_span(returned)} but was "
            f"given {_span(sorted(expected))}: each request needs exactly one timing"
        )
    return [
        RequestRecord.from_timing(
            by_index[request.index],
            origin_s=origin_s,
            scheduled_s=None
            if request.scheduled_s is None
            else run_started_s - origin_s + request.scheduled_s,
        )
        for request in requests
        if request.index in by_index
    ]


def _span(indices: Sequence[int]) -> str:
    if not indices:
        return "none"
    if list(indices) == list(range(indices[0], indices[0] + len(indices))):
        return f"{indices[0]}..{indices[-1]}"
    return ", ".join(map(str, indices[:8])) + (", ..." if len(indices) > 8 else "")


def _run_pids(info: ModelInfo, context: WorkerContext) -> Callable[[], set[int] | None]:
    """This run's processes, whose compute contexts on a metered GPU are not foreign: this
    one's siblings (the launcher's children), or this one and its children (a managed
    server) for a single process. Unknown (None) where a model runs in a process llem did
    not start (a server it only sends to), and in a container, where NVML gives the host's
    PIDs and /proc the container's."""
    managed = info.details.get("managed") is True  # a server llem started: its child
    if (info.devices_unknown and not managed) or in_container():
        return lambda: None
    root = os.getppid() if context.num_processes > 1 else os.getpid()
    return lambda: process_tree(root)


def _cpu_device(device: str) -> DeviceInfo:
    host = socket.gethostname()
    return DeviceInfo(kind="cpu", index=0, uuid=f"cpu-{host}", name=cpu_model() or device)
