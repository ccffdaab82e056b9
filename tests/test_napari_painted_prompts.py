"""Painted labels as mask prompts: the session's add_mask through TrackingSession, equal to direct predictor calls."""

import numpy as np
import pytest
from random_checkpoint import CONFIG, IMAGE_SIZE, write_random_checkpoint

from sam2_plugins.frames import open_frames
from sam2_plugins.model import Sam2VideoPredictor
from sam2_plugins.napari_plugin.frame_axes import FrameAxes
from sam2_plugins.napari_plugin.painted_prompts import frame_masks, painted_mask
from sam2_plugins.napari_plugin.prompts import FramePrompts
from sam2_plugins.napari_plugin.tracking import TrackingSession, paint_masks
from sam2_plugins.sample_data import synthetic_cells


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    checkpoint = write_random_checkpoint(tmp_path_factory.mktemp("checkpoint"))
    return Sam2VideoPredictor.from_checkpoint(checkpoint, config=CONFIG, image_size=IMAGE_SIZE, device="cpu")


@pytest.fixture(scope="module")
def cells():
    return synthetic_cells(n_frames=4, size=64, n_cells=3, seed=2)


def direct_labels(predictor, image, prompts) -> np.ndarray:
    """Labels from calling the predictor directly: ``prompts`` = [(frame, obj_id, mask)], then propagation."""
    session = predictor.init_video(open_frames(image))
    labels = np.zeros(image.shape, dtype=np.uint16)
    for frame_idx, obj_id, mask in prompts:
        obj_ids, logits = session.add_mask(frame_idx, obj_id, mask)
        paint_masks(labels[frame_idx], obj_ids, logits.numpy())
    for frame_idx, obj_ids, logits in session.propagate():
        paint_masks(labels[frame_idx], obj_ids, logits.numpy())
    return labels


def propagate_all(tracking: TrackingSession) -> None:
    for frame_idx, frame_labels in tracking.propagate_runs([(0, False, len(tracking.labels) - 1)]):
        tracking.labels[frame_idx] = frame_labels


def test_a_painted_label_becomes_the_objects_mask_prompt_and_propagates_as_add_mask_does(predictor, cells):
    image, truth = cells
    labels = np.zeros(image.shape, dtype=np.uint16)
    labels[0][truth[0] == 2] = 2  # painted by hand on frame 0
    tracking = TrackingSession(predictor.init_video(open_frames(image)), labels)
    assert tracking.add_masks(0, painted_mask(labels, 0, 2)) == {0}
    painted = truth[0] == 2
    iou = (np.logical_and(labels[0] == 2, painted).sum()) / np.logical_or(labels[0] == 2, painted).sum()
    assert iou > 0.8, "the prompt's output follows the painted shape"
    propagate_all(tracking)
    np.testing.assert_array_equal(labels, direct_labels(predictor, image, [(0, 2, painted)]))


def test_a_mask_prompt_survives_when_the_object_is_reprompted_and_new_clicks_replace_it(predictor, cells):
    image, truth = cells
    labels = np.zeros(image.shape, dtype=np.uint16)
    tracking = TrackingSession(predictor.init_video(open_frames(image)), labels)
    click = FramePrompts(points=((20.0, 20.0),), labels=(1,))
    tracking.sync_prompts({(2, 1): click, (3, 1): click})
    tracking.add_masks(0, {1: truth[0] == 1})
    tracking.sync_prompts({(2, 1): click})  # the click on frame 3 deleted: object 1 is removed and re-sent
    assert set(tracking.masks) == {(0, 1)}
    expected = predictor.init_video(open_frames(image))
    expected.add_points(2, 1, [[20.0, 20.0]], [1])
    obj_ids, logits = expected.add_mask(0, 1, truth[0] == 1)
    frame0 = np.zeros(image.shape[1:], dtype=np.uint16)
    paint_masks(frame0, obj_ids, logits.numpy())
    np.testing.assert_array_equal(labels[0], frame0)
    assert not (labels[3] == 1).any(), "the frame that lost its click is erased"
    tracking.sync_prompts({(2, 1): click, (0, 1): click})
    assert (0, 1) not in tracking.masks, "clicks sent after the mask replace it"


def test_clicks_made_before_a_painted_mask_do_not_override_it_on_reprompt(predictor, cells):
    image, truth = cells
    labels = np.zeros(image.shape, dtype=np.uint16)
    tracking = TrackingSession(predictor.init_video(open_frames(image)), labels)
    click = FramePrompts(points=((20.0, 20.0),), labels=(1,))
    tracking.sync_prompts({(0, 1): click, (3, 1): click})
    tracking.add_masks(0, {1: truth[0] == 1})
    after_mask = labels[0].copy()
    tracking.sync_prompts({(0, 1): click})  # object 1 re-sent: its frame-0 clicks are older than the mask
    assert (0, 1) in tracking.masks
    np.testing.assert_array_equal(labels[0], after_mask)


def test_seeding_reads_every_label_of_a_frame_from_any_fitting_layer():
    axes = FrameAxes.at((3, 2, 8, 9), 0, position=(0, 1, 0, 0))
    source = np.zeros((3, 2, 8, 9), dtype=np.int32)
    source[2, 1, :3, :3] = 4
    source[2, 1, 5:, 5:] = 7
    source[2, 0, :, :] = 9  # another z: not this session's frames
    masks = frame_masks(source, axes, 2)
    assert sorted(masks) == [4, 7] and masks[4].shape == (8, 9) and masks[4].sum() == 9
    assert sorted(frame_masks(source[2, 1], axes, 2)) == [4, 7], "a single 2D frame of labels"
    assert sorted(frame_masks(source[:, 1], axes, 2)) == [4, 7], "the session's (T, H, W) frames"
    with pytest.raises(ValueError, match=r"micro-sam: shape \(5, 5\) fits neither the image"):
        frame_masks(np.zeros((5, 5), np.uint8), axes, 2, name="micro-sam")
    with pytest.raises(ValueError, match="frame 0 holds no labels"):
        frame_masks(source, axes, 0)
    with pytest.raises(ValueError, match="label 3 has no painted pixels on frame 1"):
        painted_mask(np.zeros((2, 4, 4), np.uint16), 1, 3)
