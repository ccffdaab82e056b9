"""export_sav_predictions says what it skipped and refuses what it cannot do (nothing succeeds with nothing done)."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import execute, fresh_dataset_name, import_synthetic_val, mongod  # noqa: F401

import re

import numpy as np
import pytest
from fiftyone.operators.executor import ExecutionError
from file_trees import tree

from sam2_plugins.datasets.sav_eval import EVAL_ANNOTATIONS_FOLDER
from sam2_plugins.masks import read_binary_mask_png

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


def test_hostile_video_ids_with_overwrite_neither_escape_nor_delete(dataset, tmp_path):
    out = tmp_path / "work" / "out"
    execute("export_sav_predictions", dataset=dataset, pred_field="ground_truth", output_dir=str(out))
    (out / "keep.txt").write_text("a user's file beside the predictions")
    before = tree(tmp_path)
    sample = dataset.first()
    for hostile in (".", "..", "../../x", "../out", "sav/000001", str(tmp_path / "absolute"), "sav\n1", "sav\x00"):
        sample.video_id = hostile
        sample.save()
        refused = f"video_id of sample {sample.id} {re.escape(repr(hostile))} .*, so it cannot name a file or folder"
        with pytest.raises(ExecutionError, match=refused):
            execute(
                "export_sav_predictions",
                dataset=dataset,
                pred_field="ground_truth",
                output_dir=str(out),
                overwrite=True,
            )
        assert tree(tmp_path) == before, hostile  # nothing deleted, nothing written, inside or outside out


def test_two_samples_with_one_video_id_are_refused_naming_both_before_anything_is_written(dataset, tmp_path):
    first, second = dataset
    second.video_id = first.video_id
    second.save()
    out = tmp_path / "out"
    with pytest.raises(
        ExecutionError, match=f"samples {first.id} and {second.id} both have video_id '{first.video_id}', so both"
    ):
        execute("export_sav_predictions", dataset=dataset, pred_field="ground_truth", output_dir=str(out))
    assert not out.exists()
    result = execute(
        "export_sav_predictions", view=dataset.select(second.id), pred_field="ground_truth", output_dir=str(out)
    )
    assert result["videos_written"] == 1 and [p.name for p in out.iterdir()] == [first.video_id]


def test_a_video_id_named_as_another_videos_temporary_folder_is_refused_before_anything_is_written(dataset, tmp_path):
    """Video ``v`` is written in ``.v.partial`` first: a video of that id was deleted by it and reported written."""
    first, second = dataset
    first.video_id, second.video_id = ".v.partial", "v"
    first.save()
    second.save()
    out = tmp_path / "out"
    with pytest.raises(ExecutionError, match=rf"video_id of sample {first.id} '\.v\.partial' starts with '\.'"):
        execute("export_sav_predictions", dataset=dataset, pred_field="ground_truth", output_dir=str(out))
    assert not out.exists()


def test_overwrite_rewrites_the_frame_pngs_and_keeps_a_users_files(dataset, tmp_path):
    out = tmp_path / "out"
    execute("export_sav_predictions", dataset=dataset, pred_field="ground_truth", output_dir=str(out))
    video_id = dataset.first().video_id
    video = out / video_id
    (video / "notes.txt").write_text("the user's notes")
    (video / "000" / "review.txt").write_text("object 0 looks right")
    (video / "000" / "00000.png").write_bytes(b"a stale prediction")
    result = execute(
        "export_sav_predictions", dataset=dataset, pred_field="ground_truth", output_dir=str(out), overwrite=True
    )
    assert (result["videos_written"], result["videos_skipped"]) == (2, 0)
    assert (video / "notes.txt").read_text() == "the user's notes"
    assert (video / "000" / "review.txt").read_text() == "object 0 looks right"
    ground_truth = tmp_path / "sav_val" / EVAL_ANNOTATIONS_FOLDER / video_id / "000" / "00000.png"
    assert np.array_equal(read_binary_mask_png(video / "000" / "00000.png"), read_binary_mask_png(ground_truth))
    assert sorted(p.name for p in out.iterdir()) == sorted(dataset.values("video_id"))  # no temporary folder left
