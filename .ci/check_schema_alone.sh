#!/usr/bin/env bash
# llem-schema alone reads results the full workspace writes.
# Installs only the built llem-schema wheel (with its locked dependencies) into a fresh
# virtual environment, checks that nothing else came with it, and loads a result directory
# written by the full workspace.
# Usage: bash .ci/check_schema_alone.sh DIST_DIR
set -euo pipefail
dist=$(cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

uv export --package llem-schema --no-emit-workspace --no-hashes --no-dev --no-header --quiet \
  -o "$work/requirements.txt"
uv venv --quiet "$work/venv"
uv pip install --quiet --python "$work/venv/bin/python" -r "$work/requirements.txt" \
  "$dist"/llem_schema-*.whl

expected=$( (grep -E '^[a-z]' "$work/requirements.txt" | cut -d= -f1; echo llem-schema) | sort)
installed=$(uv pip freeze --quiet --python "$work/venv/bin/python" | sed -E 's/[ =@].*//' | sort)
if [ "$expected" != "$installed" ]; then
  echo "FAIL llem-schema alone installed more or less than pydantic and its dependencies:" >&2
  diff <(echo "$expected") <(echo "$installed") >&2 || true
  exit 1
fi
echo "llem-schema alone installs: $(echo $installed)"

uv run --locked python - "$work/results" <<'PY'
import sys
from pathlib import Path
from llem_schema.testing import example_raw_result, example_result

staged = Path(sys.argv[1]) / "staged.parquet"
staged.parent.mkdir(parents=True)
staged.write_bytes(b"PAR1")  # a sidecar to copy; its content is not read here
raws = [example_raw_result(process_index=i, num_processes=2, seed=i) for i in range(2)]
result = example_result(raws, timeseries="timeseries.parquet")
print(result.save(Path(sys.argv[1]), timeseries_source=staged))
PY

"$work/venv/bin/python" - "$work/results" <<'PY'
import importlib.util
import sys
from pathlib import Path

from llem_schema import ExperimentResult

for heavy in ("pyarrow", "torch", "transformers", "pynvml", "typer", "numpy"):
    assert importlib.util.find_spec(heavy) is None, f"{heavy} is importable next to llem-schema"
(directory,) = [p for p in Path(sys.argv[1]).iterdir() if p.is_dir()]
result = ExperimentResult.from_json(directory)
assert result.timeseries == "timeseries.parquet", result.timeseries
assert len(result.process_results) == 2
print(f"llem-schema alone read {directory.name}: {result.total_energy_j} J, "
      f"{result.output_tokens} output tokens, schema {result.schema_version}")
PY

# llem-store beside it, and nothing more: it indexes that result and queries it
uv pip install --quiet --no-deps --python "$work/venv/bin/python" "$dist"/llem_store-*.whl
installed=$(uv pip freeze --quiet --python "$work/venv/bin/python" | sed -E 's/[ =@].*//' | sort)
expected=$( (echo "$expected"; echo llem-store) | sort)
if [ "$expected" != "$installed" ]; then
  echo "FAIL llem-store needs more than llem-schema:" >&2
  diff <(echo "$expected") <(echo "$installed") >&2 || true
  exit 1
fi

"$work/venv/bin/python" - "$work/results" <<'PY'
import importlib.util
import sys
from pathlib import Path

from llem_store import ExperimentFilter, ResultStore

for heavy in ("pyarrow", "numpy", "torch", "typer", "rich"):
    assert importlib.util.find_spec(heavy) is None, f"{heavy} is importable next to llem-store"
root = Path(sys.argv[1])
with ResultStore(root / "llem.db") as store:
    report = store.import_tree(root)
    assert len(report.added) == 1, report
    (summary,) = store.list_experiments(ExperimentFilter(statuses=None), sort="tokens_per_j")
    assert store.count_experiments() == 1
print(f"llem-store alone indexed and listed {summary.experiment_id}: {summary.energy_j} J "
      f"({summary.energy_scope}), {summary.requests} requests")
PY
