"""The built-in prompt set: what ``prompts.source: builtin`` measures.

It ships with the schema because a config names it: ``builtin`` in a config (and in its hash)
stands for exactly these prompts, whichever backend runs them. Selecting ``n`` of them, and
reading prompt files, is the harness's work.
"""

import json
from functools import cache
from importlib import resources
from typing import Final

__all__ = ["BUILTIN_PROMPTS_FILE", "builtin_prompts"]

BUILTIN_PROMPTS_FILE: Final = "prompts.jsonl"
"""The built-in prompt set, inside this package: one JSON object with a ``prompt`` per line."""


@cache
def _builtin() -> tuple[str, ...]:
    text = (resources.files(__package__) / BUILTIN_PROMPTS_FILE).read_text(encoding="utf-8")
    return tuple(json.loads(line)["prompt"] for line in text.splitlines() if line.strip())


def builtin_prompts() -> tuple[str, ...]:
    """The built-in prompts in file order (over 200, from a few words to several paragraphs)."""
    return _builtin()
