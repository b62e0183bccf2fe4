"""An example llem backend: ``echo``, registered in the entry-point group ``llem.backends``.

It "generates" by echoing each prompt's words back, one word a token, taking a fixed time per
token, so that everything around it (the harness's timing, batching, energy window, results)
runs for real without a model. It imports nothing but ``llem_schema`` and pydantic.
"""

from llem_echo.backend import EchoBackend, EchoSettings

__all__ = ["EchoBackend", "EchoSettings"]
