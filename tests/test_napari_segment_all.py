"""Segment all: every mask of the automatic mask generator on a frame becomes an object, ready to propagate."""

import numpy as np
import pytest
from random_checkpoint import CONFIG, IMAGE_SIZE, write_random_checkpoint

from sam2_plugins.frames import open_frames
from sam2_plugins.model import Sam2AutomaticMaskGenerator, Sam2ImagePredictor, Sam2VideoPredictor
from sam2_plugins.napari_plugin.segment_all import segment_all
from sam2_plugins.napari_plugin.tracking import TrackingSession, paint_masks
from sam2_plugins.sample_data import synthetic_cells


@pytest.fixture(scope="module")
def video_predictor(tmp_path_factory):
    checkpoint = write_random_checkpoint(tmp_path_factory.mktemp("checkpoint"))
    return Sam2VideoPredictor.from_checkpoint(checkpoint, config=CONFIG, image_size=IMAGE_SIZE, device="cpu")


def generator_on(video_predictor, **options) -> Sam2AutomaticMaskGenerator:
    """A generator sharing the video predictor's network (no second copy of the weights)."""
    image_predictor = Sam2ImagePredictor(video_predictor.model, device="cpu")
    return Sam2AutomaticMaskGenerator(
        image_predictor, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, **options
    )


def test_every_generated_mask_becomes_a_numbered_object_and_propagates(video_predictor):
    image, _ = synthetic_cells(n_frames=3, size=64, n_cells=3, seed=4)
    frames = open_frames(image)
    generator = generator_on(video_predictor)
    records = generator.generate(frames[1])
    masks = segment_all(generator, frames[1], first_id=5)
    assert records and sorted(masks) == list(range(5, 5 + len(masks)))
    for record, obj_id in zip([r for r in records if r["segmentation"].any()], sorted(masks)):
        np.testing.assert_array_equal(masks[obj_id], record["segmentation"])
    labels = np.zeros(image.shape, dtype=np.uint16)
    tracking = TrackingSession(video_predictor.init_video(frames), labels)
    tracking.add_masks(1, masks)
    for frame_idx, frame_labels in tracking.propagate_runs([(1, False, 1), (1, True, 1)]):
        labels[frame_idx] = frame_labels
    direct = video_predictor.init_video(frames)
    expected = np.zeros(image.shape, dtype=np.uint16)
    for obj_id, mask in sorted(masks.items()):
        obj_ids, logits = direct.add_mask(1, obj_id, mask)
    paint_masks(expected[1], obj_ids, logits.numpy())
    for start, reverse in ((1, False), (1, True)):
        for frame_idx, obj_ids, logits in direct.propagate(start_frame=start, reverse=reverse, max_frames=1):
            frame_labels = expected[frame_idx].copy()
            paint_masks(frame_labels, obj_ids, logits.numpy())
            expected[frame_idx] = frame_labels
    np.testing.assert_array_equal(labels, expected)


def test_segment_all_needs_binary_masks(video_predictor):
    generator = generator_on(video_predictor, output_mode="coco_rle")
    image, _ = synthetic_cells(n_frames=1, size=64, n_cells=2, seed=1)
    with pytest.raises(TypeError, match="output_mode='binary_mask'"):
        segment_all(generator, open_frames(image)[0], first_id=1)
