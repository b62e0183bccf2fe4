"""How the results commands print JSON: ``dumps_rows`` is ``dumps`` for flat rows."""

import json

from llem.render.format import JsonScalar, dumps, dumps_rows


def test_dumps_rows_prints_what_dumps_prints() -> None:
    rows: list[dict[str, JsonScalar]] = [
        {
            "experiment_id": "exp_1",
            "name": None,
            "complete": True,
            "failed": False,
            "requests": 100,
            "energy_j": 12.5,
            "tiny": 1.5e-07,
            "huge": 1.0e21,
            "nan": float("nan"),
            "inf": float("-inf"),
        },
        {
            "text": 'quotes " and \\ backslashes, a newline\n, a tab\t and ",\n    " too',
            "unicode": "café ✓ 🙂",
            "": "an empty key",
            "control": "\x00\x1f",
        },
        {},
        {"only": 1},
    ]
    assert dumps_rows(rows) == dumps(rows)
    assert json.loads(dumps_rows(rows[:2]))[1] == rows[1]
    assert dumps_rows([]) == dumps([]) == "[]"
