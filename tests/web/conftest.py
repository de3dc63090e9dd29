"""Web UI tests share one fixture: the app on a fresh store of either backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.web import Web, build_web


@pytest.fixture
def web(tmp_path: Path, database_url: str | None) -> Iterator[Web]:
    yield from build_web(tmp_path, database_url, "http://testserver")
