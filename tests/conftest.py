"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import FIXTURES


@pytest.fixture
def published_fixtures() -> Path:
    """The folder of data files written by the benchmarks' own code in their published formats."""
    return FIXTURES


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks run fastest on one thread, and stay fast when other processes load the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
