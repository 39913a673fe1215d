"""Boundary predictors: which words of a role's text are style and which are capability."""

from __future__ import annotations

from tessy.boundary.base import BoundaryPredictor, word_spans
from tessy.boundary.lexicon import LexiconPredictor
from tessy.errors import ConfigError

__all__ = ["BoundaryPredictor", "LexiconPredictor", "load_predictor", "word_spans"]


def load_predictor(spec: str, role: str) -> BoundaryPredictor:
    """`lexicon` (no model) or, once learned predictors land, a model directory."""
    if spec == "lexicon":
        return LexiconPredictor(role)
    raise ConfigError(f"synthesis.{role}_predictor: unknown predictor {spec!r} (use lexicon)")
