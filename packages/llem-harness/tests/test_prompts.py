"""Prompt sources: the built-in set, synthetic prompts, and JSONL/CSV files."""

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest

from llem_harness.errors import EXIT_USAGE, exit_code_for
from llem_harness.prompts import (
    PromptSourceError,
    load_prompts,
    prompt_warnings,
    read_prompt_file,
    select_prompts,
    synthetic_prompts,
)
from llem_schema import WARNING_CODES, ConfigError, ExperimentConfig, builtin_prompts

TokenCount = Callable[[str], int]


def words_count(text: str) -> int:
    """A stand-in tokenizer: one special token, then a token per 5 letters of each word
    (rounded up), so words of different lengths take different counts."""
    return 1 + sum(-(-len(word) // 5) for word in text.split())


def test_the_builtin_set_ships_in_the_schema_and_is_large_and_varied() -> None:
    assert (resources.files("llem_schema") / "prompts.jsonl").is_file()
    prompts = builtin_prompts()
    assert len(prompts) >= 200
    assert len(set(prompts)) == len(prompts)
    words = sorted(len(prompt.split()) for prompt in prompts)
    assert words[0] <= 4  # a few words
    assert words[-1] >= 300  # several paragraphs
    assert sum(1 for count in words if count >= 100) >= 30
    assert sum(1 for prompt in prompts if "\n\n" in prompt) >= 30
    assert sum(1 for prompt in prompts if "Python" in prompt or "SQL" in prompt) >= 5


def test_selection_is_deterministic_for_the_seed_and_cycles_past_the_pool() -> None:
    pool = [f"prompt {i}" for i in range(10)]
    assert select_prompts(pool, 5, seed=1) == select_prompts(pool, 5, seed=1)
    assert select_prompts(pool, 5, seed=1) != select_prompts(pool, 5, seed=2)
    assert len(set(select_prompts(pool, 10, seed=1))) == 10
    chosen = select_prompts(pool, 25, seed=3)
    assert len(chosen) == 25
    assert sorted(chosen[:10]) == sorted(pool)  # every prompt once before any repeats
    assert sorted(chosen[10:20]) == sorted(pool)
    assert chosen[:10] != chosen[10:20]


def test_load_prompts_builtin_takes_n_by_seed() -> None:
    config = ExperimentConfig(n=30, seed=5)
    chosen = load_prompts(config)
    assert len(chosen) == 30
    assert chosen == load_prompts(config)
    assert set(chosen) <= set(builtin_prompts())
    assert len(load_prompts(ExperimentConfig(n=500))) == 500


def check_synthetic(count: TokenCount, length: int) -> None:
    made = synthetic_prompts(count, 5, input_tokens=length, seed=3)
    assert [count(prompt) for prompt in made] == [length] * 5
    if length >= 17:
        assert len(set(made)) == 5
    assert made == synthetic_prompts(count, 5, input_tokens=length, seed=3)
    if length >= 17:
        assert made != synthetic_prompts(count, 5, input_tokens=length, seed=4)


@pytest.mark.parametrize("length", [2, 3, 17, 128, 300])
def test_synthetic_prompts_have_exactly_the_asked_token_count(
    tiny_count_tokens: TokenCount, length: int
) -> None:
    check_synthetic(tiny_count_tokens, length)


@pytest.mark.parametrize("length", [2, 3, 17, 128, 300])
def test_synthetic_prompts_need_only_a_token_count(length: int) -> None:
    check_synthetic(words_count, length)


def test_synthetic_prompts_through_the_config(tiny_count_tokens: TokenCount) -> None:
    count = tiny_count_tokens
    config = ExperimentConfig.model_validate(
        {"n": 3, "prompts": {"source": "synthetic", "synthetic_input_tokens": 40}}
    )
    assert [count(prompt) for prompt in load_prompts(config, count_tokens=count)] == [40] * 3
    with pytest.raises(PromptSourceError, match=r"must exceed the 1 special token\(s\)"):
        synthetic_prompts(count, 1, input_tokens=1, seed=0)


def test_synthetic_prompts_from_a_backend_that_cannot_count_are_a_config_error() -> None:
    config = ExperimentConfig.model_validate(
        {"n": 3, "prompts": {"source": "synthetic", "synthetic_input_tokens": 40}}
    )
    assert [words_count(p) for p in load_prompts(config, count_tokens=words_count)] == [40] * 3
    cannot = (
        "synthetic prompts need the backend to count tokens, and backend 'pytorch' cannot; "
        "use prompts.source 'builtin' or a prompt file"
    )

    def uncounted(text: str) -> int | None:
        return None

    for count_tokens in (None, uncounted):
        with pytest.raises(PromptSourceError) as caught:
            load_prompts(config, count_tokens=count_tokens)
        assert str(caught.value) == cannot
        assert isinstance(caught.value, ConfigError)
        assert caught.value.key == "prompts.source"
        assert exit_code_for(caught.value) == EXIT_USAGE


def test_too_few_synthetic_tokens_is_a_prompt_source_error() -> None:
    with pytest.raises(PromptSourceError) as caught:
        synthetic_prompts(words_count, 1, input_tokens=1, seed=0)
    assert str(caught.value) == (
        "prompts.synthetic_input_tokens (1) must exceed the 1 special token(s) the tokenizer "
        "adds to every prompt"
    )
    assert exit_code_for(caught.value) == EXIT_USAGE


def test_jsonl_and_csv_files_are_read_by_column(tmp_path: Path) -> None:
    jsonl = tmp_path / "prompts.jsonl"
    jsonl.write_text('{"text": "first", "id": 1}\n\n{"text": "second, with a comma"}\n')
    assert read_prompt_file(jsonl, column="text") == ["first", "second, with a comma"]
    csv_file = tmp_path / "prompts.csv"
    csv_file.write_text('id,question\n1,"Why, exactly?"\n2,"Two\nlines"\n', encoding="utf-8")
    assert read_prompt_file(csv_file, column="question") == ["Why, exactly?", "Two\nlines"]
    config = ExperimentConfig.model_validate(
        {"n": 5, "seed": 0, "prompts": {"source": str(csv_file), "column": "question"}}
    )
    chosen = load_prompts(config)
    assert len(chosen) == 5
    assert set(chosen) == {"Why, exactly?", "Two\nlines"}


def _error(path: Path, column: str = "prompt") -> str:
    with pytest.raises(PromptSourceError) as caught:
        read_prompt_file(path, column=column)
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.key == "prompts.source"
    assert exit_code_for(caught.value) == EXIT_USAGE
    return message


def test_prompt_file_errors_say_what_and_where(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    assert _error(missing) == (
        f"prompt file {missing} does not exist; check prompts.source (a .jsonl or .csv path)"
    )
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert _error(empty) == f"prompt file {empty} holds no prompts (it is empty)"
    empty_csv = tmp_path / "empty.csv"
    empty_csv.write_text("")
    assert _error(empty_csv) == f"prompt file {empty_csv} holds no prompts (it is empty)"
    header_only = tmp_path / "header.csv"
    header_only.write_text("prompt\n")
    assert _error(header_only) == f"prompt file {header_only} holds no prompts (it is empty)"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": "broken\n')
    assert _error(bad) == (
        f"prompt file {bad}: line 2 is not valid JSON (Unterminated string starting at)"
    )
    not_object = tmp_path / "list.jsonl"
    not_object.write_text('["a"]\n')
    assert _error(not_object) == f"prompt file {not_object}: line 1 is not a JSON object"
    no_field = tmp_path / "nofield.jsonl"
    no_field.write_text('{"prompt": "a"}\n{"text": "b", "id": 2}\n')
    assert _error(no_field) == (
        f"prompt file {no_field}: line 2 has no field 'prompt' (fields: id, text); "
        "set prompts.column to the field holding the prompt"
    )
    no_column = tmp_path / "nocolumn.csv"
    no_column.write_text("id,text\n1,hello\n")
    assert _error(no_column) == (
        f"prompt file {no_column} has no column 'prompt' (columns: id, text); "
        "set prompts.column to the column holding the prompt"
    )
    blank = tmp_path / "blank.csv"
    blank.write_text("id,prompt\n1,hello\n2,\n")
    assert _error(blank) == f"prompt file {blank}: line 3: 'prompt' is empty"
    number = tmp_path / "number.jsonl"
    number.write_text('{"prompt": 5}\n')
    assert _error(number) == f"prompt file {number}: line 1: 'prompt' is not a string"
    other = tmp_path / "prompts.txt"
    other.write_text("hello\n")
    assert _error(other) == f"prompt file {other}: expected a .jsonl or .csv file"


def test_builtin_prompts_longer_than_max_input_tokens_are_a_coded_warning(
    tiny_count_tokens: TokenCount,
) -> None:
    """Some built-in prompts exceed the default 512 tokens: the backend cuts them, and the
    result says so instead of measuring shorter prompts silently."""
    config = ExperimentConfig(n=len(builtin_prompts()))
    assert config.max_input_tokens == 512
    prompts = load_prompts(config, count_tokens=tiny_count_tokens)
    lengths = [tiny_count_tokens(prompt) for prompt in prompts]
    over = [length for length in lengths if length > 512]
    assert over  # the reproduction: the built-in set does not fit the default

    [warning] = prompt_warnings(config, prompts, count_tokens=tiny_count_tokens)

    assert warning.code == "prompts_truncated"
    assert "prompts_truncated" in WARNING_CODES
    assert warning.message == (
        f"{len(over)} of the {len(prompts)} prompts (builtin) are longer than "
        f"max_input_tokens (512 tokens) and were cut to it (the longest had {max(over)}): "
        "raise max_input_tokens to send them whole"
    )
    assert warning.figures == {
        "truncated": len(over),
        "prompts": len(prompts),
        "max_input_tokens": 512,
        "longest_tokens": max(over),
        "source": "builtin",
    }


def test_truncation_counts_every_prompt_sent_and_each_distinct_one_once() -> None:
    config = ExperimentConfig(n=5, max_input_tokens=3)
    prompts = ["short", "a much longer prompt text", "short", "a much longer prompt text", "ok"]
    counted: list[str] = []

    def count(text: str) -> int:
        counted.append(text)
        return words_count(text)

    [warning] = prompt_warnings(config, prompts, count_tokens=count)
    assert sorted(counted) == sorted(set(prompts))
    assert warning.message == (
        "2 of the 5 prompts (builtin) are longer than max_input_tokens (3 tokens) and were "
        "cut to it (the longest had 8): raise max_input_tokens to send them whole"
    )


def test_no_truncation_warning_when_every_prompt_fits_or_tokens_cannot_be_counted() -> None:
    prompts = load_prompts(ExperimentConfig(n=30, seed=5))
    longest = max(words_count(prompt) for prompt in prompts)
    fits = ExperimentConfig(n=30, seed=5, max_input_tokens=longest)
    assert prompt_warnings(fits, prompts, count_tokens=words_count) == []
    cut = ExperimentConfig(n=30, seed=5, max_input_tokens=longest - 1)
    assert [w.code for w in prompt_warnings(cut, prompts, count_tokens=words_count)] == [
        "prompts_truncated"
    ]

    def uncounted(text: str) -> int | None:
        return None

    for count_tokens in (None, uncounted):
        assert prompt_warnings(cut, prompts, count_tokens=count_tokens) == []
