"""Errors of the operators' forms and runs that say what is accepted: shard counts, folders, empty views."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import execute, form_errors, fresh_dataset_name, mongod, sav_sample  # noqa: F401

import fiftyone as fo
import pytest
from fiftyone import ViewField as F
from fiftyone.operators.executor import ExecutionError

from sam2_plugins.fiftyone_plugin.import_sav import SAV_SPLIT_FOLDER, import_sav
from sam2_plugins.fiftyone_plugin.jf_evaluation import evaluate_jf

pytestmark = pytest.mark.fiftyone


@pytest.fixture
def imported(sav_sample, fresh_dataset_name) -> fo.Dataset:
    """The synthetic val split imported into a fresh dataset."""
    root, _ = sav_sample["val"]
    execute("import_sav", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    return fo.load_dataset(fresh_dataset_name)


@pytest.mark.parametrize("operator", ["apply_sam2", "auto_masklets"])
def test_zero_shards_is_refused_saying_one_or_more_is_accepted(imported, operator):
    assert form_errors(operator, imported, num_shards=0)["num_shards"] == "num_shards must be at least 1, got 0"
    assert "num_shards" not in form_errors(operator, imported, num_shards=1)
    with pytest.raises(ExecutionError, match="Path: num_shards. Reason: num_shards must be at least 1, got 0"):
        execute(operator, dataset=imported, num_shards=0, pred_field="never")
    assert not imported.has_frame_field("never")


def test_a_number_above_its_maximum_names_the_accepted_range(imported):
    errors = form_errors("auto_masklets", imported, pred_iou_thresh=1.5)
    assert errors["pred_iou_thresh"] == "pred_iou_thresh must be from 0 to 1, got 1.5"
    assert form_errors("import_sav", max_videos=0) == {"max_videos": "max_videos must be at least 1, got 0"}


def test_import_sav_given_a_file_says_it_is_a_file_and_asks_for_the_split_folder(sav_sample, mongod):
    root, _ = sav_sample["val"]
    for file in (root / "sav_val.txt", next(root.rglob("*.jpg"))):
        expected = f"{file} is a file, not a folder; give the path of {SAV_SPLIT_FOLDER}"
        assert form_errors("import_sav", dataset_dir=str(file)) == {"dataset_dir": expected}
        with pytest.raises(ExecutionError, match="Path: dataset_dir. Reason: .* is a file, not a folder"):
            execute("import_sav", dataset_dir=str(file), dataset_name="never-created")
        with pytest.raises(FileNotFoundError) as raised:
            import_sav(file, dataset_name="never-created")
        assert str(raised.value) == expected
    assert not fo.dataset_exists("never-created")


def test_evaluating_an_empty_view_says_the_view_has_no_samples(imported):
    empty = imported.match(F("video_id") == "no_such_video")
    with pytest.raises(ExecutionError, match=f"the view of dataset '{imported.name}' \\(Match\\) has no samples"):
        execute("evaluate_jf", view=empty, gt_field="ground_truth", pred_field="ground_truth", eval_key="jf")
    empty_dataset = fo.Dataset()
    empty_dataset.media_type = "video"
    try:
        with pytest.raises(ValueError, match=f"dataset '{empty_dataset.name}' has no samples: .*import_vos"):
            evaluate_jf(empty_dataset, "ground_truth", "ground_truth", "jf")
    finally:
        empty_dataset.delete()
    assert imported.list_evaluations() == []
