"""Shared test settings and fixtures.

The tests use tiny tensors, for which intra-op threading only adds overhead
and, on a busy machine, oversubscription makes torch orders of magnitude
slower. One thread also keeps floating-point reductions in a fixed order.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def benchmarks():
    """``benchmarks/regenerate.py`` as the module ``regenerate`` (the scripts of that folder import it): the results
    renderer, whose ``benchmark_module(name)`` imports another script of the folder."""
    if "regenerate" not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "benchmarks" / "regenerate.py"
        spec = importlib.util.spec_from_file_location("regenerate", path)
        sys.modules["regenerate"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["regenerate"])
    return sys.modules["regenerate"]
