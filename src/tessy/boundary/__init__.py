"""Boundary predictors: which words of a role's text are style and which are capability."""

from __future__ import annotations

from tessy.boundary.base import BoundaryPredictor, word_spans
from tessy.boundary.lexicon import LexiconPredictor

__all__ = ["BoundaryPredictor", "LexiconPredictor", "load_predictor", "word_spans"]


def load_predictor(spec: str, role: str, device: str = "auto", mode: str = "auto",
                   verify: float = 0.0, threads: int = 0) -> BoundaryPredictor:
    """`lexicon` (no model), or a token-classifier directory or hub id (docs/DESIGN.md), read
    incrementally or by window (`mode`; `verify`: incremental.py); `threads`: torch's CPU
    threads for it (0: torch's default)."""
    if spec == "lexicon":
        return LexiconPredictor(role)
    from tessy.boundary.classifier import load_classifier

    return load_classifier(spec, role, device, mode, verify, threads)
