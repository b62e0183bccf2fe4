"""stream_request against the scripted server: token times, token counts, and each way a
request fails, returned with its error and the tokens that arrived before."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx2
import pytest

from llem_backend_openai.client import Endpoint, stream_request
from llem_schema import Request, RequestTiming

if TYPE_CHECKING:
    from conftest import ScriptedServer

SLACK_S = 0.05  # how late a token may be timed after the server wrote it (slow CI machines)


def _endpoint(*, chat: bool = False, timeout_s: float = 5.0) -> Endpoint:
    return Endpoint(
        path="/chat/completions" if chat else "/completions",
        model="scripted-model",
        chat=chat,
        body={"max_tokens": 16},
        timeout_s=timeout_s,
    )


def _stream(
    server: ScriptedServer, prompt: str, *, chat: bool = False, timeout_s: float = 5.0
) -> tuple[RequestTiming, bool]:
    async def go() -> tuple[RequestTiming, bool]:
        async with httpx2.AsyncClient(base_url=server.base_url) as client:
            endpoint = _endpoint(chat=chat, timeout_s=timeout_s)
            return await stream_request(client, endpoint, Request(index=7, prompt=prompt))

    return asyncio.run(go())


@pytest.mark.parametrize("chat", [False, True], ids=["completions", "chat"])
def test_each_chunk_is_timed_when_it_arrives_on_the_perf_counter_clock(
    server: ScriptedServer, chat: bool
) -> None:
    before = time.perf_counter()
    timing, counted = _stream(server, "ok 3 80", chat=chat)
    after = time.perf_counter()
    sent = server.post_for("ok 3 80").chunk_times_s
    assert len(sent) == 3
    assert timing.request_index == 7
    assert timing.error is None
    assert counted is True
    assert timing.output_tokens == 3
    assert before <= timing.start_s <= server.post_for("ok 3 80").arrived_s
    assert len(timing.token_times_s) == 3
    for sent_s, timed_s in zip(sent, timing.token_times_s, strict=True):
        assert sent_s <= timed_s < sent_s + SLACK_S  # its own chunk, not a later one
    assert timing.token_times_s == sorted(timing.token_times_s)
    assert timing.token_times_s[-1] <= after


def test_events_cut_mid_line_with_crlf_ends_are_timed_when_their_line_is_whole(
    server: ScriptedServer,
) -> None:
    timing, counted = _stream(server, "split 3")
    assert timing.error is None
    assert counted is True
    assert timing.output_tokens == 3
    sent = server.post_for("split 3").chunk_times_s
    for sent_s, timed_s in zip(sent, timing.token_times_s, strict=True):
        assert sent_s <= timed_s < sent_s + SLACK_S  # the second piece, not the first


def test_output_and_input_tokens_come_from_usage_when_the_server_gives_it(
    server: ScriptedServer,
) -> None:
    timing, counted = _stream(server, "ok 4")
    assert (timing.output_tokens, timing.input_tokens, counted) == (4, len("ok 4"), True)


@pytest.mark.parametrize("chat", [False, True], ids=["completions", "chat"])
def test_without_usage_the_chunks_that_carried_text_are_counted_and_input_is_zero(
    server: ScriptedServer, chat: bool
) -> None:
    # the chat stream's role chunk and both streams' empty finish chunk carry no text
    timing, counted = _stream(server, "nousage 3", chat=chat)
    assert (timing.output_tokens, timing.input_tokens, counted) == (3, 0, False)
    assert timing.error is None
    sent = server.post_for("nousage 3").chunk_times_s
    assert all(s <= t for s, t in zip(sent, timing.token_times_s, strict=True))


def test_tokens_the_usage_counts_beyond_the_chunks_get_the_last_chunks_time(
    server: ScriptedServer,
) -> None:
    timing, counted = _stream(server, "multi")
    assert (timing.output_tokens, timing.input_tokens, counted) == (5, len("multi"), True)
    first, second, third, *surplus = timing.token_times_s
    assert first <= second <= third
    assert surplus == [third, third]
    assert server.post_for("multi").chunk_times_s[2] <= third


def test_a_usage_counting_fewer_tokens_than_chunks_is_overruled_by_the_chunks(
    server: ScriptedServer,
) -> None:
    timing, counted = _stream(server, "under")
    assert (timing.output_tokens, len(timing.token_times_s), counted) == (4, 4, True)


def test_an_http_error_is_the_status_and_the_first_line_of_the_body(
    server: ScriptedServer,
) -> None:
    timing, counted = _stream(server, "http500")
    assert timing.error == "HTTP 500: engine exploded"
    assert (timing.output_tokens, timing.token_times_s, timing.input_tokens) == (0, [], 0)
    assert timing.request_index == 7
    assert counted is False


def test_a_request_past_the_timeout_fails_as_timed_out(server: ScriptedServer) -> None:
    started = time.perf_counter()
    timing, counted = _stream(server, "slow", timeout_s=0.3)
    assert timing.error == "timed out after 0.3 s"
    assert 0.3 <= time.perf_counter() - started < 3.0
    assert (timing.output_tokens, counted) == (0, False)


def test_a_stream_that_stalls_times_out_with_the_tokens_that_came(
    server: ScriptedServer,
) -> None:
    timing, counted = _stream(server, "stall", timeout_s=0.3)
    assert timing.error == "timed out after 0.3 s"
    assert (timing.output_tokens, counted) == (1, False)
    assert timing.token_times_s[0] >= server.post_for("stall").chunk_times_s[0]


def test_an_event_that_is_not_json_is_a_malformed_stream_keeping_the_tokens_before(
    server: ScriptedServer,
) -> None:
    timing, counted = _stream(server, "malformed")
    assert timing.error == "malformed event stream: key must be a string at line 1 column 2"
    assert (timing.output_tokens, len(timing.token_times_s), counted) == (1, 1, False)


def test_an_event_that_is_not_a_json_object_is_a_malformed_stream(
    server: ScriptedServer,
) -> None:
    timing, _ = _stream(server, "array")
    assert timing.error == "malformed event stream: an event that is not a JSON object"
    assert timing.output_tokens == 1


def test_a_connection_cut_mid_stream_is_an_error_keeping_the_tokens_that_arrived(
    server: ScriptedServer,
) -> None:
    timing, counted = _stream(server, "cut")
    assert timing.error == (
        "RemoteProtocolError: peer closed connection without sending complete message body "
        "(incomplete chunked read)"
    )
    assert (timing.output_tokens, len(timing.token_times_s), counted) == (2, 2, False)
    sent = server.post_for("cut").chunk_times_s
    assert all(s <= t for s, t in zip(sent, timing.token_times_s, strict=True))


def test_a_stream_ending_with_a_finish_reason_but_no_done_is_complete(
    server: ScriptedServer,
) -> None:
    # transformers serve ends its streams so: the usage chunk carries the finish reason
    timing, counted = _stream(server, "nodoneok 3")
    assert (timing.error, timing.output_tokens, timing.input_tokens, counted) == (
        None,
        3,
        len("nodoneok 3"),
        True,
    )


def test_a_stream_cut_where_the_body_ends_at_the_close_is_an_error(
    server: ScriptedServer,
) -> None:
    """Over a body that ends when the connection closes, a server dying mid-stream looks like
    an ended stream; no ``[DONE]`` and no ``finish_reason`` came, so the request failed."""
    timing, counted = _stream(server, "nodone")
    assert (timing.output_tokens, len(timing.token_times_s), counted) == (2, 2, False)
    assert timing.error is not None


def test_nothing_listening_is_a_connection_error(unused_port: int) -> None:
    async def go() -> RequestTiming:
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{unused_port}/v1") as client:
            timing, _ = await stream_request(client, _endpoint(), Request(index=0, prompt="x"))
            return timing

    timing = asyncio.run(go())
    assert timing.error is not None
    assert timing.error.startswith("ConnectError: ")
    assert "\n" not in timing.error
    assert timing.output_tokens == 0


def test_an_error_event_inside_the_stream_fails_the_request(
    server: ScriptedServer,
) -> None:
    """vLLM reports a failure mid-stream as ``data: {"error": {...}}`` then ``[DONE]``: the
    request failed, with the tokens that came before."""
    timing, counted = _stream(server, "errorevent")
    assert timing.output_tokens == 1
    assert counted is False
    assert timing.error == "server error: CUDA out of memory"


def test_an_event_whose_fields_have_the_wrong_type_is_a_malformed_stream(
    server: ScriptedServer,
) -> None:
    """A ``usage`` that is no object is a malformed stream: the request is returned failed,
    nothing is raised."""
    timing, counted = _stream(server, "badusage")
    assert timing.error is not None
    assert timing.error.startswith("malformed event stream")
    assert (timing.output_tokens, counted) == (1, False)


@pytest.mark.parametrize(
    ("data", "lines", "rest"),
    [
        (b"data: 1\n\ndata: 2\n", [b"data: 1", b"", b"data: 2"], b""),
        (b"data: 1\r\n\r\ndata: 2", [b"data: 1", b""], b"data: 2"),
        (b"data: 1\r\rdata: 2\r", [b"data: 1", b""], b"data: 2\r"),  # bare CR; a CR held back
        (b"data: 1\r", [], b"data: 1\r"),  # it may be half of a CRLF
        (b"\ndata: 2", [b""], b"data: 2"),
        (b"no line end yet", [], b"no line end yet"),
    ],
)
def test_lines_end_in_crlf_lf_or_cr(data: bytes, lines: list[bytes], rest: bytes) -> None:
    from llem_backend_openai.client import _lines

    assert _lines(data) == (lines, rest)
