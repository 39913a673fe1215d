"""How well a predictor matches held-out labels, in the terms that matter for cutting turns.

* word accuracy and the confusion of style / capability words (tokens too, for token models);
* style-span precision / recall / F1, a span being a maximal run of style words (exact match);
* cut agreement: where the student's and the teacher's rule (boundary/cut.py) would cut the
  segment read from its start, under the labels and under the predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tessy.boundary.base import BoundaryPredictor, word_spans
from tessy.boundary.classifier import TokenClassifierPredictor
from tessy.boundary.cut import first_wrong
from tessy.predictor.labels import IGNORE, LabelledSegment, encode_segment

BATCH = 32


@dataclass
class Confusion:
    """Counts of (gold, predicted) word labels."""

    style_as_style: int = 0
    style_as_capability: int = 0
    capability_as_style: int = 0
    capability_as_capability: int = 0

    def add(self, gold: bool, pred: bool) -> None:
        name = f"{'style' if gold else 'capability'}_as_{'style' if pred else 'capability'}"
        setattr(self, name, getattr(self, name) + 1)

    @property
    def total(self) -> int:
        return (self.style_as_style + self.style_as_capability + self.capability_as_style
                + self.capability_as_capability)


@dataclass
class EvalResult:
    """Figures of one evaluation."""

    segments: int = 0
    words: Confusion = field(default_factory=Confusion)
    token_correct: int = 0
    tokens: int = 0
    span_hits: int = 0
    gold_spans: int = 0
    pred_spans: int = 0
    cuts_agree: dict[str, int] = field(default_factory=lambda: {"student": 0, "teacher": 0})
    cut_distance: dict[str, int] = field(default_factory=lambda: {"student": 0, "teacher": 0})

    def summary(self) -> dict[str, float | int | None]:
        """Rounded figures, as in the model card and `--json`."""
        w = self.words
        p = self.span_hits / self.pred_spans if self.pred_spans else 0.0
        r = self.span_hits / self.gold_spans if self.gold_spans else 0.0
        n = max(1, self.segments)
        gold_style = max(1, w.style_as_style + w.style_as_capability)
        pred_style = max(1, w.style_as_style + w.capability_as_style)
        return {
            "segments": self.segments,
            "word_accuracy": _round((w.style_as_style + w.capability_as_capability) / max(1, w.total)),
            "token_accuracy": _round(self.token_correct / self.tokens) if self.tokens else None,
            "style_word_recall": _round(w.style_as_style / gold_style),
            "style_word_precision": _round(w.style_as_style / pred_style),
            "span_precision": _round(p), "span_recall": _round(r),
            "span_f1": _round(2 * p * r / (p + r) if p + r else 0.0),
            "student_cut_agreement": _round(self.cuts_agree["student"] / n),
            "teacher_cut_agreement": _round(self.cuts_agree["teacher"] / n),
            "student_cut_mean_words_off": _round(self.cut_distance["student"] / n),
            "teacher_cut_mean_words_off": _round(self.cut_distance["teacher"] / n),
        }


def _round(x: float) -> float:
    return round(x, 4)


def first_cut(labels: list[bool], role: str) -> int | None:
    """Words the role keeps before its first wrong-kind word (≥ 1), None if it is never cut."""
    wrong = first_wrong(labels, role)
    return None if wrong is None else max(wrong, 1)


def _runs(labels: list[bool]) -> set[tuple[int, int]]:
    runs, start = set(), None
    for i, style in enumerate([*labels, False]):
        if style and start is None:
            start = i
        elif not style and start is not None:
            runs.add((start, i))
            start = None
    return runs


def _score(result: EvalResult, gold: list[bool], pred: list[bool]) -> None:
    result.segments += 1
    for g, p in zip(gold, pred, strict=True):
        result.words.add(g, p)
    gold_runs, pred_runs = _runs(gold), _runs(pred)
    result.gold_spans += len(gold_runs)
    result.pred_spans += len(pred_runs)
    result.span_hits += len(gold_runs & pred_runs)
    for role in ("student", "teacher"):
        g, p = first_cut(gold, role), first_cut(pred, role)
        result.cuts_agree[role] += g == p
        result.cut_distance[role] += abs((g if g is not None else len(gold)) -
                                         (p if p is not None else len(gold)))


def _score_tokens(result: EvalResult, predictor: TokenClassifierPredictor,
                  segments: list[LabelledSegment]) -> None:
    """Token accuracy in the predictor's own tokens (token classifiers only)."""
    meta = predictor.meta
    encoded = [encode_segment(predictor.tokenizer, s, "current", meta.window) for s in segments]
    styles = predictor.token_styles([e["input_ids"] for e in encoded])
    for enc, pred in zip(encoded, styles, strict=True):
        pairs = [(g, p) for g, p in zip(enc["labels"], pred, strict=True) if g != IGNORE]
        if meta.label_shift == "next" and pairs:
            pairs = pairs[1:]  # the first token has no predecessor to be labelled from
        result.tokens += len(pairs)
        result.token_correct += sum(g == p for g, p in pairs)


def evaluate(predictor: BoundaryPredictor, segments: list[LabelledSegment]) -> EvalResult:
    """Score `predictor`'s word labels on labelled segments (each read from its start, no
    context)."""
    result = EvalResult()
    for i in range(0, len(segments), BATCH):
        chunk = segments[i:i + BATCH]
        items = [("", s.text, word_spans(s.text)) for s in chunk]
        preds = predictor.label_batch(items)
        for seg, (_, _, words), pred in zip(chunk, items, preds, strict=True):
            _score(result, [seg.is_style(a, b) for a, b in words], pred)
    return result


def evaluate_classifier(classifier: TokenClassifierPredictor,
                        segments: list[LabelledSegment]) -> EvalResult:
    """`evaluate`, and the token accuracy of a token classifier in its own tokens."""
    result = evaluate(classifier, segments)
    for i in range(0, len(segments), BATCH):
        _score_tokens(result, classifier, segments[i:i + BATCH])
    return result


def render(result: EvalResult, name: str) -> str:
    """A confusion table and the headline figures, for a person."""
    s, w = result.summary(), result.words
    rows = [
        f"predictor {name} on {s['segments']} segments, {w.total} words",
        "",
        "                 predicted style   predicted capability",
        f"  gold style     {w.style_as_style:>15}   {w.style_as_capability:>20}",
        f"  gold capability{w.capability_as_style:>16}   {w.capability_as_capability:>20}",
        "",
    ]
    rows += [f"  {k:<28} {v}" for k, v in s.items() if k != "segments" and v is not None]
    return "\n".join(rows)
