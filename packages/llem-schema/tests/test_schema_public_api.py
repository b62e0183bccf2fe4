import importlib
import subprocess
import sys
import types

import pytest

import llem_schema


def test_public_api_is_what_init_exports() -> None:
    public = {
        name
        for name in dir(llem_schema)
        if not name.startswith("_") and not isinstance(getattr(llem_schema, name), types.ModuleType)
    }
    assert sorted(llem_schema.__all__) == sorted(public)


def test_every_public_name_loads_from_the_module_that_defines_it() -> None:
    exports = llem_schema._EXPORTS
    assert sorted(exports) == sorted(llem_schema.__all__)
    for name, module in exports.items():
        assert getattr(llem_schema, name) is getattr(importlib.import_module(module), name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError) as caught:
        _ = llem_schema.ExperimentReslt
    assert str(caught.value) == "module 'llem_schema' has no attribute 'ExperimentReslt'"


def test_the_errors_load_without_pydantic_and_the_models_with_it() -> None:
    code = (
        "import sys\n"
        "from llem_schema import LlemError, ConfigError\n"
        "print('pydantic' in sys.modules)\n"
        "from llem_schema import ExperimentResult\n"
        "print('pydantic' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "True"]
