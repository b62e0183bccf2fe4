import llem_energy
from llem_schema import LlemError


def test_public_api_is_what_init_exports() -> None:
    exported = {name for name in dir(llem_energy) if not name.startswith("_")}
    modules = {
        "baseline",
        "environment",
        "errors",
        "checks",
        "testing",
        "meter",
        "nvml",
        "rapl",
        "sampler",
        "simulated",
        "throttle",
    }
    assert sorted(llem_energy.__all__) == sorted(exported - modules)


def test_errors_are_rooted_in_llem_error() -> None:
    for name in llem_energy.errors.__all__:
        assert issubclass(getattr(llem_energy, name), LlemError)
    error = llem_energy.EnergyError("something went wrong")
    assert str(error) == "something went wrong"


def test_nvml_errors_carry_their_code() -> None:
    error = llem_energy.NvmlNotSupportedError("no", code=3)
    assert error.code == 3
    assert isinstance(error, llem_energy.NvmlError)
