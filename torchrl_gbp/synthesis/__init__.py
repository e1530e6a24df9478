"""Data synthesis: replay-buffer transforms that turn offline windows into the paper's training data."""
from .adversarial import AdversarialSynthesis
from .online import OnlineSynthesis

__all__ = ["AdversarialSynthesis", "OnlineSynthesis"]
