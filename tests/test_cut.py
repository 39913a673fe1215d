"""Boundary rules of a turn (docs/DESIGN.md) with the lexicon predictor."""

from __future__ import annotations

import random

import pytest

from tessy.boundary import LexiconPredictor, word_spans
from tessy.boundary.cut import TurnWatcher
from tessy.templates import HARMONY_END_MARKERS

MARKERS = ("</think>", *HARMONY_END_MARKERS)


async def feed_all(role: str, text: str, pieces: int = 1, context: str = ""):
    """Feed `text` in `pieces`-char pieces; return (kept text, ends_thinking) or None."""
    w = TurnWatcher(role, LexiconPredictor(role), context, MARKERS)
    for i in range(0, len(text), pieces):
        d = await w.feed(text[i:i + pieces], 1, final=False)
        if d:
            return w.text[: d.keep], d.ends_thinking
    d = await w.feed("", 0, final=True)
    return (w.text[: d.keep], d.ends_thinking) if d else None


def labels(role: str, text: str, context: str = "") -> list[bool]:
    return LexiconPredictor(role).label_sync(context, text, word_spans(text))


def test_lexicon_matches_at_clause_starts_only():
    assert labels("student", "Okay, let's see. The sum is 4.") == [True] * 3 + [False] * 4
    assert labels("student", "x = 4 so y = 2") == [False] * 7
    assert labels("student", "x = 4, so y = 2")[3] is True
    assert labels("student", "Hmm, wait, let me check.") == [True] * 5


def test_teacher_lexicon_takes_connectives_only_where_a_sentence_starts():
    assert labels("teacher", "x = 4, so y = 2. So the sum is 6.") == [False] * 7 + [True] * 2 + [False] * 3
    assert labels("teacher", "3 - 7 = -4\n2. Now we have 3", context="1.")[6] is True
    assert labels("teacher", "So the sum is 4.", context="x = 4,")[0] is False
    assert labels("teacher", "So the sum is 4.", context="x = 4.")[0] is True
    assert labels("teacher", "Wait, the sum is 4.", context="x = 4,")[0] is True


async def test_student_keeps_leading_style_and_cuts_at_capability():
    assert await feed_all("student", "Okay, let's see. The sum is 42. ") == ("Okay, let's see.", False)


async def test_teacher_keeps_capability_and_cuts_at_style():
    text = " 17 + 25 = 42. Wait, let me check that again. "
    assert await feed_all("teacher", text, context="Okay.") == (" 17 + 25 = 42.", False)


async def test_the_teacher_keeps_at_least_one_word_and_the_student_may_keep_none():
    assert await feed_all("student", "The sum is 42 here and now. ") == ("", False)
    assert await feed_all("teacher", " Hmm, the sum. ", context="x.") == (" Hmm,", False)


@pytest.mark.parametrize("pieces", [1, 3, 7, 1000])
async def test_cut_never_splits_a_word_and_does_not_depend_on_chunking(pieces):
    text = "Alright, so basically the multiplication 12345 * 6789 gives a number. "
    kept, _ = await feed_all("student", text, pieces)
    assert kept == "Alright, so"
    assert text.startswith(kept) and text[len(kept)] == " "


@pytest.mark.parametrize("marker", ["</think>", "assistantfinal", "<|end|><|start|>assistant"])
async def test_end_markers_of_both_families(marker):
    text = f" 17 + 25 = 42.{marker} The answer is 42."
    kept, ends = await feed_all("teacher", text, 2, context="Okay.")
    assert (kept, ends) == (" 17 + 25 = 42.", True)


async def test_a_cut_before_the_marker_wins():
    kept, ends = await feed_all("student", "Okay. The sum is 42.</think>")
    assert (kept, ends) == ("Okay.", False)


async def test_tokens_in_counts_straddling_tokens():
    w = TurnWatcher("teacher", None, "", ())
    for piece in ["ab", "cd", "ef"]:
        await w.feed(piece, 1, False)
    assert [w.tokens_in(n) for n in (0, 1, 2, 3, 6)] == [0, 1, 1, 2, 3]


class CountingLexicon(LexiconPredictor):
    """The lexicon, counting how often it is asked."""

    calls = 0

    async def label(self, context, text, spans):
        self.calls += 1
        return self.label_sync(context, text, spans)


class ReadsEveryWord(CountingLexicon):
    """The lexicon with no words ruled out: the watcher labels every window by a call."""

    def opens(self, text, start, end):
        return True


@pytest.mark.parametrize("role", ["student", "teacher"])
async def test_predict_every_calls_less_and_cuts_at_the_same_word(role):
    text = {  # the cut comes late for both roles
        "student": "Okay, let's see. Hmm, wait, let me think. Alright, well, okay, let me check. "
                   "Hmm, the sum is 42.",
        "teacher": "We need 17 plus 25 and we check it twice carefully; the tens give 30 and "
                   "the ones give 12. Hmm, wait.",
    }[role] + " Then more words follow here, enough to settle all of them."
    cuts = {}
    for every in (1, 8):
        # Labels every settled window by a call, as a model does (the lexicon rules most
        # words out without one, so it calls at openers only whatever `every` is).
        predictor = ReadsEveryWord(role)
        w = TurnWatcher(role, predictor, "", MARKERS, every)
        for n, i in enumerate(range(0, len(text), 3)):  # 3-char "tokens"
            d = await w.feed(text[i:i + 3], 1, final=False)
            if d:
                cuts[every] = (d.keep, n, predictor.calls)
                break
    (keep1, at1, calls1), (keep8, at8, calls8) = cuts[1], cuts[8]
    assert keep1 == keep8  # the same words are kept
    assert at8 >= at1 and at8 - at1 < 8  # found at most 8 tokens later
    assert calls8 < calls1


def test_lexicon_knows_which_last_words_may_still_change():
    lex = LexiconPredictor("student")

    def open_words(text: str, context: str = "") -> int:
        return lex.open_words(context, text, word_spans(text))

    assert open_words("The sum is 4. Wait,") == 0  # no phrase goes on after "wait"
    assert open_words("The sum is 4. Let") == 1  # "let me ..." may follow
    assert open_words("The sum is 4. Let me") == 2  # "let me see" may follow
    assert open_words("we let") == 0  # not at a clause start
    assert open_words("Let", context="x = 4.") == 1


async def test_a_teacher_cut_is_decided_when_its_word_is_complete():
    w = TurnWatcher("teacher", LexiconPredictor("teacher"), "", MARKERS)
    tokens = ["The", " sum", " is", " 4.", " Wait,", " the", " check"]
    fed = 0
    decision = None
    while decision is None:
        decision = await w.feed(tokens[fed], 1, final=False)
        fed += 1
    assert w.text[: decision.keep] == "The sum is 4."
    assert fed == 6  # "Wait," is known complete when the next token starts, and decides at once


async def test_words_that_open_no_phrase_skip_the_call_and_cut_the_same():
    rng = random.Random(7)
    vocab = [*"okay so wait let me see then the sum is 4 x = we need to and".split(),
             "Hmm,", "Now", "first.", "(so", "Let’s", "done;", "ok:", "</think>"]
    gaps = [" "] * 8 + ["\n", "  ", "\t", " \n ", "\r\n", "\u00a0", " " * 20]
    calls = {"skips": 0, "reads": 0}
    for _ in range(400):
        role = rng.choice(["student", "teacher"])
        text = "".join(rng.choice(vocab) + rng.choice(gaps) for _ in range(rng.randint(1, 30)))
        context = "".join(rng.choice(vocab) + rng.choice(gaps) for _ in range(rng.randint(0, 4)))
        cuts = []
        for kind in ("skips", "reads"):
            predictor = (CountingLexicon if kind == "skips" else ReadsEveryWord)(role)
            w = TurnWatcher(role, predictor, context, MARKERS)
            pieces = random.Random(len(text))
            i, d = 0, None
            while d is None and i < len(text):
                k = pieces.randint(1, 5)
                d = await w.feed(text[i:i + k], 1, final=i + k >= len(text))
                i += k
            cuts.append((i, d))
            calls[kind] += predictor.calls
        assert cuts[0] == cuts[1], text
    assert calls["skips"] < calls["reads"] / 2


async def test_word_tokens_and_small_pieces_cut_at_the_same_place():
    # " word" tokens take the watcher's fast path, 1-3 char pieces its general one.
    rng = random.Random(11)
    vocab = [*"okay so wait let me see then the sum is 4 x = we need to and but if".split(),
             "Hmm,", "Now", "first.", "(so", "Let’s", "done;", "ok:", "</think>", "So,", "4."]
    gaps = [" "] * 10 + ["\n", "  ", "\t", "\u00a0"]
    for _ in range(300):
        role = rng.choice(["student", "teacher"])
        context = "".join(rng.choice(vocab) + rng.choice(gaps) for _ in range(rng.randint(0, 6)))
        words = [rng.choice(gaps) + rng.choice(vocab) for _ in range(rng.randint(1, 25))]
        text = "".join(words)
        chars, i = [], 0
        while i < len(text):
            k = rng.randint(1, 3)
            chars.append(text[i:i + k])
            i += k
        kept = []
        for pieces in (words, chars):
            w = TurnWatcher(role, LexiconPredictor(role), context, MARKERS)
            decision = None
            for n, piece in enumerate(pieces):
                decision = await w.feed(piece, 1, final=n == len(pieces) - 1)
                if decision:
                    break
            kept.append((decision.keep, decision.ends_thinking) if decision else None)
        assert kept[0] == kept[1], (role, context, text)


async def test_a_turn_that_goes_on_mid_sentence_is_cut_as_soon_as_its_first_word_is_whole():
    # "so" after "x = 4" opens no clause, so no phrase ("so the") can start there: the student
    # is cut before it once it is whole, without waiting to see whether "the" follows.
    w = TurnWatcher("student", LexiconPredictor("student"), "We get x = 4", MARKERS)
    assert await w.feed(" so", 1, final=False) is None
    decision = await w.feed(" y", 1, final=False)
    assert decision is not None and decision.keep == 0
