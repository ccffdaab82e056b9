"""import_vos -> evaluate_jf -> export on synthetic LVOS and MOSE roots, on a real MongoDB: the stored scores (LVOS's
valid ranges and V, MOSE's DAVIS rules with Recall and Decay) equal the folder evaluator's on the PNGs the export
writes in the layout, and the export gives the ground truth back pixel for pixel."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import execute, mongod  # noqa: F401

import fiftyone as fo
import numpy as np
import pytest

from sam2_plugins.datasets import get_layout
from sam2_plugins.evaluate import evaluate_folders, lvos_ranges
from sam2_plugins.fiftyone_plugin.masks import mask_to_detection
from sam2_plugins.fiftyone_plugin.tracks import masklet_summaries
from sam2_plugins.masks import read_mask_png
from sam2_plugins.sample_data import write_lvos, write_mose

pytestmark = pytest.mark.fiftyone

LAYOUTS = {
    "lvos": (write_lvos, "val", ("J-Recall", "F-Recall", "V")),
    "mose": (write_mose, "train", ("J-Recall", "F-Recall", "J-Decay", "F-Decay")),
}


def degrade(sample: fo.Sample, field: str) -> None:
    """``field``: the ground truth moved 3 pixels right, each object missed on every 5th frame."""
    size = (sample.metadata.frame_width, sample.metadata.frame_height)
    for number, frame in sample.frames.items():
        kept = []
        for detection in frame.ground_truth.detections if frame.ground_truth else []:
            if (number + detection.index) % 5:
                mask = np.roll(detection.to_segmentation(frame_size=size).mask > 0, 3, axis=1)
                kept.append(mask_to_detection(mask, index=detection.index, label=detection.label))
        frame[field] = fo.Detections(detections=[d for d in kept if d is not None])
    sample.save()


@pytest.mark.parametrize("layout_name", list(LAYOUTS))
def test_stored_scores_equal_the_folder_evaluator_on_the_exported_layout(layout_name, mongod, tmp_path):
    write, split, statistics = LAYOUTS[layout_name]
    root = tmp_path / layout_name
    write(root, num_videos=2, num_frames=9, split=split)
    result = execute("import_vos", dataset_dir=str(root), dataset_name=f"vos-{layout_name}")
    assert (result["layout"], len(result["imported"])) == (layout_name, 2)
    dataset = fo.load_dataset(f"vos-{layout_name}")
    layout = get_layout(layout_name)
    videos = {video.video_id: video for video in layout.videos(root, split=split)}
    for sample in dataset:
        degrade(sample, "moved")
        video = videos[sample.video_id]
        ranges = lvos_ranges(video) if layout_name == "lvos" else {}
        for summary in masklet_summaries(sample):
            frame_range = ranges.get(summary.object_id)
            assert summary.frame_range == (None if frame_range is None else list(frame_range))
    scores = execute("evaluate_jf", dataset=dataset, pred_field="moved", eval_key="moved")
    stored = dataset.load_evaluation_results("moved")
    assert scores["protocol"] == stored.config.protocol == layout.protocol
    assert set(statistics) <= set(stored.global_scores)

    pred_root, gt_copy = tmp_path / "moved", tmp_path / "gt"
    execute("export_sav_predictions", dataset=dataset, pred_field="moved", output_dir=str(pred_root))
    execute("export_sav_predictions", dataset=dataset, pred_field="ground_truth", output_dir=str(gt_copy))
    annotations = root / split / "Annotations"
    for video_id, video in videos.items():
        for frame in video.annotated_frames():
            name = video.frame_names[frame]
            assert np.array_equal(
                read_mask_png(gt_copy / video_id / f"{name}.png"), read_mask_png(annotations / video_id / f"{name}.png")
            ), (video_id, name)
    ranges = {video_id: lvos_ranges(video) for video_id, video in videos.items()} if layout_name == "lvos" else None
    folder = evaluate_folders(annotations, pred_root, protocol=layout.protocol, object_ranges=ranges)
    expected = folder.to_json()
    assert stored.global_scores.keys() == expected["global"].keys()
    for name, value in expected["global"].items():
        assert stored.global_scores[name] == pytest.approx(value, abs=1e-9), name
    assert stored.objects.keys() == expected["objects"].keys()
    for key, values in expected["objects"].items():
        for name, value in values.items():
            assert stored.objects[key][name] == pytest.approx(value, abs=1e-9), (key, name)
