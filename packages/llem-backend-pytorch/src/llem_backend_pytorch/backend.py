"""The PyTorch + transformers backend: :class:`PyTorchBackend`.

torch and transformers are imported inside the methods that need them, so importing this
module (and ``llem_backend_pytorch``) stays fast.

It is a local batch loop: :meth:`PyTorchBackend.run` cuts the requests it is given into
batches of ``pytorch.batch_size`` (at most ``load.max_concurrency``), generates each as one
left-padded batch, and yields the batch's timings. The model goes on ``cuda:<local index>`` of the process where torch sees a
GPU, else on the CPU; :class:`~llem_schema.ModelInfo` names the GPU by its NVML UUID.

Timing: ``start_s`` of every request in a batch is taken when its batch starts, before
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from llem_backend_pytorch.errors import BackendError, BackendStateError
from llem_backend_pytorch.flops import ModelShape, estimate_generation_flops
from llem_backend_pytorch.loading import (
    ModelSource,
    load_failed_error,
    not_in_cache_error,
    resolve_model_source,
    tokenizer_from,
)
from llem_backend_pytorch.settings import PyTorchSettings
from llem_backend_pytorch.timing import TokenTimer
from llem_backend_pytorch.tiny import TINY_MODEL_SEED
from llem_schema import (
    ConfigError,
    ExperimentConfig,
    FlopsEstimate,
    ModelInfo,
    PeakMemory,
    Request,
    RequestRecord,
    RequestTiming,
    WorkerContext,
)

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["PyTorchBackend"]

logger = logging.getLogger(__name__)

_DTYPES: Final = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass
class _Loaded:
    config: ExperimentConfig
    settings: PyTorchSettings
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
    :class:`llem_schema.InferenceBackend`, registered as ``pytorch`` in ``llem.backends``.

    ``cache_dir`` is where ``llem/tiny`` is built (default: :func:`resolve_cache_dir`);
    ``tiny_seed`` is its weight seed. :meth:`generate_batch` generates prompts as one
    left-padded batch, for use without the harness.
    """

    settings_model = PyTorchSettings

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

    def prepare(self, config: ExperimentConfig) -> None:
        """Check the settings and find the model before any worker starts; the built-in tiny
        model is built here, so workers find it ready instead of racing to build it."""
        config.backend_settings(PyTorchSettings)
        if config.load.rate_per_s is not None:
            raise ConfigError(
                "the pytorch backend generates static batches and sends nothing on a "
                "schedule: leave load.request_rate at inf, or measure a server under an "
                "arrival rate with backend openai",
                key="load.request_rate",
            )
        resolve_model_source(config.model, cache_dir=self._cache_dir, tiny_seed=self._tiny_seed)

    def load(self, config: ExperimentConfig, context: WorkerContext) -> ModelInfo:
        """Load model and tokenizer of ``config``: on ``cuda:<local index>`` of this process
        where torch sees a GPU, else on the CPU."""
        import torch

        return self.load_on(config, context.local_index if torch.cuda.is_available() else None)

    def load_on(self, config: ExperimentConfig, device_index: int | None) -> ModelInfo:
        """Load model and tokenizer of ``config`` on ``cuda:<device_index>`` (None: CPU)."""
        import torch
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        if self._loaded is not None:
            self.unload()
        settings = config.backend_settings(PyTorchSettings)
        device = _device(torch, device_index)
        if device_index is not None:
            torch.cuda.set_device(device)  # no stray context on cuda:0 in every process
            torch.cuda.reset_peak_memory_stats(device)
        source = resolve_model_source(
            config.model, cache_dir=self._cache_dir, tiny_seed=self._tiny_seed
        )
        tokenizer = tokenizer_from(source)
        model = _model_from(source, config, settings)
        model.to(device)  # type: ignore[arg-type]
        model.eval()  # type: ignore[no-untyped-call]
        if settings.torch_compile:
            setattr(model, "forward", torch.compile(model.forward))  # noqa: B010
        eos_token_ids = _eos_token_ids(model, tokenizer)
        pad_token_id = tokenizer.pad_token_id
        assert isinstance(pad_token_id, int)
        self._loaded = _Loaded(
            config=config,
            settings=settings,
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
            device_uuids=[] if device_index is None else [_nvml_uuid(torch, device_index)],
        )
        logger.info("loaded %s (%s) on %s", config.model, info.dtype, info.device)
        return info

    def warmup(self, requests: Sequence[Request]) -> list[RequestTiming]:
        """Generate the first batch of ``requests`` as one unmeasured batch."""
        loaded = self._require()
        loaded.warmups += 1
        batch = requests[: _batch_size(loaded)]
        seed = _seed(loaded.config.seed, f"warmup:{loaded.warmups}")
        return self._generate([r.prompt for r in batch], [r.index for r in batch], 0, seed)

    def run(self, requests: Sequence[Request]) -> Iterator[RequestTiming]:
        """Generate ``requests`` in batches of ``pytorch.batch_size``, in order, yielding each
        batch's timings as it finishes.

        Sampling is seeded from ``config.seed`` and each batch's first request index, so a
        batch gives the same tokens whatever ran before it.
        """
        loaded = self._require()
        size = _batch_size(loaded)
        for batch_index, start in enumerate(range(0, len(requests), size)):
            batch = requests[start : start + size]
            seed = _seed(loaded.config.seed, f"batch:{batch[0].index}")
            yield from self._generate(
                [r.prompt for r in batch], [r.index for r in batch], batch_index, seed
            )

    def generate_batch(
        self, prompts: Sequence[str], *, first_request_index: int = 0
    ) -> list[RequestTiming]:
        """Generate ``prompts`` as one left-padded batch; one timing per prompt, in order,
        request indices from ``first_request_index`` (seeded as :meth:`run` seeds a batch)."""
        loaded = self._require()
        seed = _seed(loaded.config.seed, f"batch:{first_request_index}")
        indices = list(range(first_request_index, first_request_index + len(prompts)))
        return self._generate(prompts, indices, 0, seed)

    def synchronize(self) -> None:
        """Wait for queued CUDA work on the model's device; nothing to wait for on CPU."""
        loaded = self._require()
        if loaded.device_index is not None:
            import torch

            torch.cuda.synchronize(loaded.device)

    def peak_memory(self) -> PeakMemory | None:
        """Peak memory: CUDA max allocated since load (``cuda``), or the process's peak RSS on
        CPU (``rss``, over the whole process life, not only since load)."""
        loaded = self._require()
        if loaded.device_index is not None:
            import torch

            allocated = float(torch.cuda.max_memory_allocated(loaded.device)) / 2**20
            return PeakMemory(mb=allocated, source="cuda")
        rss = _peak_rss_mb()
        return None if rss is None else PeakMemory(mb=rss, source="rss")

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
        self, prompts: Sequence[str], indices: Sequence[int], batch_index: int, seed: int
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
                request_index=indices[row],
                batch_index=batch_index,
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


def _nvml_uuid(torch: Any, device_index: int) -> str:
    """The NVML UUID (``GPU-...``) of CUDA device ``device_index`` as torch numbers it."""
    uuid = str(torch.cuda.get_device_properties(device_index).uuid)
    return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"


def _model_from(
    source: ModelSource, config: ExperimentConfig, settings: PyTorchSettings
) -> PreTrainedModel:
    import torch
    from transformers import AutoModelForCausalLM

    options: dict[str, Any] = {
        "local_files_only": True,
        "dtype": getattr(torch, _DTYPES[config.precision]),
    }
    if settings.attn_implementation is not None:
        options["attn_implementation"] = settings.attn_implementation
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


def _batch_size(loaded: _Loaded) -> int:
    """``pytorch.batch_size``, bounded by ``load.max_concurrency``: a batch is the requests
    this backend has in flight at once."""
    bound = loaded.config.load.max_concurrency
    return min(loaded.settings.batch_size, bound) if bound else loaded.settings.batch_size
