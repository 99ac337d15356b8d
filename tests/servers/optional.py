"""Services and programs some tests need: skipped with the reason where absent, failed on CI (CI=true)."""

import os
from typing import NoReturn

import pytest


def unavailable(message: str) -> NoReturn:
    """Skip when a service this test needs is missing here; on CI its absence is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
