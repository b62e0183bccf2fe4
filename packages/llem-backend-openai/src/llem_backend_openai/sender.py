"""Sending requests on their schedule: an asyncio loop in a thread of its own, the timings
handed to the caller as they complete.

Each request is sent at its ``scheduled_s`` after :meth:`Sender.send` is called (at once
where it has none); completed timings reach the caller in small batches (every
``HANDOFF_S``), so that thousands of requests a second do not wake the caller's thread
thousands of times. With ``max_concurrency``, a request due while that many are in flight
waits for one to finish and is then sent at once (the schedule is not caught up on, as AIPerf
and vLLM's serving benchmark do it). Stopping (:meth:`Sender.stop`, Ctrl-C, or the caller
leaving the loop) sends nothing more and gives the requests in flight a grace period.
"""

import asyncio
import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Final

import httpx2

from llem_backend_openai.client import Endpoint, stream_request
from llem_schema import Request, RequestTiming

__all__ = ["Sender"]

_DONE: Final = object()
HANDOFF_S: Final = 0.02
"""How often completed timings are handed to the caller's thread, s."""
SPIN_S: Final = 0.0015
"""How long before a request is due the sender stops sleeping and watches the clock, s."""


class Sender:
    """Sends ``requests`` to ``endpoint`` through a client ``make_client`` builds."""

    def __init__(
        self,
        make_client: Callable[[], httpx2.AsyncClient],
        endpoint: Endpoint,
        *,
        max_concurrency: int | None,
        grace_s: float = 30.0,
    ) -> None:
        self._make_client = make_client
        self._endpoint = endpoint
        self._max_concurrency = max_concurrency
        self._grace_s = grace_s
        self._stopping = threading.Event()
        self._wake: Callable[[], None] | None = None
        self.usage_counted = 0
        """How many requests the server gave token counts (``usage``) for."""

    def stop(self) -> None:
        """Send nothing more; the requests in flight get ``grace_s`` to finish. Any thread."""
        self._stopping.set()
        wake = self._wake
        if wake is not None:
            wake()

    def send(self, requests: Sequence[Request]) -> Iterator[RequestTiming]:
        """Send every request; yield each one's timing as it completes.

        Ctrl-C (KeyboardInterrupt, raised here or thrown in at a ``yield``) stops sending,
        yields the timings of the requests in flight as they finish (up to the grace period),
        then goes on as KeyboardInterrupt. Leaving the loop early otherwise (an exception,
        ``close()``) stops sending and waits for those in flight without yielding them.
        """
        results: queue.Queue[object] = queue.Queue()
        pending: deque[RequestTiming] = deque()  # handed over, not yet yielded
        origin_s = time.perf_counter()  # the schedule counts from the call
        thread = threading.Thread(
            target=lambda: asyncio.run(self._send_all(requests, origin_s, results.put)),
            name="llem-openai-sender",
            daemon=True,
        )
        thread.start()
        wait_s = self._grace_s + 5.0
        try:
            try:
                yield from _received(results, pending)
            except KeyboardInterrupt:
                self.stop()
                wait_s = 0.0  # a second Ctrl-C while draining: wait for nothing more
                yield from _received(results, pending)  # those in flight, as they finish
                raise
        finally:
            self.stop()
            thread.join(wait_s)

    async def _send_all(
        self, requests: Sequence[Request], origin_s: float, put: Callable[[object], None]
    ) -> None:
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        slots = asyncio.Semaphore(self._max_concurrency) if self._max_concurrency else None

        def on_stop() -> None:  # in the loop's thread
            stopped.set()
            if slots is not None:
                slots.release()  # a send waiting for a slot wakes, sees the stop, and ends

        def wake() -> None:  # in the stopping thread
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to stop
                loop.call_soon_threadsafe(on_stop)

        self._wake = wake
        if self._stopping.is_set():
            on_stop()
        completed: list[RequestTiming] = []
        handoff = asyncio.create_task(self._hand_off(completed, put))
        try:
            async with self._make_client() as client:
                await self._schedule(client, requests, origin_s, slots, stopped, completed.append)
        except BaseException as exc:  # the caller raises it; the thread ends either way
            put(exc)
        finally:
            self._wake = None
            handoff.cancel()
            if completed:
                put(completed[:])
            put(_DONE)

    async def _hand_off(
        self, completed: list[RequestTiming], put: Callable[[object], None]
    ) -> None:
        while True:
            await asyncio.sleep(HANDOFF_S)
            if completed:
                put(completed[:])
                completed.clear()

    async def _schedule(
        self,
        client: httpx2.AsyncClient,
        requests: Sequence[Request],
        origin_s: float,
        slots: asyncio.Semaphore | None,
        stopped: asyncio.Event,
        done: Callable[[RequestTiming], None],
    ) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        idle = asyncio.Event()  # set when nothing is in flight
        idle.set()
        failures: list[BaseException] = []

        def finished(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            if not in_flight:
                idle.set()

        for request in requests:
            if request.scheduled_s is not None:
                await self._sleep_until(origin_s + request.scheduled_s)
            if slots is not None:
                await slots.acquire()
            if stopped.is_set() or self._stopping.is_set():
                break
            task = asyncio.create_task(self._one(client, request, slots, done, failures.append))
            in_flight.add(task)
            idle.clear()
            task.add_done_callback(finished)
        if in_flight and not stopped.is_set():  # all sent: until they finish, or a stop
            waits = {asyncio.ensure_future(idle.wait()), asyncio.ensure_future(stopped.wait())}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()
        if in_flight:  # stopped: those in flight get the grace period
            await asyncio.wait(in_flight, timeout=self._grace_s)
        if failures:
            raise failures[0]

    async def _sleep_until(self, due_s: float) -> None:
        """Sleep until ``due_s`` (perf_counter), waking early if asked to stop.

        The event loop waits on epoll, in whole milliseconds rounded up, so a plain sleep
        sends up to a millisecond late: the last ``SPIN_S`` pass in loop iterations that
        still serve every stream (``sleep(0)``).
        """
        while not self._stopping.is_set():
            left = due_s - time.perf_counter()
            if left <= 0:
                return
            await asyncio.sleep(min(left - SPIN_S, 0.05) if left > SPIN_S else 0)

    async def _one(
        self,
        client: httpx2.AsyncClient,
        request: Request,
        slots: asyncio.Semaphore | None,
        done: Callable[[RequestTiming], None],
        failed: Callable[[BaseException], None],
    ) -> None:
        try:
            timing, counted = await stream_request(client, self._endpoint, request)
            self.usage_counted += counted
            done(timing)
        except Exception as exc:  # stream_request returns failed requests: this is a bug
            failed(exc)
        finally:
            if slots is not None:
                slots.release()


def _received(
    results: "queue.Queue[object]", pending: deque[RequestTiming]
) -> Iterator[RequestTiming]:
    """The timings the sending thread hands over, one at a time, until it is done; its
    failure raised. A timing handed over stays in ``pending`` until it is yielded, so an
    interruption at a ``yield`` loses none."""
    while True:
        while pending:
            yield pending.popleft()
        item = results.get()
        if item is _DONE:
            return
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, list)
        pending.extend(item)
