"""Explanations for recommendations: supporting history items (exact leave-one-out deltas, or
the EASE / ItemKNN item-item weights), shared attributes, and a sentence from a `longrec.lm`
generator that must pass a grounding check. See `longrec.explain.core`."""

from longrec.explain.core import EXPLAIN_KEYS, explain, explanation_facts, grounded_text, pitch
from longrec.explain.grounding import GroundingChecker

__all__ = ["EXPLAIN_KEYS", "explain", "explanation_facts", "grounded_text", "pitch", "GroundingChecker"]
