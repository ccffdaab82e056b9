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
def sav_real_train(shared_fixtures: Path, tmp_path_factory) -> Path:
    """A train root holding Meta's real ``sav_000001_manual.json``, a stand-in mp4 of its size and frame count and
    an auto file in the real nesting (see ``sav_real.py``); written once per session, treat it as read-only."""
    from sav_real import write_real_sav_train

    root = tmp_path_factory.mktemp("sav_real")
    write_real_sav_train(root, shared_fixtures / "sav_real" / "sav_000001_manual.json")
    return root


@pytest.fixture(scope="session")
def official_shapes(shared_fixtures: Path) -> dict[str, dict[str, list[int]]]:
    """Every state-dict key and shape of the 8 official checkpoints, by config name."""
    return json.loads((shared_fixtures / "sam2_state_dict_shapes.json").read_text())


@pytest.fixture(scope="session")
def official_state_dict(official_shapes) -> Callable[[str], dict[str, torch.Tensor]]:
    """``official_state_dict(config)``: an official checkpoint's keys and shapes, without data (meta device)."""
    return lambda config: {key: torch.empty(shape, device="meta") for key, shape in official_shapes[config].items()}
