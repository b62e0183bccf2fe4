"""OpenAIBackend.run and warmup against the scripted server: what each request carries, the
arrival schedule, the concurrency bound, and a run that goes on past failures."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

from llem_backend_openai import OpenAIBackend, ServerError
from llem_backend_openai.client import Endpoint
from llem_backend_openai.sender import Sender
from llem_schema import ExperimentConfig, Request, RequestTiming, WorkerContext

if TYPE_CHECKING:
    from conftest import ScriptedServer

ConfigFactory = Callable[..., ExperimentConfig]

SLACK_S = 0.05  # how late a request may reach the server after its time (slow CI machines)


def _requests(*prompts: str) -> list[Request]:
    return [Request(index=i, prompt=p) for i, p in enumerate(prompts)]


def _by_index(timings: list[RequestTiming]) -> dict[int, RequestTiming]:
    found = {t.request_index: t for t in timings}
    assert len(found) == len(timings), "a request came back twice"
    return found


# ---- what every request carries ----


def test_a_completions_request_sends_the_prompt_and_the_shared_settings(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    backend.load(make_config(max_new_tokens=24, seed=7), context)
    (timing,) = backend.run(_requests("ok 2"))
    assert timing.error is None
    (post,) = server.posts()
    assert post.path == "/v1/completions"
    assert post.body == {
        "model": "scripted-model",
        "prompt": "ok 2",
        "max_tokens": 24,
        "temperature": 0.0,
        "seed": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert post.headers["content-type"] == "application/json"
    assert "authorization" not in post.headers


def test_a_chat_request_sends_one_user_message(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    backend.load(make_config(openai={"api": "chat"}), context)
    (timing,) = backend.run(_requests("ok 3"))
    assert (timing.error, timing.output_tokens, timing.input_tokens) == (None, 3, 4)
    (post,) = server.posts()
    assert post.path == "/v1/chat/completions"
    assert post.body == {
        "model": "scripted-model",
        "messages": [{"role": "user", "content": "ok 3"}],
        "max_tokens": 16,
        "temperature": 0.0,
        "seed": 42,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_sampling_settings_ignore_eos_and_extra_body_reach_the_body(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    config = make_config(
        decoder={"mode": "sampling", "temperature": 0.7, "top_p": 0.9, "top_k": 20,
                 "ignore_eos": True},
        openai={"extra_body": {"min_tokens": 4, "top_p": 0.5, "chat_template_kwargs": {"a": 1}}},
    )  # fmt: skip
    backend.load(config, context)
    list(backend.run(_requests("ok 1")))
    (post,) = server.posts()
    assert post.body == {
        "model": "scripted-model",
        "prompt": "ok 1",
        "max_tokens": 16,
        "temperature": 0.7,
        "top_p": 0.5,  # extra_body wins over the decoder's setting
        "top_k": 20,
        "ignore_eos": True,
        "seed": 42,
        "min_tokens": 4,
        "chat_template_kwargs": {"a": 1},
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_sampling_without_top_k_sends_none(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    backend.load(make_config(decoder={"preset": "creative"}), context)
    list(backend.run(_requests("ok 1")))
    (post,) = server.posts()
    assert post.body is not None
    assert (post.body["temperature"], post.body["top_p"]) == (0.9, 0.95)
    assert "top_k" not in post.body
    assert "ignore_eos" not in post.body


def test_extra_body_cannot_turn_streaming_off(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    backend.load(make_config(openai={"extra_body": {"stream": False}}), context)
    (timing,) = backend.run(_requests("ok 2"))
    assert (timing.error, timing.output_tokens) == (None, 2)
    (post,) = server.posts()
    assert post.body is not None
    assert post.body["stream"] is True


# ---- timings and failures in a run ----


def test_a_run_returns_every_request_failed_or_not_and_goes_on_after_failures(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    backend.load(make_config(openai={"timeout_s": 0.3}), context)
    prompts = ["http500", "ok 3", "malformed", "slow", "nousage 2", "cut", "multi", "ok 1"]
    started = time.perf_counter()
    timings = _by_index(list(backend.run(_requests(*prompts))))
    assert sorted(timings) == list(range(len(prompts)))
    got = {prompts[i]: (t.error, t.output_tokens, t.input_tokens) for i, t in timings.items()}
    malformed = got["malformed"][0]
    assert malformed is not None
    assert malformed.startswith("malformed event stream: ")
    assert got == {
        "http500": ("HTTP 500: engine exploded", 0, 0),
        "ok 3": (None, 3, 4),
        "malformed": (malformed, 1, 0),
        "slow": ("timed out after 0.3 s", 0, 0),
        "nousage 2": (None, 2, 0),
        "cut": (
            "RemoteProtocolError: peer closed connection without sending complete message "
            "body (incomplete chunked read)",
            2,
            0,
        ),
        "multi": (None, 5, 5),
        "ok 1": (None, 1, 4),
    }
    for timing in timings.values():
        assert started <= timing.start_s
        assert all(timing.start_s <= t for t in timing.token_times_s)
    assert len(server.posts()) == len(prompts)


def test_timings_come_back_as_requests_complete(
    backend: OpenAIBackend, make_config: ConfigFactory, context: WorkerContext
) -> None:
    backend.load(make_config(), context)
    order = [t.request_index for t in backend.run(_requests("ok 4 100", "ok 1"))]
    assert order == [1, 0]


def test_token_times_of_a_run_are_on_the_callers_perf_counter_clock(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    backend.load(make_config(), context)
    before = time.perf_counter()
    (timing,) = backend.run(_requests("ok 3 60"))
    after = time.perf_counter()
    sent = server.post_for("ok 3 60").chunk_times_s
    assert before <= timing.start_s <= server.post_for("ok 3 60").arrived_s
    for sent_s, timed_s in zip(sent, timing.token_times_s, strict=True):
        assert sent_s <= timed_s < sent_s + SLACK_S
    assert timing.token_times_s[-1] <= after


def test_a_malformed_stream_comes_back_failed_and_the_run_goes_on(
    backend: OpenAIBackend, make_config: ConfigFactory, context: WorkerContext
) -> None:
    """A request whose stream is malformed comes back failed; no request goes missing."""
    backend.load(make_config(), context)
    timings = _by_index(list(backend.run(_requests("ok 1", "badusage", "ok 2"))))
    assert sorted(timings) == [0, 1, 2]


def _first_of_three(
    backend: OpenAIBackend, make_config: ConfigFactory, context: WorkerContext
) -> Generator[RequestTiming]:
    """A run of three requests, two due at once (one of them slow), one due at 5 s, with
    the first timing taken: the slow one is in flight, the last not yet sent."""
    backend.load(make_config(load={"request_rate": 1.0}), context)
    timings = backend.run(
        [
            Request(index=0, prompt="ok 1", scheduled_s=0.0),
            Request(index=1, prompt="ok 3 100", scheduled_s=0.0),
            Request(index=2, prompt="ok 2", scheduled_s=5.0),
        ]
    )
    assert isinstance(timings, Generator)
    assert next(timings).request_index == 0
    return timings


def test_leaving_a_run_early_sends_nothing_more_and_lets_those_in_flight_finish(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    started = time.perf_counter()
    timings = _first_of_three(backend, make_config, context)
    timings.close()  # the caller leaves the loop (an exception, Ctrl-C)
    ended = time.perf_counter()
    assert ended - started < 2.0  # not waiting for the request due at 5 s
    assert sorted(p.prompt for p in server.posts()) == ["ok 1", "ok 3 100"]
    in_flight = server.post_for("ok 3 100")
    assert len(in_flight.chunk_times_s) == 3  # it ran to its end
    assert in_flight.chunk_times_s[-1] <= ended
    time.sleep(0.1)
    assert len(server.posts()) == 2


def test_ctrl_c_sends_nothing_more_and_yields_those_in_flight_as_they_finish(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    started = time.perf_counter()
    timings = _first_of_three(backend, make_config, context)
    in_flight = timings.throw(KeyboardInterrupt())  # Ctrl-C while the harness held a timing
    assert (in_flight.request_index, in_flight.error, in_flight.output_tokens) == (1, None, 3)
    with pytest.raises(KeyboardInterrupt):
        next(timings)
    assert time.perf_counter() - started < 2.0  # not waiting for the request due at 5 s
    time.sleep(0.1)
    assert sorted(p.prompt for p in server.posts()) == ["ok 1", "ok 3 100"]


def test_the_sender_counts_the_requests_the_server_gave_usage_for(
    server: ScriptedServer,
) -> None:
    endpoint = Endpoint(
        path="/completions", model="scripted-model", chat=False, body={}, timeout_s=5.0
    )
    sender = Sender(
        lambda: httpx2.AsyncClient(base_url=server.base_url), endpoint, max_concurrency=None
    )
    timings = list(sender.send(_requests("ok 1", "nousage 2", "multi", "http500")))
    assert len(timings) == 4
    assert sender.usage_counted == 2  # ok 1 and multi; none for a failed request


def _sender(server: ScriptedServer, *, max_concurrency: int | None, grace_s: float) -> Sender:
    endpoint = Endpoint(
        path="/completions", model="scripted-model", chat=False, body={}, timeout_s=20.0
    )
    return Sender(
        lambda: httpx2.AsyncClient(base_url=server.base_url),
        endpoint,
        max_concurrency=max_concurrency,
        grace_s=grace_s,
    )


def _ctrl_c(timings: Generator[RequestTiming]) -> list[RequestTiming]:
    """Ctrl-C thrown in where the caller holds a timing: what the sender yields after it,
    before it lets the KeyboardInterrupt go."""
    drained: list[RequestTiming] = []
    try:
        drained.append(timings.throw(KeyboardInterrupt()))
        drained.extend(timings)
    except KeyboardInterrupt:
        return drained
    raise AssertionError("the sender swallowed the KeyboardInterrupt")


def _wait_for_posts(server: ScriptedServer, count: int) -> None:
    deadline = time.monotonic() + 5.0
    while len(server.posts()) < count:
        assert time.monotonic() < deadline, "the requests never reached the server"
        time.sleep(0.01)


@pytest.mark.parametrize("max_concurrency", [None, 1], ids=["unbounded", "bound-reached"])
def test_ctrl_c_after_every_request_went_waits_no_longer_than_the_grace_period(
    server: ScriptedServer, max_concurrency: int | None
) -> None:
    sender = _sender(server, max_concurrency=max_concurrency, grace_s=0.5)
    timings = sender.send(_requests("ok 1", "slow", "ok 2"))
    assert isinstance(timings, Generator)
    first = next(timings)
    assert first.error is None
    _wait_for_posts(server, 2)  # the slow one is in flight (and, with a bound, holds it)
    started = time.perf_counter()
    drained = _ctrl_c(timings)
    assert time.perf_counter() - started < 2.0  # the grace period, not the 20 s timeout
    returned = sorted(t.request_index for t in [first, *drained])
    assert returned == ([0] if max_concurrency == 1 else [0, 2])  # with a bound of 1, ok 2
    # was never sent; the slow one never finished


def test_ctrl_c_between_timings_handed_over_together_loses_none_of_them(
    server: ScriptedServer,
) -> None:
    sender = _sender(server, max_concurrency=None, grace_s=5.0)
    # four quick answers, handed over together within the first 20 ms; one slower, in flight
    timings = sender.send(_requests("ok 2 150", *["ok 1"] * 4))
    assert isinstance(timings, Generator)
    first = next(timings)
    assert first.request_index != 0
    rest = _ctrl_c(timings)
    assert sorted(t.request_index for t in [first, *rest]) == [0, 1, 2, 3, 4]


# ---- the arrival schedule ----


def test_each_request_reaches_the_server_at_its_scheduled_time(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    backend.load(make_config(load={"request_rate": 10.0}), context)
    scheduled = [0.0, 0.12, 0.15, 0.3, 0.3]
    requests = [
        Request(index=i, prompt=f"ok {i + 1}", scheduled_s=s) for i, s in enumerate(scheduled)
    ]
    started = time.perf_counter()
    timings = list(backend.run(requests))
    assert all(t.error is None for t in timings)
    for request in requests:
        assert request.scheduled_s is not None
        offset = server.post_for(request.prompt).arrived_s - started
        assert request.scheduled_s <= offset < request.scheduled_s + SLACK_S, request


def test_a_request_due_while_the_bound_is_reached_is_sent_when_one_finishes(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    backend.load(make_config(load={"request_rate": 10.0, "max_concurrency": 1}), context)
    requests = [
        Request(index=0, prompt="ok 3 100", scheduled_s=0.0),
        Request(index=1, prompt="ok 1", scheduled_s=0.05),
    ]
    list(backend.run(requests))
    first_ended = server.post_for("ok 3 100").chunk_times_s[-1]
    second = server.post_for("ok 1").arrived_s
    assert first_ended <= second < first_ended + SLACK_S


def test_max_concurrency_bounds_the_requests_in_flight_at_the_server(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    backend.load(make_config(load={"max_concurrency": 2}), context)
    timings = list(backend.run(_requests(*[f"ok 3 {20 + i}" for i in range(6)])))
    assert len(timings) == 6
    assert all(t.error is None and t.output_tokens == 3 for t in timings)
    assert server.max_in_flight == 2


def test_without_a_bound_every_request_due_is_in_flight_at_once(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    backend.load(make_config(), context)
    timings = list(backend.run(_requests(*[f"ok 2 {150 + i}" for i in range(6)])))
    assert len(timings) == 6
    assert server.max_in_flight == 6


# ---- warmup ----


@pytest.mark.parametrize(("bound", "width"), [(None, 8), (3, 3)])
def test_warmup_sends_one_round_of_the_first_requests_at_once_ignoring_the_schedule(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
    bound: int | None,
    width: int,
) -> None:
    load: dict[str, Any] = {"request_rate": 1.0, "max_concurrency": bound}
    backend.load(make_config(load=load), context)
    requests = [Request(index=i, prompt=f"ok 2 {100 + i}", scheduled_s=i * 5.0) for i in range(12)]
    started = time.perf_counter()
    timings = backend.warmup(requests)
    assert time.perf_counter() - started < 2.0  # the schedule (5 s apart) is not waited for
    assert sorted(t.request_index for t in timings) == list(range(width))
    assert all(t.error is None and t.output_tokens == 2 for t in timings)
    posts = server.posts()
    assert sorted(p.prompt for p in posts) == sorted(r.prompt for r in requests[:width])
    arrivals = [p.arrived_s for p in posts]
    assert max(arrivals) - min(arrivals) < SLACK_S
    assert server.max_in_flight == width


def test_warmup_with_fewer_requests_than_its_width_sends_them_all(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    backend.load(make_config(), context)
    timings = backend.warmup(_requests("ok 1", "ok 2"))
    assert sorted(t.request_index for t in timings) == [0, 1]
    assert len(server.posts()) == 2


# ---- the backend's state ----


def test_nothing_is_sent_before_load_or_after_unload(
    backend: OpenAIBackend,
    make_config: ConfigFactory,
    context: WorkerContext,
    server: ScriptedServer,
) -> None:
    message = "the openai backend sends nothing before load()"
    with pytest.raises(ServerError) as before:
        list(backend.run(_requests("ok 1")))
    assert str(before.value) == message
    with pytest.raises(ServerError):
        backend.warmup(_requests("ok 1"))
    backend.load(make_config(), context)
    backend.unload()
    with pytest.raises(ServerError) as after:
        list(backend.run(_requests("ok 1")))
    assert str(after.value) == message
    assert server.posts() == []


def test_the_server_side_calls_are_no_ops(
    backend: OpenAIBackend, make_config: ConfigFactory, context: WorkerContext
) -> None:
    backend.load(make_config(), context)
    assert backend.count_tokens("anything") is None
    backend.synchronize()  # returns at once: the server's work ends with its responses
    assert backend.peak_memory() is None
    assert backend.estimate_flops([]) is None
