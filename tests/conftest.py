"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import SHARED_FIXTURES


@pytest.fixture
def shared_fixtures() -> Path:
    """The folder of data files written by other people's code in the published formats."""
    if not SHARED_FIXTURES.exists():
        pytest.fail(f"shared fixtures not found at {SHARED_FIXTURES}; the repository must sit beside shared/")
    return SHARED_FIXTURES
