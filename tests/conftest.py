"""Shared pytest fixtures."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """The read-only golden data produced by the official tools."""
    if not SHARED_FIXTURES.is_dir():
        pytest.fail(f"{SHARED_FIXTURES} is missing: the suite needs ../shared/fixtures beside the checkout")
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def official_shapes(shared_fixtures: Path) -> dict[str, dict[str, list[int]]]:
    """Every state-dict key and shape of the 8 official checkpoints, by config name."""
    return json.loads((shared_fixtures / "sam2_state_dict_shapes.json").read_text())


@pytest.fixture(scope="session")
def official_state_dict(official_shapes) -> Callable[[str], dict[str, torch.Tensor]]:
    """``official_state_dict(config)``: an official checkpoint's keys and shapes, without data (meta device)."""
    return lambda config: {key: torch.empty(shape, device="meta") for key, shape in official_shapes[config].items()}
