"""Simulated prompts of the SAM 2 paper: interior-center clicks, corrective clicks and their loop, boxes."""

import numpy as np
import pytest
from scipy import ndimage

from sam2_plugins.prompt_simulation import corrective_click, interior_center, mask_box, simulate_clicks


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


def region_model(canvas: np.ndarray):
    """A model that predicts the regions of ``canvas`` holding a positive click, minus those holding a negative one."""
    regions, _ = ndimage.label(canvas)
    calls = []

    def predict(points, labels):
        calls.append((list(points), list(labels)))
        chosen = {regions[int(y), int(x)]: label for (x, y), label in zip(points, labels)}
        return np.isin(regions, [r for r, label in chosen.items() if label == 1 and r])

    return predict, calls


def test_click_loop_corrects_then_stops_once_the_prediction_is_exact():
    gt = np.zeros((60, 60), bool)
    gt[5:35, 5:35] = True  # the larger part: the first click goes here
    gt[45:55, 45:55] = True  # missed by the first prediction: the second click goes here, positive
    predict, calls = region_model(gt)
    points, labels = simulate_clicks(gt, 5, predict)
    assert labels == [1, 1] and len(calls) == 2  # exact after two clicks: no more
    assert points[0] == interior_center(gt[:40, :40]) and gt[int(points[1][1]), int(points[1][0])]
    assert 45 <= points[1][0] < 55 and 45 <= points[1][1] < 55
    assert calls[-1] == (points, labels)  # each prediction saw every click so far


def test_click_loop_clicks_negative_where_background_was_taken_and_keeps_its_budget():
    gt = np.zeros((60, 60), bool)
    gt[5:35, 5:35] = True
    canvas = gt.copy()
    canvas[34:50, 5:35] = True  # the model merges the object with a region below it

    def overshooting(points, labels):
        return gt if 0 in labels else canvas

    points, labels = simulate_clicks(gt, 3, overshooting)
    assert labels == [1, 0] and 35 <= points[1][1] < 50  # the negative click removed the extra region

    calls = []

    def never_right(points, labels):
        calls.append(len(points))
        return np.zeros_like(gt)

    points, labels = simulate_clicks(gt, 3, never_right)
    assert calls == [1, 2, 3] and labels == [1, 1, 1]  # never exact: the whole budget is spent
    with pytest.raises(ValueError, match="num_clicks must be one of"):
        simulate_clicks(gt, 2, never_right)
