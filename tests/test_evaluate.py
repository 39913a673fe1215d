"""Predictor evaluation figures on hand-built segments with known answers."""

from __future__ import annotations

import pytest

from tessy.boundary import LexiconPredictor
from tessy.predictor.evaluate import evaluate, first_cut, render
from tessy.predictor.labels import IGNORE, LabelledSegment, token_labels


def _segment(text: str, *style: str) -> LabelledSegment:
    return LabelledSegment("s", text, [(text.index(p), text.index(p) + len(p)) for p in style])


def test_figures_of_the_lexicon_against_hand_labels():
    segments = [
        _segment("Okay, so the sum is 42.", "Okay,"),  # the lexicon also takes "so the"
        _segment("Tens: 10 + 20 = 30. Hmm, wait.", "Hmm, wait."),
    ]
    result = evaluate(LexiconPredictor("student"), segments)
    w = result.words
    assert (w.style_as_style, w.style_as_capability, w.capability_as_style,
            w.capability_as_capability) == (3, 0, 2, 9)
    s = result.summary()
    assert s["word_accuracy"] == round(12 / 14, 4)
    assert s["token_accuracy"] is None  # the lexicon has no tokens
    assert (s["span_precision"], s["span_recall"], s["span_f1"]) == (0.5, 0.5, 0.5)
    assert s["student_cut_agreement"] == 0.5  # cut after 1 word (gold) vs 3 (predicted)
    assert s["student_cut_mean_words_off"] == 1.0
    assert s["teacher_cut_agreement"] == 1.0
    table = render(result, "lexicon")
    assert "gold style" in table and "word_accuracy" in table


@pytest.mark.parametrize("labels, student, teacher", [
    ([True, True, False, True], 2, 1),  # a turn keeps at least one word
    ([False, False, True], 1, 2),
    ([True, True], None, 1),
    ([False], 1, None),
])
def test_first_cut_follows_the_turn_rules(labels, student, teacher):
    assert first_cut(labels, "student") == student
    assert first_cut(labels, "teacher") == teacher


def test_token_labels_shift_and_whitespace():
    seg = _segment("Okay, so 2 + 2", "Okay, so")
    offsets = [(0, 4), (4, 5), (5, 8), (8, 10), (10, 11), (11, 12), (12, 14)]  # "Okay" "," " so" ...
    assert token_labels(seg, offsets, "current") == [1, 1, 1, 0, IGNORE, 0, 0]
    assert token_labels(seg, offsets, "next") == [1, 1, 0, IGNORE, 0, 0, IGNORE]
