"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import SHARED_FIXTURES


@pytest.fixture
def shared_fixtures() -> Path:
    """The folder of data files written by other people's code in the published formats."""
    if not SHARED_FIXTURES.exists():
        pytest.fail(f"shared fixtures not found at {SHARED_FIXTURES}; the repository must sit beside shared/")
    return SHARED_FIXTURES


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks run fastest on one thread, and stay fast when other processes load the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
