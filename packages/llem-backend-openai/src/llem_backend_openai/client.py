"""One streamed request to an OpenAI-compatible server, timed chunk by chunk.

Every request streams (server-sent events). A token's time is the arrival of the chunk that
carries it (text, chat content, reasoning or a tool call), on ``time.perf_counter()``'s clock,
taken when the bytes holding it arrive (events that arrive together share the time). Token counts come from the server's ``usage`` (asked for with
``stream_options: {include_usage: true}``) where it sends one, else from the chunks that
carried text; when the usage counts more tokens than chunks came (a chunk carrying several),
the extra tokens are given the last chunk's time.

A request that fails is returned with its error and whatever tokens arrived before; nothing
is raised. Failing: an HTTP error status, an answer that is no event stream, the whole request
taking longer than the timeout, a dropped connection, a malformed event, an error event, and
a stream that ends before the response does (no ``[DONE]`` and no ``finish_reason``).
"""

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx2
from pydantic_core import from_json

from llem_schema import Request, RequestTiming

__all__ = ["Endpoint", "stream_request"]

_ERROR_BODY_CHARS: Final = 200
_TEXT_FIELDS: Final = ("content", "reasoning_content", "reasoning", "tool_calls")


@dataclass(frozen=True)
class Endpoint:
    """Where and how requests go: the API path, the model name, the body every request
    shares, and whether the server's text sits in ``text`` (completions) or ``delta``."""

    path: str
    model: str
    chat: bool
    body: Mapping[str, Any]
    timeout_s: float

    def payload(self, prompt: str, **override: Any) -> dict[str, Any]:
        """The JSON body of one request."""
        content: dict[str, Any] = (
            {"messages": [{"role": "user", "content": prompt}]} if self.chat else {"prompt": prompt}
        )
        return {
            "model": self.model,
            **content,
            **self.body,
            **override,
            "stream": True,
            "stream_options": {"include_usage": True},
        }


class _RequestFailedError(Exception):
    """The request failed, for the reason in the message."""


@dataclass
class _Stream:
    """What one request's event stream has said so far."""

    chat: bool
    times: list[float]
    usage: Mapping[str, Any] | None = None
    finished: bool = False

    def data(self, data: bytes, arrived_s: float) -> None:
        """One event's data (what follows ``data:``), which arrived at ``arrived_s``. Runs
        for every chunk of every request: plain ``dict`` checks (the parser makes dicts)."""
        data = data.strip()
        if data == b"[DONE]":
            self.finished = True
            return
        chunk = from_json(data)  # pydantic's parser: three times json.loads's speed here
        if type(chunk) is not dict:
            raise ValueError("an event that is not a JSON object")
        error = chunk.get("error")
        if error:
            message = error.get("message", error) if type(error) is dict else error
            raise _RequestFailedError(f"server error: {_first_line(str(message))}")
        usage = chunk.get("usage")
        if usage is not None:
            if type(usage) is not dict:
                raise ValueError("'usage' is not an object")
            self.usage = usage
        choices = chunk.get("choices") or []
        if type(choices) is not list:
            raise ValueError("'choices' is not a list")
        carried = False
        for choice in choices:
            if type(choice) is not dict:
                raise ValueError("a choice that is not an object")
            if choice.get("finish_reason"):
                self.finished = True
            if self.chat:
                delta = choice.get("delta") or {}
                if type(delta) is not dict:
                    raise ValueError("a 'delta' that is not an object")
                carried = carried or any(delta.get(field) for field in _TEXT_FIELDS)
            else:
                carried = carried or bool(choice.get("text"))
        if carried:
            self.times.append(arrived_s)


async def stream_request(
    client: httpx2.AsyncClient, endpoint: Endpoint, request: Request
) -> tuple[RequestTiming, bool]:
    """Send ``request``, read its stream, and return its timing and whether the server gave
    the token counts (``usage``)."""
    stream = _Stream(chat=endpoint.chat, times=[])
    error: str | None = None
    start_s = time.perf_counter()
    try:
        async with asyncio.timeout(endpoint.timeout_s):
            await _read(client, endpoint, request, stream)
    except (TimeoutError, httpx2.TimeoutException):
        error = f"timed out after {endpoint.timeout_s:g} s"
    except _RequestFailedError as exc:
        error = str(exc)
    except httpx2.HTTPError as exc:
        error = f"{type(exc).__name__}: {_first_line(str(exc)) or 'connection failed'}"
    except (ValueError, TypeError, AttributeError) as exc:  # a parse error is a ValueError
        error = f"malformed event stream: {_first_line(str(exc))}"
    times = stream.times
    counted = _count(stream.usage, "completion_tokens") if error is None else None
    output_tokens = len(times) if counted is None else max(counted, len(times))
    if len(times) < output_tokens:  # several tokens in a chunk: they arrived with the last
        times.extend([times[-1] if times else time.perf_counter()] * (output_tokens - len(times)))
    timing = RequestTiming(
        request_index=request.index,
        input_tokens=_count(stream.usage, "prompt_tokens") or 0,
        output_tokens=output_tokens,
        start_s=start_s,
        token_times_s=times,
        error=error,
    )
    return timing, counted is not None


async def _read(
    client: httpx2.AsyncClient, endpoint: Endpoint, request: Request, stream: _Stream
) -> None:
    async with client.stream(
        "POST", endpoint.path, json=endpoint.payload(request.prompt)
    ) as response:
        if response.status_code != 200:
            body = (await response.aread()).decode("utf-8", errors="replace")
            raise _RequestFailedError(f"HTTP {response.status_code}: {_first_line(body)}")
        kind = response.headers.get("content-type", "")
        if "text/event-stream" not in kind:
            raise _RequestFailedError(
                f"the server answered without streaming (content-type {kind or 'none'})"
            )
        # Lines split here rather than by aiter_lines: a tenth of the client's time at a
        # thousand requests a second (bench/bench_load_generator.py). Read to the end: the
        # connection is reused only once its body has been read.
        rest = b""
        async for received in response.aiter_bytes():
            arrived_s = time.perf_counter()
            lines, rest = _lines(rest + received)
            for line in lines:
                if line.startswith(b"data:"):
                    stream.data(line[5:], arrived_s)
        if rest.startswith(b"data:"):  # the last line, without its line end
            stream.data(rest[5:], time.perf_counter())
    if not stream.finished:
        raise _RequestFailedError(
            "the stream ended before the response did (no [DONE], no finish_reason)"
        )


def _lines(data: bytes) -> tuple[list[bytes], bytes]:
    """The whole lines of ``data`` and what follows them. A line ends in CRLF, LF or CR, as
    server-sent events allow; a CR at the very end waits for the next bytes (it may be the
    first half of a CRLF)."""
    end = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1))
    if end < 0:
        return [], data
    return data[: end + 1].splitlines(), data[end + 1 :]


def _count(usage: Mapping[str, Any] | None, key: str) -> int | None:
    value = None if usage is None else usage.get(key)
    return value if isinstance(value, int) and value >= 0 else None


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:_ERROR_BODY_CHARS] if lines else ""
