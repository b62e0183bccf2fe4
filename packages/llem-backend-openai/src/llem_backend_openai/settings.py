"""The ``openai:`` section of a config: which server, which API, and a server to manage."""

from typing import Literal

from pydantic import Field, JsonValue, PositiveFloat, field_validator

from llem_schema import FrozenModel

__all__ = ["OpenAISettings", "ServerSettings"]


class ServerSettings(FrozenModel):
    """A server llem starts, waits for, measures and stops (``openai.server``)."""

    command: list[str] = Field(
        min_length=1,
        description=(
            "The command line that starts the server, e.g. ['vllm', 'serve', 'MODEL', "
            "'--port', '8000']; it must serve base_url."
        ),
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables added for the server."
    )
    ready_timeout_s: PositiveFloat = Field(
        default=600.0, description="How long to wait for the server to answer, s."
    )
    stop_timeout_s: PositiveFloat = Field(
        default=30.0, description="After SIGTERM, how long before SIGKILL, s."
    )


class OpenAISettings(FrozenModel):
    """Settings of the ``openai`` backend: a client of an OpenAI-compatible server."""

    base_url: str = Field(
        default="http://127.0.0.1:8000/v1",
        description="The server's API root, up to and including /v1.",
    )
    model: str | None = Field(
        default=None,
        description=(
            "The model name sent with each request; None: the first the server lists "
            "(/v1/models), else the experiment's model."
        ),
    )
    api: Literal["completions", "chat"] = Field(
        default="completions",
        description="completions (/v1/completions, the prompt as is) or chat (one user message).",
    )
    api_key_env: str | None = Field(
        default=None,
        description=(
            "The name of an environment variable holding the API key (never the key "
            "itself: it appears in no config, log or result)."
        ),
    )
    timeout_s: PositiveFloat = Field(
        default=600.0, description="A request taking longer fails (timed out), s."
    )
    extra_body: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="More fields of every request's JSON body (server-specific settings).",
    )
    server: ServerSettings | None = Field(
        default=None, description="A server for llem to start and stop; None: one running."
    )

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")
