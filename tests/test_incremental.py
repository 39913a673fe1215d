"""Incremental classifier sessions: same labels as the windowed reference, at a token per token."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
import torch

from tessy.backends.fake import SCRIPTS, FakeBackend
from tessy.boundary import load_predictor, word_spans
from tessy.boundary.classifier import META_FILE
from tessy.boundary.cut import first_wrong
from tessy.boundary.incremental import SLACK, shared_prefix, text_slice
from tessy.config import SamplingConfig, SynthesisConfig
from tessy.records import Problem
from tessy.synthesis.cooperate import Cooperation
from tessy.synthesis.roles import RoleRuntime
from tessy.templates import qwen3

TRACE = " ".join((SCRIPTS["student"] + " " + SCRIPTS["teacher"] + " ").split()) * 8


def _classifier(backbone, path, window, shift="next"):
    """A 2-label classifier with a sharp random head (both labels occur, no near-ties)."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    torch.manual_seed(3)
    model = AutoModelForTokenClassification.from_pretrained(backbone, num_labels=2)
    with torch.no_grad():
        model.score.weight.mul_(200.0)
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(backbone).save_pretrained(path)
    (path / META_FILE).write_text(json.dumps({"window": window, "label_shift": shift}))
    return str(path)


@pytest.fixture(scope="module")
def whole_current(tiny_backbone, tmp_path_factory):
    """As `whole`, with current-token labels (a word labelled at its own first token)."""
    return _classifier(tiny_backbone, tmp_path_factory.mktemp("current"), 100_000, "current")


@pytest.fixture(scope="module")
def whole(tiny_backbone, tmp_path_factory):
    """A window longer than any text here: both paths read the whole thinking."""
    return _classifier(tiny_backbone, tmp_path_factory.mktemp("whole"), 100_000)


@pytest.fixture(scope="module")
def short(tiny_backbone, tmp_path_factory):
    return _classifier(tiny_backbone, tmp_path_factory.mktemp("short"), 48)


def _calls(text, rng, every=(1, 12)):
    """Word-aligned growth of `text`: (end of the settled words, their spans) per call."""
    spans = word_spans(text)
    done = 0
    while done < len(spans):
        step = min(len(spans), done + rng.randint(*every))
        yield spans[done:step]
        done = step


def test_text_helpers():
    assert text_slice("abc", "def", 1, 5) == "bcde"
    assert text_slice("abc", "def", 4, 6) == "ef"
    assert text_slice("abc", "def", 0, 2) == "ab"
    assert shared_prefix("abcdef", "abcxyz") == 3
    assert shared_prefix("abc", "abcdef") == 3
    assert shared_prefix("", "x") == 0


@pytest.mark.parametrize("shift", ["next", "current"])
def test_a_growing_trace_gets_the_windowed_labels_token_by_token(shift, request):
    """Same context on both paths (the window holds everything): every label is identical,
    and each token of the trace is run through the model once."""
    path = request.getfixturevalue("whole" if shift == "next" else "whole_current")
    inc = load_predictor(path, "student", device="cpu", mode="incremental")
    ref = load_predictor(path, "student", device="cpu", mode="window")
    assert inc.meta.label_shift == shift
    session = inc.open_session()
    before, text = TRACE[:300], TRACE[300:1500]
    got, want = [], []
    for chunk in _calls(text, random.Random(0)):
        start, end = chunk[0][0], chunk[-1][1]
        spans = [(a - start, b - start) for a, b in chunk]
        got += asyncio.run(session.label(before, text, start, end, spans))
        want += ref.label_sync(before + text[:start], text[start:end], spans)
    assert got == want
    assert True in got and False in got
    assert inc.token_forwards == len(inc.encode(before + text)[0])  # nothing read twice


def test_text_discarded_after_a_cut_is_cropped_and_the_new_text_read(whole):
    inc = load_predictor(whole, "teacher", device="cpu", mode="incremental")
    ref = load_predictor(whole, "teacher", device="cpu", mode="window")
    session = inc.open_session()
    thinking = TRACE[:800]
    cut = thinking.rfind(" ", 0, 600)
    for before, text in ((thinking[:400], thinking[400:]),  # the teacher's turn, read to the end
                         (thinking[:cut], " Hmm, wait. Let me check again.")):  # then cut at 600
        spans = word_spans(text)
        labels = asyncio.run(session.label(before, text, 0, len(text), spans))
        assert labels == ref.label_sync(before, text, spans)
    assert session.covered.endswith("check again.")
    assert session.reanchors == 1  # the crop kept the shared tokens


def _grow(inc, ref, text, seed):
    """Label `text` as it grows; (calls right after a re-anchor, labels, reference labels)."""
    session = inc.open_session()
    fresh, got, want = [], [], []
    for chunk in _calls(text, random.Random(seed), (2, 6)):
        start, end = chunk[0][0], chunk[-1][1]
        spans = [(a - start, b - start) for a, b in chunk]
        anchors = session.reanchors
        labels = asyncio.run(session.label("", text, start, end, spans))
        assert len(session.ids) <= 48 + SLACK  # keys older than the window are dropped
        reference = ref.label_sync(text[max(0, start - 2000):start], text[start:end], spans)
        if session.reanchors > anchors:
            fresh.append((labels, reference))
        got += labels
        want += reference
    return session, fresh, got, want


def test_a_long_session_reads_each_token_once_with_a_window_of_context(short):
    inc = load_predictor(short, "student", device="cpu", mode="incremental")
    ref = load_predictor(short, "student", device="cpu", mode="window")
    text = TRACE[:3000]
    session, _, got, want = _grow(inc, ref, text, 1)
    assert session.reanchors == 1  # only the first call builds it
    assert abs(inc.token_forwards - len(inc.encode(text)[0])) <= 2  # (split at other places)
    # Each token attends to the last 48 like the window does; deeper layers still see further
    # back through the keys, so a random model's labels move a little, a trained one's less.
    assert sum(a != b for a, b in zip(got, want, strict=True)) / len(got) < 0.05


@pytest.fixture(scope="module")
def unsure(tiny_backbone, tmp_path_factory):
    """A short window and a head left as initialised: many labels close to the boundary, so the
    cached reading moves some of them."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    path = tmp_path_factory.mktemp("unsure")
    torch.manual_seed(5)
    AutoModelForTokenClassification.from_pretrained(tiny_backbone, num_labels=2).save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_backbone).save_pretrained(path)
    (path / META_FILE).write_text(json.dumps({"window": 48}))
    return str(path)


def _cuts(path, verify, role, text, seed):
    """Per call of a growing text: the (incremental, windowed) cuts; the session, the predictor."""
    predictor = load_predictor(path, role, device="cpu", mode="incremental", verify=verify)
    ref = load_predictor(path, role, device="cpu")
    session, out = predictor.open_session(), []
    for chunk in _calls(text, random.Random(seed), (2, 6)):
        start, end = chunk[0][0], chunk[-1][1]
        spans = [(a - start, b - start) for a, b in chunk]
        got = asyncio.run(session.label("", text, start, end, spans, role))
        want = ref.label_sync(text[max(0, start - 2000):start], text[start:end], spans)
        out.append((first_wrong(got, role), first_wrong(want, role)))
    return session, predictor, out


@pytest.mark.timeout(600)  # ~600 predictor calls: minutes when other jobs share the cores
@pytest.mark.parametrize("role", ["student", "teacher"])
def test_a_call_whose_cut_rests_on_an_unsure_word_is_read_again_from_the_window(unsure, role):
    text = TRACE[:2500]
    session, plain, cuts = _cuts(unsure, 0.0, role, text, 4)
    near = sorted(abs(m) for m in session.margins)[len(session.margins) // 10]
    moved = sum(a != b for a, b in cuts)
    assert moved >= 3 and plain.verified == 0  # the cached reading alone moves cuts
    session, every, cuts = _cuts(unsure, 1e9, role, text, 4)
    assert all(a == b for a, b in cuts)  # every call read again: the windowed cuts
    assert every.verified == session.verified == len(cuts) - 1  # all but the first (an anchor)
    _, some, cuts = _cuts(unsure, near, role, text, 4)
    assert 0 < some.verified < len(cuts) - 1
    assert sum(a != b for a, b in cuts) < moved


def test_only_words_up_to_the_cut_decide_whether_a_call_is_unsure(short):
    inc = load_predictor(short, "teacher", device="cpu", mode="incremental", verify=1.0)
    session = inc.open_session()
    text = TRACE[:400]
    spans = word_spans(text)
    labels = asyncio.run(session.label("", text, 0, len(text), spans, "teacher"))
    wrong = first_wrong(labels, "teacher")
    assert wrong and wrong + 1 < len(spans)
    tokens = session._label_tokens("", 0, spans)
    session.margins = [10.0 if inc.is_style(m) else -10.0 for m in session.margins]
    assert not session.unsure("", 0, spans, "teacher", labels)  # all far from the boundary
    session.margins[tokens[wrong + 1]] = 0.1  # after the cut: does not matter
    assert not session.unsure("", 0, spans, "teacher", labels)
    session.margins[tokens[wrong]] = -0.1 if not labels[wrong] else 0.1  # the cut word itself
    assert session.unsure("", 0, spans, "teacher", labels)
    assert not session.unsure("", 0, spans, "", labels)  # no role: never verified


async def test_concurrent_sessions_share_one_forward_with_the_same_labels(short):
    inc = load_predictor(short, "student", device="cpu", mode="incremental")
    sessions = [inc.open_session() for _ in range(6)]
    texts = [TRACE[i * 97:i * 97 + 400 + 37 * i] for i in range(6)]
    for s, t in zip(sessions, texts, strict=True):  # different cache lengths before the batch
        await s.label("", t, 0, len(t), word_spans(t))
    more = [t + " Hmm, wait. So the answer is 42, let me check." for t in texts]
    starts = [len(t) + 1 for t in texts]
    batches = inc.session_batcher.batches
    labels = await asyncio.gather(*(
        s.label("", m, a, len(m), word_spans(m[a:])) for s, m, a in zip(sessions, more, starts,
                                                                        strict=True)))
    assert inc.session_batcher.batches == batches + 1
    alone = load_predictor(short, "student", device="cpu", mode="incremental")
    for m, a, got in zip(more, starts, labels, strict=True):
        s = alone.open_session()
        await s.label("", m, 0, a - 1, word_spans(m[:a - 1]))
        assert await s.label("", m, a, len(m), word_spans(m[a:])) == got


async def test_roles_sharing_a_predictor_share_one_session_per_trajectory(whole):
    """Cooperative runs: the incremental engine writes the same trajectories as the window one,
    and with one model for both roles each trajectory's tokens are read about once."""
    results = {}
    for mode in ("window", "incremental"):
        predictor = load_predictor(whole, "student", device="cpu", mode=mode)
        roles = {role: RoleRuntime(role, FakeBackend(name=f"fake-{role}", script=SCRIPTS[role] * 3), qwen3(),
                                   predictor, SamplingConfig(temperature=0), asyncio.Semaphore(8))
                 for role in ("student", "teacher")}
        engine = Cooperation(roles, SynthesisConfig(max_thinking_tokens=300, max_answer_tokens=4,
                                                    predict_every=1))
        trajs = await asyncio.gather(*(engine.run(Problem(f"p{i}", f"Question {i}?"))
                                       for i in range(3)))
        tokens = sum(len(predictor.encode(t.thinking)[0]) for t in trajs)  # the classifier's
        results[mode] = ([t.segments for t in trajs], predictor.token_forwards, tokens)
    assert results["incremental"][0] == results["window"][0]
    assert sum(len(s) > 1 for s in results["window"][0]) == 3  # every trajectory has cuts
    forwards, tokens = results["incremental"][1:]
    # About one forward per token (cuts every few words here: what was decoded past them too)
    assert forwards < 1.6 * tokens and 5 * forwards < results["window"][1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
async def test_on_a_gpu_sessions_run_in_bf16_batched_and_keep_the_windows_cuts(short):
    inc = load_predictor(short, "student", device="cuda", mode="incremental")
    ref = load_predictor(short, "student", device="cuda", mode="window")
    assert inc.model.dtype == torch.bfloat16
    texts = [TRACE[i * 131:i * 131 + 1500] for i in range(8)]

    async def grow(text, seed):
        session, got, want = inc.open_session(), [], []
        for chunk in _calls(text, random.Random(seed), (2, 6)):
            start, end = chunk[0][0], chunk[-1][1]
            spans = [(a - start, b - start) for a, b in chunk]
            got += await session.label("", text, start, end, spans)
            want += await ref.label(text[max(0, start - 2000):start], text[start:end], spans)
        return session, got, want

    runs = await asyncio.gather(*(grow(t, i) for i, t in enumerate(texts)))
    assert inc.session_batcher.batches < inc.calls  # concurrent sessions shared forwards
    for session, got, want in runs:
        k, _ = session.kv[0]
        assert k.dtype == torch.bfloat16 and k.is_cuda
        assert sum(a == b for a, b in zip(got, want, strict=True)) / len(got) > 0.95
