"""Masks survive the trip through a FiftyOne Detection pixel-exactly, where FiftyOne's own from_mask does not."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)

import fiftyone as fo
import numpy as np
import pytest

from sam2_plugins.fiftyone_plugin.masks import detection_to_mask, mask_to_detection
from sam2_plugins.masks import mask_bounds


def random_masks(count: int, seed: int = 0):
    """Random blobs of random sizes on frames of random (also odd) sizes, some touching the frame edges."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        height, width = (int(v) for v in rng.integers(5, 400, size=2))
        mask = np.zeros((height, width), bool)
        x0, x1 = sorted(rng.integers(0, width + 1, size=2))
        y0, y1 = sorted(rng.integers(0, height + 1, size=2))
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
        mask[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < 0.7
        yield mask


def test_round_trip_is_pixel_exact_on_many_random_masks():
    checked = 0
    for mask in random_masks(1000):
        detection = mask_to_detection(mask)
        if not mask.any():
            assert detection is None
            continue
        height, width = mask.shape
        assert np.array_equal(detection_to_mask(detection, (width, height)), mask)
        checked += 1
    assert checked > 900


def test_fiftyone_from_mask_alone_loses_pixels():
    """The reason masks.py exists: if FiftyOne fixes this, the workaround can go."""
    lossy = sum(
        not np.array_equal(fo.Detection.from_mask(m).to_segmentation(frame_size=m.shape[::-1]).mask > 0, m)
        for m in random_masks(300)
        if m.any()
    )
    assert lossy > 0


def test_attributes_and_bounds():
    mask = np.zeros((10, 20), np.uint8)
    mask[2:5, 19] = 255
    detection = mask_to_detection(mask, index=3, masklet_id=7)
    assert (detection.index, detection["masklet_id"]) == (3, 7)
    assert mask_bounds(mask) == (19, 2, 20, 5)
    assert detection.mask.shape == (3, 1)


def test_rejects_non_2d_masks():
    with pytest.raises(ValueError, match="2-D"):
        mask_to_detection(np.ones((2, 3, 3), bool))
