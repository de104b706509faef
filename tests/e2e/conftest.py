"""Fixtures for the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alerts.evaluation import forget_rules_cache


@pytest.fixture(autouse=True)
def _fresh_rules() -> Iterator[None]:
    """Rules (and the metric names they watch) are read afresh: each test has its own,
    and a process keeps them a few seconds."""
    forget_rules_cache()
    yield
    forget_rules_cache()
