"""Prompts for an experiment: the built-in set, synthetic prompts, or a local JSONL/CSV file.

The harness prepares them and hands every backend the same requests; a backend only counts
tokens (for synthetic prompts of an exact length) and truncates to ``max_input_tokens``.
:func:`prompt_warnings` says when it will: a ``prompts_truncated`` warning, counted with
the backend's own tokenizer before the window opens.

Selection (:func:`select_prompts`) is the same for the built-in set and files: the source is
shuffled with ``random.Random(seed)`` and the first ``n`` are taken. When the source holds
fewer than ``n`` prompts it is repeated, each pass in a fresh seeded order, so every prompt
is used before any is used twice and the same seed always gives the same list. Synthetic
prompts are generated directly, ``n`` distinct ones.
"""

import csv
import io
import json
import logging
import random
import re
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Final

from llem_schema import ConfigError, ExperimentConfig, MeasurementWarning, builtin_prompts
from llem_schema.config import BUILTIN_PROMPTS, SYNTHETIC_PROMPTS

__all__ = [
    "PromptSourceError",
    "TokenCounter",
    "check_prompts",
    "load_prompts",
    "prompt_warnings",
    "read_prompt_file",
    "select_prompts",
    "synthetic_prompts",
]

logger = logging.getLogger(__name__)

TokenCounter = Callable[[str], int | None]
"""Tokens a prompt becomes, special tokens included, as the backend counts input tokens
(:meth:`~llem_schema.InferenceBackend.count_tokens`); None where it cannot count."""


class PromptSourceError(ConfigError):
    """Prompts could not be read: a missing or empty file, a missing column, a bad JSON line,
    or synthetic prompts a backend cannot count tokens for."""

    def __init__(self, message: str) -> None:
        super().__init__(message, key="prompts.source")


_WORD = re.compile(r"[a-z]+")
_FILLERS: Final = ("a", "I", "the", "of", "x", "and")


def select_prompts(pool: Sequence[str], n: int, *, seed: int) -> list[str]:
    """``n`` prompts from ``pool``: seeded shuffles of the whole pool, repeated as needed."""
    if not pool:
        raise PromptSourceError("no prompts to choose from")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    rng = random.Random(seed)
    chosen: list[str] = []
    while len(chosen) < n:
        order = list(pool)
        rng.shuffle(order)
        chosen.extend(order[: n - len(chosen)])
    if n > len(pool):
        logger.info("prompt source has %d prompts; repeating them to reach n=%d", len(pool), n)
    return chosen


def read_prompt_file(path: Path | str, *, column: str = "prompt") -> list[str]:
    """Every prompt in a ``.jsonl`` file (field ``column`` of each line's object) or a ``.csv``
    file (column ``column``), in file order. Blank JSONL lines are skipped."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise PromptSourceError(f"prompt file {path}: expected a .jsonl or .csv file")
    if not path.is_file():
        raise PromptSourceError(
            f"prompt file {path} does not exist; check prompts.source (a .jsonl or .csv path)"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptSourceError(
            f"prompt file {path}: cannot read it as UTF-8 text: {exc}"
        ) from None
    prompts = (
        _read_jsonl(path, text, column) if suffix == ".jsonl" else _read_csv(path, text, column)
    )
    if not prompts:
        raise PromptSourceError(f"prompt file {path} holds no prompts (it is empty)")
    return prompts


def _read_jsonl(path: Path, text: str, column: str) -> list[str]:
    prompts: list[str] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptSourceError(
                f"prompt file {path}: line {line_number} is not valid JSON ({exc.msg})"
            ) from None
        if not isinstance(record, dict):
            raise PromptSourceError(f"prompt file {path}: line {line_number} is not a JSON object")
        if column not in record:
            fields = ", ".join(sorted(record)) or "none"
            raise PromptSourceError(
                f"prompt file {path}: line {line_number} has no field '{column}' "
                f"(fields: {fields}); set prompts.column to the field holding the prompt"
            )
        prompts.append(_prompt_text(path, line_number, column, record[column]))
    return prompts


def _read_csv(path: Path, text: str, column: str) -> list[str]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None:
        return []
    if column not in reader.fieldnames:
        columns = ", ".join(reader.fieldnames)
        raise PromptSourceError(
            f"prompt file {path} has no column '{column}' (columns: {columns}); "
            "set prompts.column to the column holding the prompt"
        )
    return [
        _prompt_text(path, reader.line_num, column, row[column])
        for row in reader
        if any(value for value in row.values())
    ]


def _prompt_text(path: Path, line_number: int, column: str, value: object) -> str:
    if not isinstance(value, str):
        raise PromptSourceError(
            f"prompt file {path}: line {line_number}: '{column}' is not a string"
        )
    if not value.strip():
        raise PromptSourceError(f"prompt file {path}: line {line_number}: '{column}' is empty")
    return value


@cache
def _word_pool() -> tuple[str, ...]:
    words = {word for prompt in builtin_prompts() for word in _WORD.findall(prompt.lower())}
    return tuple(sorted(words))


def synthetic_prompts(
    count_tokens: Callable[[str], int], n: int, *, input_tokens: int, seed: int
) -> list[str]:
    """``n`` prompts of random English words, each exactly ``input_tokens`` tokens long by
    ``count_tokens`` (special tokens included); deterministic for ``seed``. Each prompt is
    drawn independently (seeded by ``seed`` and its index), so beyond a few tokens they are
    distinct; very short ones may repeat."""
    base = count_tokens("")
    if input_tokens <= base:
        raise PromptSourceError(
            f"prompts.synthetic_input_tokens ({input_tokens}) must exceed the {base} special "
            "token(s) the tokenizer adds to every prompt"
        )
    return [
        _synthetic_prompt(count_tokens, input_tokens, random.Random(f"{seed}:{index}"))
        for index in range(n)
    ]


def _synthetic_prompt(count_tokens: Callable[[str], int], target: int, rng: random.Random) -> str:
    pool = _word_pool()
    words: list[str] = []
    count = count_tokens("")
    while count < target:
        # Grow by chunks of words while far from the target (halving a chunk that would
        # overshoot), then word by word; one-token fillers end the search.
        chunk = (target - count) // 4
        while chunk > 1:
            candidates = [rng.choice(pool) for _ in range(chunk)]
            new_count = count_tokens(" ".join([*words, *candidates]))
            if new_count <= target:
                break
            chunk //= 2
        else:
            candidates = _fitting_word(count_tokens, words, target, rng, pool)
            new_count = count_tokens(" ".join([*words, *candidates]))
        words.extend(candidates)
        count = new_count
    return " ".join(words)


def _fitting_word(
    count_tokens: Callable[[str], int],
    words: list[str],
    target: int,
    rng: random.Random,
    pool: Sequence[str],
) -> list[str]:
    tries = [rng.choice(pool) for _ in range(32)]
    for word in (*tries, *_FILLERS):
        if count_tokens(" ".join([*words, word])) <= target:
            return [word]
    raise PromptSourceError(
        f"cannot build a synthetic prompt of exactly {target} tokens with this tokenizer"
    )


def load_prompts(
    config: ExperimentConfig, *, count_tokens: TokenCounter | None = None
) -> list[str]:
    """The ``config.n`` prompts of ``config.prompts``, in measurement order.

    ``count_tokens`` is needed for synthetic prompts only: the backend's
    :meth:`~llem_schema.InferenceBackend.count_tokens` once its model is loaded.
    """
    source = config.prompts.source
    if source == BUILTIN_PROMPTS:
        return select_prompts(builtin_prompts(), config.n, seed=config.seed)
    if source == SYNTHETIC_PROMPTS:
        return synthetic_prompts(
            _exact(count_tokens, config.backend),
            config.n,
            input_tokens=config.prompts.synthetic_input_tokens,
            seed=config.seed,
        )
    pool = read_prompt_file(source, column=config.prompts.column)
    return select_prompts(pool, config.n, seed=config.seed)


def check_prompts(config: ExperimentConfig) -> None:
    """Read ``config``'s prompts as a run will (a :class:`PromptSourceError` for a file that
    is missing, empty or malformed), before anything loads; synthetic prompts need the loaded
    model's tokenizer and are made then."""
    if config.prompts.source != SYNTHETIC_PROMPTS:
        load_prompts(config)


def _exact(count_tokens: TokenCounter | None, backend: str) -> Callable[[str], int]:
    """``count_tokens`` where it counts; a :class:`PromptSourceError` where it cannot."""
    cannot = PromptSourceError(
        f"synthetic prompts need the backend to count tokens, and backend {backend!r} cannot; "
        "use prompts.source 'builtin' or a prompt file"
    )
    if count_tokens is None:
        raise cannot

    def counted(text: str) -> int:
        tokens = count_tokens(text)
        if tokens is None:
            raise cannot
        return tokens

    return counted


def prompt_warnings(
    config: ExperimentConfig, prompts: Sequence[str], *, count_tokens: TokenCounter | None
) -> list[MeasurementWarning]:
    """A ``prompts_truncated`` warning when any of ``prompts`` (those :func:`load_prompts`
    gave) is longer than ``config.max_input_tokens`` by ``count_tokens``, which the backend
    then cuts to it; none where the backend cannot count tokens. Each distinct prompt is
    counted once."""
    if count_tokens is None:
        return []
    counts = {prompt: count_tokens(prompt) for prompt in dict.fromkeys(prompts)}
    lengths = [counts[prompt] for prompt in prompts]
    limit = config.max_input_tokens
    over = [length for length in lengths if length is not None and length > limit]
    if not over:
        return []
    source = config.prompts.source
    return [
        MeasurementWarning.of(
            "prompts_truncated",
            f"{len(over)} of the {len(prompts)} prompts ({source}) are longer than "
            f"max_input_tokens ({limit} tokens) and were cut to it (the longest had "
            f"{max(over)}): raise max_input_tokens to send them whole",
            truncated=len(over),
            prompts=len(prompts),
            max_input_tokens=limit,
            longest_tokens=max(over),
            source=source,
        )
    ]
