"""apply_sam2 refuses to write into the field its prompts come from, and says when it has nothing to do."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import execute, form_errors, fresh_dataset_name, import_synthetic_val, mongod  # noqa: F401

import pytest
from fiftyone.operators.executor import ExecutionError

from sam2_plugins.fiftyone_plugin.apply_sam2 import ApplySam2Params
from sam2_plugins.fiftyone_plugin.completion import mark_finished

pytestmark = pytest.mark.fiftyone


@pytest.fixture
def dataset(fresh_dataset_name, tmp_path):
    return import_synthetic_val(tmp_path / "sav_val", fresh_dataset_name, num_videos=1, num_frames=5, seed=7)


def masks(dataset, field):
    return [d.mask.tolist() for d in dataset.values(f"frames.{field}.detections", unwind=True)]


@pytest.mark.parametrize(
    "params",
    [
        {"prompt": "gt_masks", "pred_field": "ground_truth"},
        {"prompt": "gt_boxes", "gt_field": "frames.ground_truth", "pred_field": "ground_truth"},
        {"prompt": "ground_truth", "pred_field": "frames.ground_truth"},
    ],
)
def test_predictions_into_the_prompt_field_are_refused_and_it_is_kept(dataset, params):
    before = masks(dataset, "ground_truth")
    message = "pred_field '.*ground_truth' is the field the prompts are read from"
    assert list(form_errors("apply_sam2", dataset, **params)) == ["pred_field"]
    with pytest.raises(ExecutionError, match=message):
        execute("apply_sam2", dataset=dataset, checkpoint="sam2.1_hiera_tiny", **params)
    with pytest.raises(ValueError, match=message):
        ApplySam2Params(**params)
    assert before and masks(dataset, "ground_truth") == before


def test_a_run_with_nothing_to_do_says_so(dataset):
    for sample in dataset:
        mark_finished(sample, ApplySam2Params(pred_field="done").step)
    result = execute("apply_sam2", dataset=dataset, checkpoint="sam2.1_hiera_tiny", pred_field="done")
    assert result == {
        "predicted": [],
        "summary": "0 predicted into 'done'; 1 skipped: already predicted (tick overwrite to redo them)",
    }
    with pytest.raises(ExecutionError, match="nothing to predict: the target view of dataset '.*' has no samples"):
        execute("apply_sam2", view=dataset.limit(0), checkpoint="sam2.1_hiera_tiny", pred_field="other")
