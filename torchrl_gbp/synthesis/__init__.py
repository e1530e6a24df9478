"""Data synthesis: replay-buffer transforms that turn offline windows into the paper's training data."""
from .adversarial import AdversarialOptions, AdversarialSynthesis
from .factory import METHODS, SynthesisShares, make_synthesis
from .online import SCHEDULES, OnlineOptions, OnlineSynthesis

__all__ = ["METHODS", "SCHEDULES", "AdversarialOptions", "AdversarialSynthesis", "OnlineOptions", "OnlineSynthesis", "SynthesisShares",
           "make_synthesis"]
