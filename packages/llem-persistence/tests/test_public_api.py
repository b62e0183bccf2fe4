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


def test_errors_are_rooted_in_llem_error() -> None:
    for error in (
        llem_persistence.PersistenceError,
        llem_persistence.AggregationError,
        llem_persistence.ExportError,
    ):
        assert issubclass(error, LlemError)
    assert str(llem_persistence.UnsafePathError("../x escapes")) == "../x escapes"
