"""The streamer on its own, fed lists the way generate feeds CPU tensors."""

import time

import pytest

from llem_backend_pytorch import TokenTimer


class FakeTensor:
    """What the streamer reads of a CPU tensor: ``ndim`` and ``tolist``."""

    def __init__(self, values: list[int] | list[list[int]]) -> None:
        self._values = values
        self.ndim = 2 if values and isinstance(values[0], list) else 1

    def tolist(self) -> object:
        return self._values


def test_prompt_put_is_ignored_and_rows_stop_at_their_own_eos() -> None:
    timer = TokenTimer(3, eos_token_ids={2})
    before = time.perf_counter()
    timer.put(FakeTensor([[1, 5, 6], [0, 1, 7], [1, 8, 9]]))  # the prompt
    timer.put(FakeTensor([10, 2, 11]))  # row 1 ends with EOS
    timer.put(FakeTensor([2, 0, 12]))  # row 0 ends; row 1 only padded now
    timer.put(FakeTensor([0, 0, 13]))
    timer.end()
    assert timer.ended
    assert timer.token_ids == [[10, 2], [2], [11, 12, 13]]
    assert [len(times) for times in timer.token_times_s] == [2, 1, 3]
    assert all(before <= t for times in timer.token_times_s for t in times)
    assert timer.token_times_s[2] == sorted(timer.token_times_s[2])


def test_without_eos_ids_every_step_counts() -> None:
    timer = TokenTimer(1, eos_token_ids=())
    for token in (2, 2, 2):
        timer.put(FakeTensor([token]))
    assert timer.token_ids == [[2, 2, 2]]


def test_a_step_of_the_wrong_width_is_an_error() -> None:
    timer = TokenTimer(2, eos_token_ids={2})
    with pytest.raises(ValueError, match="streamer got 3 tokens for 2 rows"):
        timer.put(FakeTensor([1, 2, 3]))
