import llem_energy
from llem_schema import LlemError


def test_public_api_is_what_init_exports() -> None:
    assert sorted(llem_energy.__all__) == sorted(
        name for name in dir(llem_energy) if not name.startswith("_") and name not in {"errors"}
    )


def test_errors_are_rooted_in_llem_error() -> None:
    error = llem_energy.EnergyError("something went wrong")
    assert isinstance(error, LlemError)
    assert str(error) == "something went wrong"
