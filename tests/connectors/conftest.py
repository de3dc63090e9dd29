"""Fixtures shared by the connector tests: an HTTP client, and the Wazuh API fake on a clock
the test moves."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fakes.wazuh_api import WazuhAPIFake
from support.clock import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api(clock: Clock) -> Iterator[WazuhAPIFake]:
    with WazuhAPIFake(clock=clock) as fake:
        yield fake


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c
