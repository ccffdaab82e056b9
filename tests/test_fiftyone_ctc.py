"""CTC sequences into FiftyOne video samples and back, through the operators, on a real MongoDB; the exported
results pass py-ctcmetrics' validator and score as it scores them."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import execute, fresh_dataset_name, mongod  # noqa: F401

import numpy as np
import pytest
from ctc_results import write_result
from fiftyone.operators.executor import ExecutionError

from sam2_plugins.ctc import read_ctc
from sam2_plugins.sample_cells import dividing_cells, write_dividing_cells
from sam2_plugins.tracking_metrics import evaluate_sequence

pytestmark = pytest.mark.fiftyone


@pytest.fixture(scope="module")
def ctc_folder(tmp_path_factory):
    """A CTC dataset folder: sequence 01 with ground truth and a result with errors."""
    cells = dividing_cells(num_frames=12, size=64, num_cells=2, cycle=(4, 6), seed=2)
    root = tmp_path_factory.mktemp("ctc") / "Synthetic-Cells"
    write_dividing_cells(root, cells, segmentation_stride=3)
    write_result(root / "01_RES", cells, ("missed", "split", "wrong_parent"), seed=3)
    return root, cells


def test_import_makes_a_video_with_track_ids_and_the_lineage(ctc_folder, fresh_dataset_name):
    import fiftyone as fo

    root, cells = ctc_folder
    result = execute("import_ctc", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    assert result["imported"] == ["Synthetic-Cells_01"]
    dataset = fo.load_dataset(fresh_dataset_name)
    sample = dataset.first()
    assert (sample.ctc_dataset, sample.ctc_sequence, sample.metadata.total_frame_count) == ("Synthetic-Cells", "01", 12)
    assert sample.frames[1].filepath == str(root / "01" / "t000.tif")
    built = fo.VideoMetadata.build_for(sample.filepath)  # the App's mp4, as ffprobe reads it
    assert (built.total_frame_count, built.frame_width, built.frame_height) == (12, 64, 64)
    for number in (1, 6, 12):
        truth = cells.labels[number - 1]
        detections = sample.frames[number].ground_truth.detections
        assert sorted(d.index for d in detections) == sorted(set(np.unique(truth).tolist()) - {0})
        for detection in detections:
            assert detection.label == "cell"
            mask = detection.to_segmentation(frame_size=(64, 64)).mask > 0
            assert np.array_equal(mask, truth == detection.index)
    lineage = {track["track_id"]: track for track in sample.ground_truth_lineage}
    for track in cells.lineage:
        assert lineage[track.track_id] == {
            "track_id": track.track_id,
            "first_frame": track.first + 1,
            "last_frame": track.last + 1,
            "parent": track.parent,
        }
    assert any(track["parent"] for track in sample.ground_truth_lineage), "the sample must hold divisions"
    assert len(sample.ctc_result_lineage) > 0
    again = execute("import_ctc", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    assert (again["imported"], again["skipped"]) == ([], ["Synthetic-Cells_01"])


def test_export_writes_what_was_imported_and_it_scores_as_py_ctcmetrics(ctc_folder, fresh_dataset_name, tmp_path):
    import fiftyone as fo
    from ctc_metrics.scripts.evaluate import evaluate_sequence as official_evaluate
    from ctc_metrics.scripts.validate import validate_sequence

    root, cells = ctc_folder
    execute("import_ctc", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    dataset = fo.load_dataset(fresh_dataset_name)
    out = tmp_path / "out"
    result = execute("export_ctc", dataset=dataset, label_field="ground_truth", output_dir=str(out))
    exported = out / "Synthetic-Cells" / "01_RES"
    assert result["written"] == [str(exported)]
    assert validate_sequence(str(exported), threads=1)["Valid"] == 1
    frames, lineage = read_ctc(exported)
    assert lineage == cells.lineage
    assert all(np.array_equal(frame, truth) for frame, truth in zip(frames, cells.labels))

    execute("export_ctc", dataset=dataset, label_field="ctc_result", output_dir=str(out / "results"))
    exported_result = out / "results" / "Synthetic-Cells" / "01_RES"
    original_frames, original_lineage = read_ctc(root / "01_RES")
    exported_frames, exported_lineage = read_ctc(exported_result)
    assert exported_lineage == original_lineage
    assert all(np.array_equal(frame, original) for frame, original in zip(exported_frames, original_frames))
    official = official_evaluate(str(exported_result), str(root / "01_GT"), metrics=["SEG", "DET", "TRA"], threads=1)
    ours = evaluate_sequence(root / "01_GT", exported_result)
    assert (ours.seg, ours.det, ours.tra) == pytest.approx(
        (official["SEG"], official["DET"], official["TRA"]), abs=1e-6
    )
    assert ours.tra < 1.0


def test_edited_labels_export_as_a_valid_result(ctc_folder, fresh_dataset_name, tmp_path):
    """A cell deleted on a middle frame in the App (a gap) continues as a child track; the rest keeps its lineage."""
    import fiftyone as fo
    from ctc_metrics.scripts.validate import validate_sequence

    root, cells = ctc_folder
    execute("import_ctc", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    sample = fo.load_dataset(fresh_dataset_name).first()
    track = next(t for t in cells.lineage if t.last - t.first >= 4)
    frame = sample.frames[track.first + 3]
    frame.ground_truth.detections = [d for d in frame.ground_truth.detections if d.index != track.track_id]
    sample.save()
    execute("export_ctc", dataset=sample._dataset, label_field="ground_truth", output_dir=str(tmp_path))
    exported = tmp_path / "Synthetic-Cells" / "01_RES"
    assert validate_sequence(str(exported), threads=1)["Valid"] == 1
    _, lineage = read_ctc(exported)
    assert lineage[track.track_id].last == track.first + 1
    (continued,) = [t for t in lineage if t.parent == track.track_id and t.first == track.first + 3]
    assert continued.last == track.last
    assert [lineage[child].parent for child in cells.lineage.children(track.track_id)] == [continued.track_id] * len(
        cells.lineage.children(track.track_id)
    )


def test_a_folder_without_sequences_and_a_detection_without_track_id_are_named(
    ctc_folder, fresh_dataset_name, tmp_path
):
    import fiftyone as fo

    with pytest.raises(ExecutionError, match=f"{tmp_path}: no sequence folder .*01_GT"):
        execute("import_ctc", dataset_dir=str(tmp_path), dataset_name=fresh_dataset_name)
    root, _ = ctc_folder
    execute("import_ctc", dataset_dir=str(root), dataset_name=fresh_dataset_name)
    sample = fo.load_dataset(fresh_dataset_name).first()
    sample.frames[2].ground_truth.detections[0].index = None
    sample.save()
    result = execute("export_ctc", dataset=sample._dataset, label_field="ground_truth", output_dir=str(tmp_path / "o"))
    (failure,) = result["failures"]
    assert "Synthetic-Cells_01: video Synthetic-Cells_01, frame 2: detection" in failure
    assert "has index None; CTC needs a track id" in failure
    assert not (tmp_path / "o" / "Synthetic-Cells" / "01_RES" / "res_track.txt").exists()
