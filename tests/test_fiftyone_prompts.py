"""Simulated prompts of the SAM 2 paper: interior-center clicks, corrective clicks, boxes."""

import numpy as np
import pytest

from sam2_plugins.fiftyone_plugin.prompts import corrective_click, interior_center, mask_box


def test_interior_center_is_farthest_from_the_boundary_and_the_border():
    mask = np.zeros((20, 30), bool)
    mask[2:9, 3:26] = True  # a 7-row bar: its center row is 5
    mask[:, 27:] = True  # a wide strip touching the border does not win: the border counts as boundary
    x, y = interior_center(mask)
    assert y == 5 and 6 <= x <= 22 and mask[int(y), int(x)]


def test_corrective_click_targets_the_largest_error_with_its_polarity():
    gt = np.zeros((40, 40), bool)
    gt[5:35, 5:35] = True
    missed = gt.copy()
    missed[10:30, 20:35] = False  # a large false negative
    missed[0:2, 0:2] = True  # a small false positive
    (x, y), label = corrective_click(gt, missed)
    assert label == 1 and 20 <= x < 35 and 10 <= y < 30
    taken = gt.copy()
    taken[36:40, :] = True  # only false positives
    (x, y), label = corrective_click(gt, taken)
    assert label == 0 and y >= 36
    assert corrective_click(gt, gt) is None


def test_box_and_empty_masks():
    mask = np.zeros((10, 12), bool)
    mask[3:6, 4:11] = True
    assert mask_box(mask) == (4.0, 3.0, 10.0, 5.0)
    with pytest.raises(ValueError, match="empty mask has no box"):
        mask_box(np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="empty mask"):
        interior_center(np.zeros((3, 3), bool))
