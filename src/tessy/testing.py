"""Tiny models built from a config, for tests and cost benchmarks (never downloaded).

A byte-level BPE tokenizer is trained in memory on the given corpus and paired with a 2-layer
Qwen3 of random weights: fast on a CPU, with the tokenizer and architecture of a real backbone.
"""

from __future__ import annotations

from pathlib import Path

CHATML = ("<|im_start|>", "<|im_end|>")


def build_tiny_backbone(path: str | Path, corpus: list[str], vocab_size: int = 400,
                        seed: int = 0, hidden: int = 32, layers: int = 2,
                        chat_template: str | None = None) -> Path:
    """Save a tiny Qwen3 causal LM (`hidden` wide, `layers` deep) and its tokenizer to `path`;
    with a `chat_template`, the tokenizer has ChatML's special tokens and ends turns with
    `<|im_end|>`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", *(CHATML if chat_template else ())]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=specials[-1],
                                        pad_token="<|endoftext|>")
    if chat_template:
        tokenizer.chat_template = chat_template
    torch.manual_seed(seed)
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=hidden,
                         intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=hidden // 4,
                         max_position_embeddings=1024)
    path = Path(path)
    Qwen3ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
