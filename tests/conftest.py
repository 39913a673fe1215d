"""Shared fixtures: fake servers, tiny models built from a config, fake-backed roles."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_server import FakeOpenAIServer  # noqa: E402
from tessy.backends.fake import SCRIPTS, FakeBackend  # noqa: E402
from tessy.boundary import LexiconPredictor  # noqa: E402
from tessy.config import SamplingConfig  # noqa: E402
from tessy.synthesis.roles import RoleRuntime  # noqa: E402
from tessy.templates import qwen3  # noqa: E402


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def fake_roles(delay: float = 0.0) -> dict[str, RoleRuntime]:
    """Teacher and student on scripted fake models with the lexicon predictors."""
    return {
        role: RoleRuntime(role, FakeBackend(name=f"fake-{role}", script=SCRIPTS[role], delay=delay), qwen3(),
                          LexiconPredictor(role), SamplingConfig(temperature=0),
                          asyncio.Semaphore(8))
        for role in ("teacher", "student")
    }


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A word-level tokenizer built in memory (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ("the a of to and is are was what how many sum add plus minus equals answer think "
             "let me see okay so wait number numbers two three four five six seven eight nine "
             "ten problem question user assistant").split()
    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", *words, ".", ",", "?", ":"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>")


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer):
    """A 2-layer Llama with random weights, sized to the tiny tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # EOS logit pinned at 0, below the best of 45 random ones: long outputs
        model.lm_head.weight[2] = 0.0
    return model


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory):
    """A 2-layer Qwen3 with a BPE tokenizer trained on tessy's fake scripts and style phrases."""
    from tessy.boundary.lexicon import CONNECTIVE, STRONG
    from tessy.testing import build_tiny_backbone

    corpus = [*SCRIPTS.values(), " ".join(STRONG), " ".join(CONNECTIVE)]
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-backbone"), corpus)
