"""The PyTorch backend's settings: the ``pytorch:`` section of a config."""

from typing import Literal

from pydantic import Field

from llem_schema import FrozenModel

__all__ = ["PyTorchSettings"]


class PyTorchSettings(FrozenModel):
    """Settings that only the PyTorch + transformers backend reads (``pytorch:`` in a config).

    Changing any of them changes what is measured, so all of them are in the config hash.
    """

    batch_size: int = Field(default=1, gt=0, description="Prompts generated together per batch.")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] | None = Field(
        default=None, description="Attention kernel passed to transformers; None: its default."
    )
    torch_compile: bool = Field(
        default=False, description="Compile the model's forward with torch.compile."
    )
