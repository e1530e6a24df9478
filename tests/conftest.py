"""Shared test settings.

The tests use tiny tensors, for which intra-op threading only adds overhead
and, on a busy machine, oversubscription makes torch orders of magnitude
slower. One thread also keeps floating-point reductions in a fixed order.
"""
from __future__ import annotations

import torch

torch.set_num_threads(1)
