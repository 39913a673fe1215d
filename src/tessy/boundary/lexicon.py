"""The lexicon predictor: style phrases of English reasoning text, matched at clause starts.

No model: a curated list good enough for the embedded default and for bootstrapping labels.
A word is *style* when it belongs to a listed phrase that starts a clause: at the start of the
thinking, after a newline, or after one of `. ! ? ; : ,`. "So the answer is 4" opens with style;
"x = 4 so y = 2" does not. The list follows the paper's labelling instruction: transitional,
filler and tone-setting phrases, never reasoning, code, formulas or problem-solving steps.

Left out on purpose: "yes" (to a yes/no question it is the answer, and a trace that opens
with it commits the teacher to it) and "the answer is" (the same, for any question).

It is role-aware. The *teacher's* predictor hands the floor back at interjections and self-talk
(`STRONG`) wherever a clause starts, and at connectives (`CONNECTIVE`) only where a sentence or
line starts ("Now we have 3", "\n2. First, ..."): cutting the teacher at every ", so" or ", then"
would fragment its reasoning, while instruct models, which never say "hmm" or "wait", open most
sentences with a connective. The *student's* predictor keeps all of it as style wherever a clause
starts, so the student writes the connective tissue of the trace, as in the paper's traces.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

STRONG = (
    "okay", "ok", "alright", "all right", "hmm", "hm", "hmm wait", "um", "uh", "wait", "well",
    "oh", "oh wait", "ah", "aha", "yeah", "right", "no wait", "but wait", "hold on",
    "let me see", "let's see", "let me think", "let me think about this", "let me think again",
    "let me check", "let me double-check", "let me verify", "let me make sure", "let me recall",
    "let me confirm", "let me reconsider", "let me re-examine", "let me re-read", "let me try",
    "let me start", "let me go through", "let me figure out", "let me try again",
    "i think", "i guess", "i wonder", "i recall", "i remember", "i see", "i'm not sure",
    "i need to", "i should", "i'll", "got it", "interesting", "anyway", "actually",
    "to begin with", "in this case", "for example", "for instance", "but if",
)
CONNECTIVE = (
    "so", "but", "and", "now", "then", "first", "firstly", "second", "next", "finally", "also",
    "maybe", "perhaps", "alternatively", "however", "therefore", "thus", "hence", "that means",
    "in other words", "on the other hand", "to summarize", "to sum up", "putting it together",
    "let me", "let's", "let us", "we need to", "we can", "the problem says", "the question is",
    "so far", "so now", "so the", "and then", "but then", "which means", "that is",
    # framing that instruct models open sentences with (both models of the embedded default)
    "to solve this", "to solve this problem", "to solve the problem", "to find",
    "to find the answer", "to determine", "here's", "here is", "we know that", "this means",
    "note that", "notice that", "given that", "recall that",
    "in summary", "in conclusion", "as a result", "now that", "after that",
)

_CLAUSE_END = ".!?;:,"
_SENTENCE_END = ".!?:"
CLAUSE, SENTENCE = 1, 2  # where a word stands: after a clause's end, or a sentence's (or a line)
_STRIP = "\"'*`_()[]"


@lru_cache(maxsize=1 << 16)  # a word is normalised again for each label call that sees it
def _norm(word: str) -> str:
    return word.replace("’", "'").strip(_STRIP).rstrip(_CLAUSE_END).strip(_STRIP).lower()


def _compile(phrases: tuple[str, ...]) -> dict[int, set[tuple[str, ...]]]:
    by_len: dict[int, set[tuple[str, ...]]] = {}
    for p in phrases:
        words = tuple(p.split())
        by_len.setdefault(len(words), set()).add(words)
    return by_len


class LexiconPredictor:
    """Role-aware phrase matcher; `role` picks the teacher's or the student's list."""

    def __init__(self, role: str = "student") -> None:
        strong = STRONG
        self.name = f"lexicon-{role}"
        # Phrases by where they count: at any clause start, or at sentence starts only.
        self.at_clause = _compile(strong + (CONNECTIVE if role == "student" else ()))
        self.at_sentence = _compile(strong + CONNECTIVE)
        self.phrases = self.at_sentence
        self.max_len = max(self.phrases)
        self._longest_first = sorted(self.phrases, reverse=True)  # lengths
        # Word tuples that a longer phrase starts with: words ending in one may still change.
        self.prefixes = {words[:k] for group in self.phrases.values() for words in group
                         for k in range(1, len(words))}
        # Cheap first tests: most words start no phrase and end no phrase prefix.
        self.first_words = {words[0] for group in self.phrases.values() for words in group}
        self.prefix_ends = {words[-1] for words in self.prefixes}
        # No re-reading: a word that a longer phrase may still continue is never settled
        # (`open_words`), so a phrase never starts before the first undecided word.
        self.lookbehind_words = self.max_len - 1
        self.lookahead_words = self.max_len - 1  # the most; `open_words` says how many now
        self.default_every = 1  # labelling is cheap: decide at every word
        self.context_chars = 64  # enough to see whether the first word opens a clause

    async def label(self, context: str, text: str, spans: list[tuple[int, int]]) -> list[bool]:
        """Style labels per word span; see the module docstring for the rule."""
        return self.label_sync(context, text, spans)

    def open_session(self) -> None:
        """None: the lexicon keeps no state over a trajectory."""
        return None

    def reading(self) -> dict[str, Any]:
        """Nothing to report: it reads no model."""
        return {}

    def label_batch(self, items: list[tuple[str, str, list[tuple[int, int]]]]) -> list[list[bool]]:
        """Labels of many (context, text, spans) items."""
        return [self.label_sync(*item) for item in items]

    def label_sync(self, context: str, text: str, spans: list[tuple[int, int]]) -> list[bool]:
        """The labels of one item, without the event loop."""
        words = [_norm(text[a:b]) for a, b in spans]
        labels = [False] * len(spans)
        i = 0
        while i < len(spans):
            where = self._clause_start(context, text, spans, i) if words[i] in self.first_words else 0
            if where:
                n = self._match(words, i, self.at_sentence if where == SENTENCE else self.at_clause)
                if n:
                    labels[i:i + n] = [True] * n
                    i += n
                    continue
            i += 1
        return labels

    def opens(self, text: str, start: int, end: int) -> bool:
        """Whether a phrase may start at the word text[start:end]: it starts one, and a clause
        may start there. Most words do not (mid-clause), and are settled without a label call."""
        if _norm(text[start:end]) not in self.first_words:
            return False
        prior = text[max(0, start - 16):start].rstrip(" \t")  # as `_clause_start` reads it
        return not prior or prior[-1] in _CLAUSE_END or prior[-1].isspace()

    def open_words(self, context: str, text: str, spans: list[tuple[int, int]]) -> int:
        """How many of the last words may still change label as more words arrive: those from
        a clause start whose words so far begin a longer phrase. Usually 0, so a cut is decided
        as soon as its word is complete instead of `lookahead_words` words later."""
        if not spans or _norm(text[spans[-1][0]:spans[-1][1]]) not in self.prefix_ends:
            return 0
        words = [_norm(text[a:b]) for a, b in spans]
        for i in range(len(words)):
            if tuple(words[i:]) in self.prefixes and self._clause_start(context, text, spans, i):
                return len(words) - i
        return 0

    @staticmethod
    def _clause_start(context: str, text: str, spans: list[tuple[int, int]], i: int) -> int:
        """SENTENCE when word i opens a sentence or line, CLAUSE after `,` or `;`, else 0."""
        gap_start = spans[i - 1][1] if i else 0
        if "\n" in text[gap_start:spans[i][0]]:
            return SENTENCE
        if i:
            before = text[gap_start - 1]
        else:
            stripped = context.rstrip(" \t")
            before = stripped[-1] if stripped else "\n"
        if before in _SENTENCE_END or before == "\n":
            return SENTENCE
        return CLAUSE if before in _CLAUSE_END else 0

    def _match(self, words: list[str], i: int, phrases: dict[int, set[tuple[str, ...]]]) -> int:
        """Length of the longest of `phrases` starting at word i, 0 if none."""
        for n in self._longest_first:
            if i + n <= len(words) and tuple(words[i:i + n]) in phrases.get(n, ()):
                return n
        return 0
