"""Offline, the App's operators and the FiftyOne models report the missing official checkpoint with the library's
message (where to get the file), after asking the Hub nothing."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import execute, fresh_dataset_name, import_synthetic_val, mongod  # noqa: F401

import fiftyone as fo
import pytest
from fiftyone.operators.executor import ExecutionError
from huggingface_hub import constants

from sam2_plugins.fiftyone_plugin import Sam2VideoModel
from sam2_plugins.model.checkpoint import CheckpointNotFoundError
from sam2_plugins.model.official import OFFICIAL_CHECKPOINTS

pytestmark = pytest.mark.fiftyone

EXPECTED = (
    "sam2.1_hiera_tiny.pt is not in the Hugging Face cache and HF_HUB_OFFLINE is set, so it was not downloaded from "
    f"facebook/sam2.1-hiera-tiny; download {OFFICIAL_CHECKPOINTS['sam2.1_hiera_tiny'].url}"
)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE with an empty Hugging Face cache, as huggingface_hub reads them."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))


def test_apply_sam2_offline_fails_with_where_to_get_the_checkpoint(offline, fresh_dataset_name, tmp_path):
    dataset = import_synthetic_val(tmp_path / "sav", fresh_dataset_name, num_videos=1, num_frames=5)
    with pytest.raises(ExecutionError, match=EXPECTED.replace(".", r"\.")):
        execute(
            "apply_sam2",
            dataset,
            checkpoint="sam2.1_hiera_tiny",
            device="cpu",
            prompt="gt_masks",
            pred_field="sam2",
            delegate=False,
        )
    assert not dataset.has_frame_field("sam2")


def test_a_fiftyone_model_offline_fails_with_where_to_get_the_checkpoint(offline, fresh_dataset_name, tmp_path):
    dataset = import_synthetic_val(tmp_path / "sav", fresh_dataset_name, num_videos=1, num_frames=5)
    with pytest.raises(CheckpointNotFoundError, match=EXPECTED.replace(".", r"\.")):
        dataset.apply_model(
            Sam2VideoModel(checkpoint="sam2.1_hiera_tiny", device="cpu"),
            "sam2",
            prompt_field="frames.ground_truth",
            skip_failures=False,  # FiftyOne's default logs the same message per sample and goes on
        )
    assert not fo.load_dataset(fresh_dataset_name).has_frame_field("sam2")
