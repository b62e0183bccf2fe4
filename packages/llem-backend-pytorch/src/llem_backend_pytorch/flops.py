"""FLOPs of generation, estimated from the model's shape and the tokens it processed."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from llem_schema import FlopsEstimate, RequestRecord

__all__ = ["FLOPS_METHOD", "ModelShape", "estimate_generation_flops"]

FLOPS_METHOD: Final = (
    "2 x matmul parameters x processed tokens + 4 x layers x attention width x context "
    "length per processed token; matmul parameters = all but the input embedding table; "
    "processed tokens = input + output - 1 per request (the last output token is never fed "
    "back); batch padding excluded"
)


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs to know about a decoder-only transformer."""

    matmul_parameters: int
    """Parameters used in matrix multiplications (all but the input embedding table)."""
    num_layers: int
    attention_width: int
    """Query heads x head dimension: the width of Q.K^T and attention x V."""


def estimate_generation_flops(
    shape: ModelShape, requests: Sequence[RequestRecord]
) -> FlopsEstimate:
    """Forward-pass FLOPs of ``requests`` by :data:`FLOPS_METHOD` (a multiply-add is 2 FLOPs).

    A request with ``i`` input and ``o`` output tokens feeds ``L = i + o - 1`` tokens through
    the model (prefill ``i``, then one per further output token); the token at position ``t``
    (1-based) attends over ``t`` positions, costing ``2 x 2 x layers x width x t`` for Q.K^T
    and attention x V; summed over ``t = 1..L`` that is ``4 x layers x width x L(L+1)/2``.
    """
    total = 0.0
    for request in requests:
        processed = request.input_tokens + max(request.output_tokens - 1, 0)
        dense = 2.0 * shape.matmul_parameters * processed
        attention = 4.0 * shape.num_layers * shape.attention_width * processed * (processed + 1) / 2
        total += dense + attention
    return FlopsEstimate(total_flops=total, method=FLOPS_METHOD)
