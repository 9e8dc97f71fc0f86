"""Shared test fixtures (keep this small: module-specific helpers belong in the test modules)."""
import numpy as np
import pytest


@pytest.fixture
def rng():
    """A seeded numpy Generator, fresh for every test."""
    return np.random.default_rng(20240611)
