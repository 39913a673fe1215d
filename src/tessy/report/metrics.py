"""The figures of the report, each a pure function of samples (NLL lives in `nll.py`)."""

from __future__ import annotations

import re
from statistics import mean, median

from tessy.records import Sample
from tessy.report.dataset import Dataset

# Style markers counted per 1000 words (the paper's Fig. 8/14 style words).
STYLE_MARKERS = ("wait", "hmm", "okay", "alright", "let me", "let's", "alternatively", "actually",
                 "but wait", "maybe", "i think", "double-check", "so")

_WORD = re.compile(r"\S+")


def words(text: str) -> int:
    return len(_WORD.findall(text))


def role_shares(ds: Dataset) -> dict[str, float]:
    """Share of thinking tokens written by each role (tessy's counts, in the student's tokenizer)."""
    totals: dict[str, int] = {}
    for s in ds.samples:
        for role, n in s.tokens.items():
            totals[role] = totals.get(role, 0) + n
    total = sum(totals.values())
    return {role: n / total for role, n in sorted(totals.items())} if total else {}


def switches_per_1000(ds: Dataset) -> float:
    """Role switches per 1000 thinking tokens."""
    tokens = sum(sum(s.tokens.values()) for s in ds.samples)
    return 1000 * sum(s.switches for s in ds.samples) / tokens if tokens else 0.0


def span_lengths(ds: Dataset) -> dict[str, list[int]]:
    """Words per span, by origin (thinking only)."""
    out: dict[str, list[int]] = {}
    for s in ds.samples:
        for span in s.spans:
            if span.origin != "answer":
                out.setdefault(span.origin, []).append(words(s.assistant[span.start:span.end]))
    return out


def response_lengths(ds: Dataset) -> list[int]:
    """Words per assistant response (thinking and answer)."""
    return [words(s.assistant) for s in ds.samples]


def style_frequency(ds: Dataset) -> dict[str, float]:
    """Occurrences of each style marker per 1000 words of thinking."""
    text = "\n".join(s.thinking for s in ds.samples).lower().replace("’", "'")
    n = words(text)
    if not n:
        return {m: 0.0 for m in STYLE_MARKERS}
    return {m: 1000 * len(re.findall(rf"(?<![\w'-]){re.escape(m)}(?![\w'-])", text)) / n
            for m in STYLE_MARKERS}


def tfidf_similarity(ds: Dataset, reference: Dataset) -> float | None:
    """Mean TF-IDF cosine similarity of each response to the reference's for the same problem.

    The vocabulary and IDF are fitted on the compared responses of both datasets.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    ref = reference.by_id()
    pairs = [(_content(s), _content(ref[s.id])) for s in ds.samples if s.id in ref]
    if not pairs:
        return None
    vectorizer = TfidfVectorizer().fit([t for pair in pairs for t in pair])
    a = vectorizer.transform([p[0] for p in pairs])
    b = vectorizer.transform([p[1] for p in pairs])
    return float(a.multiply(b).sum(axis=1).mean())  # rows are L2-normalised: dot = cosine


def _content(sample: Sample) -> str:
    """The response without its `<think>` markup, which every response shares."""
    return sample.thinking + "\n" + sample.answer


def summary(values: list[int]) -> dict[str, float]:
    """Mean, median and max of a list (zeros when empty)."""
    if not values:
        return {"mean": 0.0, "median": 0.0, "max": 0.0}
    return {"mean": mean(values), "median": float(median(values)), "max": float(max(values))}
