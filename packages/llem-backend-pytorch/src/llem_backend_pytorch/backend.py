"""The PyTorch + transformers backend: :class:`PyTorchBackend`.

torch and transformers are imported inside the methods that need them, so importing this
module (and ``llem_backend_pytorch``) stays fast.

Timing: ``start_s`` of every request in a batch is taken on entry to ``run_batch``, before
tokenization; each output token's time is taken when ``generate`` hands the token to the
streamer (:class:`~llem_backend_pytorch.timing.TokenTimer`), after its ``.cpu()`` copy has
waited for the device. TTFT therefore covers tokenization, the host-to-device copy, the
prefill forward pass, selecting the first token and copying it back to the host.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from llem_backend_pytorch.errors import BackendError, BackendStateError
from llem_backend_pytorch.flops import ModelShape, estimate_generation_flops
from llem_backend_pytorch.loading import (
    ModelSource,
    load_failed_error,
    not_in_cache_error,
    resolve_model_source,
    tokenizer_from,
)
from llem_backend_pytorch.timing import TokenTimer
from llem_backend_pytorch.tiny import TINY_MODEL_SEED
from llem_schema import ExperimentConfig, FlopsEstimate, ModelInfo, RequestRecord, RequestTiming

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["MemorySource", "PyTorchBackend"]

logger = logging.getLogger(__name__)

MemorySource = Literal["cuda_max_memory_allocated", "process_peak_rss"]

_DTYPES: Final = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass
class _Loaded:
    config: ExperimentConfig
    source: ModelSource
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    device_index: int | None
    eos_token_ids: frozenset[int]
    generate_kwargs: dict[str, Any]
    shape: ModelShape | None
    warmups: int = 0


class PyTorchBackend:
    """Runs generation with ``transformers`` on ``torch``; implements
    :class:`llem_schema.InferenceBackend`.

    ``cache_dir`` is where ``llem/tiny`` is built (default: :func:`resolve_cache_dir`);
    ``tiny_seed`` is its weight seed. ``run_batch`` generates its prompts as one left-padded
    batch (the harness slices prompts by ``config.pytorch.batch_size``).
    """

    def __init__(
        self, *, cache_dir: Path | str | None = None, tiny_seed: int = TINY_MODEL_SEED
    ) -> None:
        self._cache_dir = cache_dir
        self._tiny_seed = tiny_seed
        self._loaded: _Loaded | None = None
        self._last_output_token_ids: list[list[int]] = []

    @property
    def name(self) -> str:
        """``pytorch``."""
        return "pytorch"

    @property
    def version(self) -> str:
        """``transformers <version>; torch <version>`` (read without importing either)."""
        return (
            f"transformers {importlib.metadata.version('transformers')}; "
            f"torch {importlib.metadata.version('torch')}"
        )

    @property
    def memory_source(self) -> MemorySource | None:
        """What :meth:`peak_memory_mb` reports: CUDA peak allocated, or the process peak RSS."""
        if self._loaded is None:
            return None
        if self._loaded.device_index is None:
            return "process_peak_rss"
        return "cuda_max_memory_allocated"

    @property
    def last_output_token_ids(self) -> list[list[int]]:
        """Token ids each request of the latest batch generated (EOS included), for checks."""
        return [list(ids) for ids in self._last_output_token_ids]

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The loaded tokenizer (left padding)."""
        return self._require().tokenizer

    @property
    def model(self) -> PreTrainedModel:
        """The loaded model."""
        return self._require().model

    def count_tokens(self, text: str) -> int:
        """Input tokens ``text`` becomes, special tokens included, before truncation."""
        ids = self._require().tokenizer(text)["input_ids"]
        return len(ids)

    def load(self, config: ExperimentConfig, *, device_index: int | None) -> ModelInfo:
        """Load model and tokenizer of ``config`` on ``cuda:<device_index>`` (None: CPU)."""
        import torch

        if self._loaded is not None:
            self.unload()
        device = _device(torch, device_index)
        if device_index is not None:
            torch.cuda.reset_peak_memory_stats(device)
        source = resolve_model_source(
            config.model, cache_dir=self._cache_dir, tiny_seed=self._tiny_seed
        )
        tokenizer = tokenizer_from(source)
        model = _model_from(source, config)
        model.to(device)  # type: ignore[arg-type]
        model.eval()  # type: ignore[no-untyped-call]
        if config.pytorch.torch_compile:
            setattr(model, "forward", torch.compile(model.forward))  # noqa: B010
        eos_token_ids = _eos_token_ids(model, tokenizer)
        pad_token_id = tokenizer.pad_token_id
        assert isinstance(pad_token_id, int)
        self._loaded = _Loaded(
            config=config,
            source=source,
            model=model,
            tokenizer=tokenizer,
            device=device,
            device_index=device_index,
            eos_token_ids=eos_token_ids,
            generate_kwargs=_generate_kwargs(config, pad_token_id),
            shape=_shape(model),
        )
        _set_plain_generation_config(model, eos_token_ids, pad_token_id)
        info = ModelInfo(
            model=config.model,
            revision=source.revision or _commit_hash(model),
            num_parameters=model.num_parameters(),
            dtype=str(model.dtype).removeprefix("torch."),
            device=str(device),
            device_indices=[] if device_index is None else [device_index],
        )
        logger.info("loaded %s (%s) on %s", config.model, info.dtype, info.device)
        return info

    def warmup(self, prompts: Sequence[str]) -> list[RequestTiming]:
        """Generate ``prompts`` as one unmeasured batch (request indices from 0)."""
        loaded = self._require()
        loaded.warmups += 1
        return self._generate(prompts, 0, _seed(loaded.config.seed, f"warmup:{loaded.warmups}"))

    def run_batch(self, prompts: Sequence[str], *, first_request_index: int) -> list[RequestTiming]:
        """Generate ``prompts`` as one left-padded batch; one timing per prompt, in order.

        Sampling is seeded from ``config.seed`` and ``first_request_index``, so a batch gives
        the same tokens whatever ran before it.
        """
        loaded = self._require()
        seed = _seed(loaded.config.seed, f"batch:{first_request_index}")
        return self._generate(prompts, first_request_index, seed)

    def synchronize(self) -> None:
        """Wait for queued CUDA work on the model's device; nothing to wait for on CPU."""
        loaded = self._require()
        if loaded.device_index is not None:
            import torch

            torch.cuda.synchronize(loaded.device)

    def peak_memory_mb(self) -> float | None:
        """Peak memory, MiB: CUDA max allocated since load, or the process's peak RSS on CPU
        (over the whole process life, not only since load); see :attr:`memory_source`."""
        loaded = self._require()
        if loaded.device_index is not None:
            import torch

            return float(torch.cuda.max_memory_allocated(loaded.device)) / 2**20
        return _peak_rss_mb()

    def estimate_flops(self, requests: Sequence[RequestRecord]) -> FlopsEstimate | None:
        """Forward FLOPs of ``requests`` (method in the result); None if the shape is unknown."""
        shape = self._require().shape
        return None if shape is None else estimate_generation_flops(shape, requests)

    def unload(self) -> None:
        """Drop model and tokenizer and release cached device memory."""
        loaded, self._loaded = self._loaded, None
        if loaded is None:
            return
        device_index = loaded.device_index
        del loaded
        import gc

        gc.collect()
        if device_index is not None:
            import torch

            torch.cuda.empty_cache()

    def _require(self) -> _Loaded:
        if self._loaded is None:
            raise BackendStateError("no model is loaded: call load() first")
        return self._loaded

    def _generate(
        self, prompts: Sequence[str], first_request_index: int, seed: int
    ) -> list[RequestTiming]:
        import torch

        loaded = self._require()
        if not prompts:
            return []
        start_s = time.perf_counter()
        encoded = loaded.tokenizer(
            list(prompts),
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=loaded.config.max_input_tokens,
        )
        input_ids = encoded["input_ids"].to(loaded.device)
        attention_mask = encoded["attention_mask"].to(loaded.device)
        input_tokens = [int(count) for count in encoded["attention_mask"].sum(dim=1).tolist()]
        stop_ids = frozenset() if loaded.config.decoder.ignore_eos else loaded.eos_token_ids
        timer = TokenTimer(len(prompts), eos_token_ids=stop_ids)
        torch.manual_seed(seed)
        with torch.inference_mode():
            sequences = loaded.model.generate(  # type: ignore[operator]
                input_ids=input_ids,
                attention_mask=attention_mask,
                streamer=timer,
                **loaded.generate_kwargs,
            )
        generated = sequences[:, input_ids.shape[1] :].tolist()
        _check_against_sequences(timer, generated, stop_ids)
        self._last_output_token_ids = timer.token_ids
        return [
            RequestTiming(
                request_index=first_request_index + row,
                input_tokens=input_tokens[row],
                output_tokens=len(timer.token_times_s[row]),
                start_s=start_s,
                token_times_s=timer.token_times_s[row],
            )
            for row in range(len(prompts))
        ]


def _device(torch: Any, device_index: int | None) -> torch.device:
    if device_index is None:
        return torch.device("cpu")  # type: ignore[no-any-return]
    if not torch.cuda.is_available():
        raise BackendError(
            f"CUDA device {device_index} was asked for but torch sees no CUDA device "
            f"(torch {torch.__version__}); run on CPU or install a CUDA build of torch"
        )
    count = torch.cuda.device_count()
    if device_index >= count:
        raise BackendError(
            f"CUDA device {device_index} was asked for but torch sees {count} device(s) "
            f"(indices 0..{count - 1}); check CUDA_VISIBLE_DEVICES"
        )
    return torch.device(f"cuda:{device_index}")  # type: ignore[no-any-return]


def _model_from(source: ModelSource, config: ExperimentConfig) -> PreTrainedModel:
    import torch
    from transformers import AutoModelForCausalLM

    options: dict[str, Any] = {
        "local_files_only": True,
        "dtype": getattr(torch, _DTYPES[config.precision]),
    }
    if config.pytorch.attn_implementation is not None:
        options["attn_implementation"] = config.pytorch.attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(source.location, **options)
    except OSError as exc:
        if not source.is_local_dir:
            raise not_in_cache_error(source) from None
        raise load_failed_error(source, "model", exc) from None
    except (ValueError, ImportError) as exc:
        raise load_failed_error(source, "model", exc) from None
    return model


def _eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    configured = model.generation_config.eos_token_id
    if configured is None:
        configured = tokenizer.eos_token_id
    if configured is None:
        return frozenset()
    if isinstance(configured, int):
        return frozenset({configured})
    return frozenset(int(token) for token in configured)


def _set_plain_generation_config(
    model: PreTrainedModel, eos_token_ids: frozenset[int], pad_token_id: int
) -> None:
    # Only the special tokens survive from the model's own generation config: its sampling
    # defaults (temperature, repetition penalty, ...) would silently change what is measured.
    from transformers import GenerationConfig

    eos: list[int] | None = sorted(eos_token_ids) or None
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=model.generation_config.bos_token_id,
        eos_token_id=eos,
        pad_token_id=pad_token_id,
    )


def _generate_kwargs(config: ExperimentConfig, pad_token_id: int) -> dict[str, Any]:
    decoder = config.decoder
    kwargs: dict[str, Any] = {
        "max_new_tokens": config.max_new_tokens,
        "num_beams": 1,
        "pad_token_id": pad_token_id,
        "do_sample": decoder.mode == "sampling",
    }
    if decoder.mode == "sampling":
        kwargs.update(temperature=decoder.temperature, top_p=decoder.top_p, top_k=decoder.top_k)
    if decoder.ignore_eos:
        kwargs["eos_token_id"] = None
    return kwargs


def _shape(model: PreTrainedModel) -> ModelShape | None:
    config = model.config.get_text_config()
    layers = getattr(config, "num_hidden_layers", None)
    heads = getattr(config, "num_attention_heads", None)
    hidden = getattr(config, "hidden_size", None)
    head_dim = getattr(config, "head_dim", None)
    if not isinstance(layers, int) or not isinstance(heads, int):
        return None
    if not isinstance(head_dim, int):
        if not isinstance(hidden, int):
            return None
        head_dim = hidden // heads
    embedding = getattr(model.get_input_embeddings(), "weight", None)
    output = model.get_output_embeddings()  # type: ignore[no-untyped-call]
    if embedding is None:
        return None
    tied = output is not None and getattr(output, "weight", None) is embedding
    total = model.num_parameters()
    matmul = total if tied else total - int(embedding.numel())
    return ModelShape(matmul_parameters=matmul, num_layers=layers, attention_width=heads * head_dim)


def _check_against_sequences(
    timer: TokenTimer, generated: list[list[int]], stop_ids: frozenset[int]
) -> None:
    # The streamer's per-row tokens must be exactly what generate returned, up to and
    # including the row's first EOS; anything else means the timestamps are not trustworthy.
    for row, tokens in enumerate(generated):
        end = next((i + 1 for i, token in enumerate(tokens) if token in stop_ids), len(tokens))
        if timer.token_ids[row] != tokens[:end]:
            raise BackendError(
                f"token timestamps do not match the generated sequence of batch row {row} "
                f"({len(timer.token_ids[row])} streamed, {end} generated); this is a bug in "
                "llem_backend_pytorch, please report it"
            )


def _seed(seed: int, purpose: str) -> int:
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _commit_hash(model: PreTrainedModel) -> str | None:
    value = getattr(model.config, "_commit_hash", None)
    return value if isinstance(value, str) else None


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
