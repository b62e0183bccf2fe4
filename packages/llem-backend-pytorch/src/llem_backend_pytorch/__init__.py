"""llem_backend_pytorch: runs inference with torch and transformers behind the backend
interface of ``llem_schema`` (:class:`llem_schema.InferenceBackend`).

Depends on ``llem_schema`` only among llem's packages.
"""

from llem_backend_pytorch.errors import BackendError

__all__ = ["BackendError"]
