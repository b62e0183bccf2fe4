"""Per-request token timestamps, taken as ``generate`` hands each new token to its streamer.

transformers calls ``streamer.put(tokens.cpu())`` once per decoding step, right after the
step's tokens were selected; the ``.cpu()`` copy waits for the device, so the timestamp taken
on entry to :meth:`TokenTimer.put` is when the token became available to the host. Before
the first step, ``generate`` also puts the (2-D) prompt ids; that call is ignored.
"""

import time
from collections.abc import Collection, Sequence
from typing import Protocol

__all__ = ["TokenTimer"]


class _HostTensor(Protocol):
    """What :meth:`TokenTimer.put` needs of a CPU tensor (``torch.Tensor`` satisfies it)."""

    @property
    def ndim(self) -> int: ...

    def tolist(self) -> object: ...


class TokenTimer:
    """A ``generate`` streamer recording, per batch row, one ``time.perf_counter()`` per token.

    A row stops collecting after it produced one of ``eos_token_ids`` (that token is counted:
    it was generated like any other); later steps only pad it. With ``ignore_eos`` pass an
    empty collection, so every row counts every step.
    """

    def __init__(self, batch_size: int, *, eos_token_ids: Collection[int]) -> None:
        self._eos = frozenset(eos_token_ids)
        self._finished = [False] * batch_size
        self.token_times_s: list[list[float]] = [[] for _ in range(batch_size)]
        self.token_ids: list[list[int]] = [[] for _ in range(batch_size)]
        self.ended = False

    def put(self, value: _HostTensor) -> None:
        """Record the step's tokens (1-D, one per row); the 2-D prompt put is skipped."""
        now_s = time.perf_counter()
        if value.ndim != 1:
            return
        tokens = value.tolist()
        assert isinstance(tokens, list)
        self._record(tokens, now_s)

    def _record(self, tokens: Sequence[object], now_s: float) -> None:
        if len(tokens) != len(self._finished):
            raise ValueError(f"streamer got {len(tokens)} tokens for {len(self._finished)} rows")
        for row, token in enumerate(tokens):
            if self._finished[row]:
                continue
            assert isinstance(token, int)
            self.token_times_s[row].append(now_s)
            self.token_ids[row].append(token)
            if token in self._eos:
                self._finished[row] = True

    def end(self) -> None:
        """Called by ``generate`` once generation is over."""
        self.ended = True
