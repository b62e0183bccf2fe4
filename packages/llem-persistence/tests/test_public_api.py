import importlib
import subprocess
import sys
import types

import llem_persistence
from llem_schema import LlemError


def test_public_api_is_what_init_exports() -> None:
    public = {
        name
        for name in dir(llem_persistence)
        if not name.startswith("_")
        and not isinstance(getattr(llem_persistence, name), types.ModuleType)
    }
    assert sorted(llem_persistence.__all__) == sorted(public)


def test_every_public_name_loads_from_the_module_that_defines_it() -> None:
    exports = llem_persistence._EXPORTS
    assert sorted(exports) == sorted(llem_persistence.__all__)
    for name, module in exports.items():
        assert getattr(llem_persistence, name) is getattr(importlib.import_module(module), name)


def test_errors_are_rooted_in_llem_error() -> None:
    for error in (
        llem_persistence.PersistenceError,
        llem_persistence.AggregationError,
        llem_persistence.StoreError,
        llem_persistence.StoreLookupError,
        llem_persistence.ForeignDatabaseError,
        llem_persistence.DuplicateResultError,
    ):
        assert issubclass(error, LlemError)
    assert str(llem_persistence.UnsafePathError("../x escapes")) == "../x escapes"


def test_reading_the_store_loads_neither_pydantic_nor_pyarrow() -> None:
    # `llem results list` must start fast: the store's import and its queries stay light
    code = (
        "import sys, tempfile, pathlib\n"
        "from llem_persistence import ResultStore\n"
        "with ResultStore(pathlib.Path(tempfile.mkdtemp()) / 'llem.db') as store:\n"
        "    store.list_experiments(); store.count_experiments()\n"
        "print(sorted(m for m in ('pydantic', 'pyarrow', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
