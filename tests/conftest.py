"""Root fixtures: kept tiny on purpose. Heavy fixtures live in tests/integration/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples" / "wazuh"


@pytest.fixture
def samples_dir() -> Path:
    return SAMPLES
