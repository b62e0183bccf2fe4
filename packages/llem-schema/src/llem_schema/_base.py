"""The base every llem model derives from."""

from pydantic import BaseModel, ConfigDict

__all__ = ["FrozenModel"]


class FrozenModel(BaseModel):
    """Immutable, strict about keys, and never NaN or infinite.

    ``extra="forbid"`` makes a misspelt keyword fail at construction instead of vanishing;
    ``allow_inf_nan=False`` keeps every stored number a real measurement.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        validate_default=True,
        use_attribute_docstrings=False,
        defer_build=True,
    )
