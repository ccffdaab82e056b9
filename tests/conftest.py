"""Shared pytest fixtures."""
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """The read-only golden data produced by the official tools."""
    if not SHARED_FIXTURES.is_dir():
        pytest.fail(f"{SHARED_FIXTURES} is missing: the suite needs ../shared/fixtures beside the checkout")
    return SHARED_FIXTURES
