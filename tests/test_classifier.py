"""The token-classifier predictor: the published checkpoints' format, windows, batching."""

from __future__ import annotations

import asyncio
import json

import pytest
import torch

from tessy.backends.fake import SCRIPTS
from tessy.boundary import load_predictor, word_spans
from tessy.boundary.classifier import META_FILE, TokenClassifierPredictor
from tessy.errors import ModelLoadError

LONG = (SCRIPTS["student"] + " " + SCRIPTS["teacher"] + " ") * 6  # > 200 tokens


def _classifier_dir(backbone, path, num_labels=2, meta=None):
    """A 2-label token classifier saved like the published checkpoints (no tessy metadata)."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    torch.manual_seed(1)
    model = AutoModelForTokenClassification.from_pretrained(backbone, num_labels=num_labels)
    with torch.no_grad():  # a sharp random head, so both labels occur
        model.score.weight.mul_(200.0)
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(backbone).save_pretrained(path)
    if meta:
        (path / META_FILE).write_text(json.dumps(meta))
    return path


@pytest.fixture(scope="module")
def published(tiny_backbone, tmp_path_factory):
    return _classifier_dir(tiny_backbone, tmp_path_factory.mktemp("published"))


def _by_hand(directory, context, text, shift="next", window=200):
    """Labels computed directly: left-truncated window, label of token i read at i-1."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForTokenClassification.from_pretrained(directory).eval()
    enc = tok(context + text, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"][-window:]
    start = len(enc["input_ids"]) - len(ids)
    ends = [e for _, e in enc["offset_mapping"]]
    with torch.no_grad():
        style = (model(torch.tensor([ids])).logits[0].argmax(-1) == 1).tolist()
    out = []
    for a, _ in word_spans(text):
        t = next(i for i, e in enumerate(ends) if e > len(context) + a) - start
        out.append(style[t - 1] if shift == "next" else style[t])
    return out


def test_published_format_loads_with_next_token_labels_and_a_200_token_window(published):
    predictor = load_predictor(str(published), "teacher", device="cpu")
    assert isinstance(predictor, TokenClassifierPredictor)
    assert (predictor.meta.label_shift, predictor.meta.window) == ("next", 200)
    text = "Hmm, wait. So the total is 42, let me check 25 + 17 again."
    labels = predictor.label_sync(LONG, text, word_spans(text))
    assert labels == _by_hand(published, LONG, text)
    assert True in labels and False in labels  # the check is not vacuous
    assert predictor.token_forwards == 200  # the long context was left-truncated to the window


def test_current_token_models_read_their_own_position(tiny_backbone, tmp_path):
    directory = _classifier_dir(tiny_backbone, tmp_path, meta={"label_shift": "current",
                                                               "window": 64})
    predictor = load_predictor(str(directory), "student", device="cpu")
    text = "Okay, let's see. Tens: 10 + 20 = 30."
    labels = predictor.label_sync(LONG, text, word_spans(text))
    assert labels == _by_hand(directory, LONG, text, shift="current", window=64)


def test_left_padding_does_not_change_labels(published):
    predictor = load_predictor(str(published), "student", device="cpu")
    items = [(LONG[:n], t, word_spans(t)) for n, t in
             [(0, "Okay, let's see."), (300, "So the sum is 42. Hmm."), (2000, "Wait, check: 25 + 17.")]]
    assert predictor.label_batch(items) == [predictor.label_sync(*item) for item in items]


async def test_concurrent_calls_share_one_forward(published):
    predictor = load_predictor(str(published), "student", device="cpu")
    texts = [f"Alright, {n} plus {n} is {2 * n}. Hmm, wait." for n in range(8)]
    labels = await asyncio.gather(*(predictor.label(LONG[:500], t, word_spans(t)) for t in texts))
    assert predictor.batcher.batches == 1
    assert labels == [predictor.label_sync(LONG[:500], t, word_spans(t)) for t in texts]


def test_a_model_that_is_not_a_2_label_classifier_is_refused(tiny_backbone, tmp_path):
    directory = _classifier_dir(tiny_backbone, tmp_path, num_labels=3)
    with pytest.raises(ModelLoadError, match="3 labels, a boundary predictor has 2"):
        load_predictor(str(directory), "student", device="cpu")


def test_threads_set_torchs_cpu_threads(published):
    import torch

    before = torch.get_num_threads()
    try:
        load_predictor(str(published), "student", device="cpu", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
