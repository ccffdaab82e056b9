"""export_sav_predictions says what it skipped and refuses what it cannot do (nothing succeeds with nothing done)."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import execute, fresh_dataset_name, import_synthetic_val, mongod  # noqa: F401

import pytest
from fiftyone.operators.executor import ExecutionError

pytestmark = pytest.mark.fiftyone


@pytest.fixture
def dataset(fresh_dataset_name, tmp_path):
    return import_synthetic_val(tmp_path / "sav_val", fresh_dataset_name, num_videos=2, num_frames=5, seed=8)


def test_a_rerun_into_the_same_folder_says_the_videos_it_skipped(dataset, tmp_path):
    out = tmp_path / "out"
    first = execute("export_sav_predictions", dataset=dataset, pred_field="ground_truth", output_dir=str(out))
    assert (first["videos_written"], first["videos_skipped"]) == (2, 0)
    assert sorted(p.name for p in out.iterdir()) == sorted(dataset.values("video_id"))
    again = execute("export_sav_predictions", dataset=dataset, pred_field="ground_truth", output_dir=str(out))
    assert (again["videos_written"], again["videos_skipped"]) == (0, 2)
    assert (
        again["summary"]
        == f"0 videos written to {out}; 2 skipped: their folders exist (tick overwrite to rewrite them)"
    )


def test_an_empty_view_or_a_file_as_the_folder_is_a_clear_error(dataset, tmp_path):
    with pytest.raises(ExecutionError, match="nothing to export: the target view of dataset '.*' has no videos"):
        execute("export_sav_predictions", view=dataset.limit(0), pred_field="ground_truth", output_dir=str(tmp_path))
    a_file = tmp_path / "scores.txt"
    a_file.write_text("kept")
    with pytest.raises(ExecutionError, match=f"{a_file}: a file, not a folder; pass the folder"):
        execute("export_sav_predictions", dataset=dataset, pred_field="ground_truth", output_dir=str(a_file))
    assert a_file.read_text() == "kept"
