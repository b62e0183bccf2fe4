import llem_backend_pytorch
from llem_schema import LlemError


def test_public_api_is_what_init_exports() -> None:
    assert sorted(llem_backend_pytorch.__all__) == sorted(
        name
        for name in dir(llem_backend_pytorch)
        if not name.startswith("_") and name not in {"errors"}
    )


def test_errors_are_rooted_in_llem_error() -> None:
    error = llem_backend_pytorch.BackendError("something went wrong")
    assert isinstance(error, LlemError)
    assert str(error) == "something went wrong"
