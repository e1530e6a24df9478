"""Data synthesis: replay-buffer transforms that turn offline windows into the paper's training data."""
from .adversarial import AdversarialSynthesis
from .factory import METHODS, make_synthesis
from .online import SCHEDULES, OnlineSynthesis

__all__ = ["METHODS", "SCHEDULES", "AdversarialSynthesis", "OnlineSynthesis", "make_synthesis"]
