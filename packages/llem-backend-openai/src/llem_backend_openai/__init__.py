"""llem_backend_openai: the ``openai`` backend, a client of any OpenAI-compatible server under
an arrival schedule, registered in the entry-point group ``llem.backends``.

Depends on ``llem_schema`` and httpx2 only. Its settings are the ``openai:`` section of a
config (:class:`OpenAISettings`); the load (rate, burstiness, concurrency) is the config's
``load:`` section, shared by every backend.
"""

from llem_backend_openai.backend import SERVER_LOG, OpenAIBackend
from llem_backend_openai.errors import ServerError
from llem_backend_openai.settings import OpenAISettings, ServerSettings

__all__ = ["SERVER_LOG", "OpenAIBackend", "OpenAISettings", "ServerError", "ServerSettings"]
