"""Builds the tiny model's files; imports torch, transformers and tokenizers (load lazily)."""

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

__all__ = ["build_tiny_model"]

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
VOCAB_SIZE: Final = 1024
HIDDEN_SIZE: Final = 128
INTERMEDIATE_SIZE: Final = 384
NUM_LAYERS: Final = 2
NUM_HEADS: Final = 4
NUM_KV_HEADS: Final = 2
MAX_POSITIONS: Final = 4096
INIT_STD: Final = 0.02
CHAT_TEMPLATE: Final = (
    "{{ bos_token }}{% for message in messages %}{{ message['role'] }}: "
    "{{ message['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)
"""A plain role-prefixed chat format, so that chat APIs (an OpenAI-compatible server's
``/v1/chat/completions``) can serve the tiny model too."""


def build_tiny_model(directory: Path, *, seed: int, texts: Sequence[str]) -> dict[str, object]:
    """Write config, weights, generation config and tokenizer into ``directory``.

    The tokenizer is a byte-level BPE trained on ``texts``; weights are drawn from a
    ``torch.Generator`` seeded with ``seed``, so the same inputs give the same files.
    Returns a short description of what was built.
    """
    tokenizer = _train_tokenizer(texts)
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=INTERMEDIATE_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_KV_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=False,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
    )
    with torch.random.fork_rng(devices=[]):
        model = LlamaForCausalLM(config)
    _initialise(model, seed)
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID
    )
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    finally:
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
    return {
        "seed": seed,
        "architecture": "LlamaForCausalLM",
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": VOCAB_SIZE,
        "hidden_size": HIDDEN_SIZE,
        "num_hidden_layers": NUM_LAYERS,
    }


def _initialise(model: LlamaForCausalLM, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in sorted(model.named_parameters()):
            if name.endswith("norm.weight"):
                parameter.fill_(1.0)
            else:
                parameter.normal_(0.0, INIT_STD, generator=generator)


def _train_tokenizer(texts: Sequence[str]) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    if backend.get_vocab_size() != VOCAB_SIZE:
        raise RuntimeError(f"tokenizer has {backend.get_vocab_size()} tokens, not {VOCAB_SIZE}")
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, BOS_ID)]
    )
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        padding_side="left",
        model_max_length=MAX_POSITIONS,
        chat_template=CHAT_TEMPLATE,
    )
