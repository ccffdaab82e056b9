"""Our image predictor against Meta's `SAM2ImagePredictor` (sam2 1.1.0): same random weights, real photos, 1024 px."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from image_parity import IMAGE_SIZE, MIN_IOU, PARITY_MARKS, SCORE_TOLERANCE, reference_and_ours, reference_transforms
from skimage import data

from sam2_plugins.model.image_predictor import preprocess_image

pytestmark = PARITY_MARKS
LOGIT_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def astronaut_pair(tmp_path_factory):
    """Both predictors with skimage's astronaut photo (512 x 512 RGB) set."""
    reference, ours = reference_and_ours(tmp_path_factory)
    image = data.astronaut()
    reference.set_image(image)
    ours.set_image(image)
    return reference, ours


def assert_same_predictions(expected: tuple, actual: tuple, where: str, logits: bool = False) -> None:
    """(masks, iou_predictions, low_res_masks) of Meta's predictor against ours."""
    for name, reference_value, our_value in zip(("masks", "iou_predictions", "low_res_masks"), expected, actual):
        assert our_value.shape == reference_value.shape, f"{where}: {name} shape"
        assert our_value.dtype == reference_value.dtype, f"{where}: {name} dtype"
    masks, ious, low_res = actual
    expected_masks, expected_ious, expected_low_res = expected
    ours_fg = masks > 0 if logits else masks.astype(bool)
    expected_fg = expected_masks > 0 if logits else expected_masks.astype(bool)
    assert 0.001 < expected_fg.mean() < 0.999, f"{where}: trivial reference masks do not test anything"
    axes = tuple(range(-2, 0))
    union = (ours_fg | expected_fg).sum(axis=axes)
    iou = (ours_fg & expected_fg).sum(axis=axes) / np.maximum(union, 1)
    assert (iou >= MIN_IOU).all(), f"{where}: mask IoU {iou}"
    np.testing.assert_allclose(ious, expected_ious, atol=SCORE_TOLERANCE, rtol=0, err_msg=where)
    np.testing.assert_allclose(low_res, expected_low_res, atol=LOGIT_TOLERANCE, rtol=0, err_msg=where)
    if logits:
        np.testing.assert_allclose(masks, expected_masks, atol=LOGIT_TOLERANCE, rtol=0, err_msg=where)


POINTS = np.array([[210.0, 160.0], [300.0, 420.0], [120.0, 380.0]])
LABELS = np.array([1, 0, 1])
BOX = np.array([140.0, 40.0, 380.0, 470.0])
PROMPTS = {
    "one click": {"point_coords": POINTS[:1], "point_labels": LABELS[:1]},
    "clicks": {"point_coords": POINTS, "point_labels": LABELS},
    "box": {"box": BOX},
    "clicks and box": {"point_coords": POINTS[:2], "point_labels": LABELS[:2], "box": BOX},
    "normalized click": {"point_coords": POINTS[:1] / 512, "point_labels": LABELS[:1], "normalize_coords": False},
    "batched boxes": {"box": np.stack([BOX, BOX * 0.5 + 60])},
    "batched clicks and boxes": {
        "point_coords": POINTS[None, :2].repeat(2, axis=0) + np.array([[[0.0]], [[40.0]]]),
        "point_labels": np.stack([LABELS[:2], LABELS[:2]]),
        "box": np.stack([BOX, BOX * 0.5 + 60]),
    },
}


def test_images_are_preprocessed_like_the_reference():
    """Float tensor, bilinear antialiased resize, ImageNet normalization: Meta's image path, not its video path."""
    transforms = reference_transforms.SAM2Transforms(resolution=IMAGE_SIZE, mask_threshold=0.0)
    for image in (data.astronaut(), data.chelsea()):
        torch.testing.assert_close(preprocess_image(image, IMAGE_SIZE), transforms(image), atol=1e-6, rtol=0)


def test_the_image_embedding_matches_the_reference(astronaut_pair):
    reference, ours = astronaut_pair
    torch.testing.assert_close(ours.get_image_embedding(), reference.get_image_embedding(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("multimask_output", [True, False], ids=["multimask", "single mask"])
@pytest.mark.parametrize("prompt", list(PROMPTS))
def test_prompts_match_the_reference(astronaut_pair, prompt, multimask_output):
    reference, ours = astronaut_pair
    options = {**PROMPTS[prompt], "multimask_output": multimask_output}
    assert_same_predictions(reference.predict(**options), ours.predict(**options), prompt)


def test_logits_match_the_reference(astronaut_pair):
    reference, ours = astronaut_pair
    options = {**PROMPTS["clicks and box"], "return_logits": True}
    assert_same_predictions(reference.predict(**options), ours.predict(**options), "logits", logits=True)


def test_refinement_with_the_previous_low_res_mask_matches_the_reference(astronaut_pair):
    """The best of three masks from a click, fed back as the mask prompt with a second click (SAM's iterative loop)."""
    reference, ours = astronaut_pair
    first = {"point_coords": POINTS[:1], "point_labels": LABELS[:1]}
    expected, actual = reference.predict(**first), ours.predict(**first)
    assert_same_predictions(expected, actual, "first click")
    best = int(np.argmax(expected[1]))
    assert best == int(np.argmax(actual[1]))
    for multimask_output in (False, True):
        refine = {
            "point_coords": POINTS[:2],
            "point_labels": LABELS[:2],
            "mask_input": expected[2][best : best + 1],
            "multimask_output": multimask_output,
        }
        ours_refine = {**refine, "mask_input": actual[2][best : best + 1]}
        assert_same_predictions(reference.predict(**refine), ours.predict(**ours_refine), "refinement")


def test_image_batches_match_the_reference(tmp_path_factory):
    """Two photos of different sizes embedded in one batch (other seeded weights, SAM 2.0 tiny); a box and clicks
    per image."""
    reference, ours = reference_and_ours(tmp_path_factory, config="sam2_hiera_t", seed=3)
    images = [data.chelsea(), data.astronaut()]  # 300 x 451 and 512 x 512
    reference.set_image_batch(images)
    ours.set_image_batch(images)
    options = {
        "point_coords_batch": [np.array([[220.0, 120.0]]), np.array([[210.0, 160.0], [300.0, 420.0]])],
        "point_labels_batch": [np.array([1]), np.array([1, 0])],
        "box_batch": [np.array([60.0, 20.0, 400.0, 290.0]), BOX],
    }
    for multimask_output in (True, False):
        expected = reference.predict_batch(**options, multimask_output=multimask_output)
        actual = ours.predict_batch(**options, multimask_output=multimask_output)
        assert [len(values) for values in actual] == [2, 2, 2]
        for index in range(2):
            assert_same_predictions(
                tuple(values[index] for values in expected),
                tuple(values[index] for values in actual),
                f"image {index}",
            )
