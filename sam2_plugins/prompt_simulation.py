"""Prompts simulated from a ground-truth mask, as in the SAM 2 paper's interactive and semi-supervised protocols.

A click goes to an object's *interior center*: the pixel farthest from its boundary (the image border counts as
boundary). Each corrective click after the first goes to the interior center of the largest error region between
the prediction and the ground truth: positive where the object was missed, negative where background was taken.
A box prompt is the mask's tight box.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from .masks import mask_bounds

Point = tuple[float, float]
"""Pixel (x, y)."""
Box = tuple[float, float, float, float]
"""Pixel x0, y0, x1, y1 (inclusive corner pixels)."""
CLICK_COUNTS = (1, 3, 5)
"""The click budgets of the paper's interactive protocol."""


def interior_center(mask: np.ndarray) -> Point:
    """The foreground pixel farthest from the background and the image border, as pixel (x, y)."""
    if not mask.any():
        raise ValueError("an empty mask has no interior to click on")
    distance = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    row, column = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return float(column), float(row)


def mask_box(mask: np.ndarray) -> Box:
    """The tight box of a non-empty mask as pixel x0, y0, x1, y1 (inclusive corner pixels)."""
    bounds = mask_bounds(mask)
    if bounds is None:
        raise ValueError("an empty mask has no box")
    x0, y0, x1, y1 = bounds
    return float(x0), float(y0), float(x1 - 1), float(y1 - 1)


def corrective_click(gt: np.ndarray, pred: np.ndarray) -> tuple[Point, int] | None:
    """A click on the largest error region, labelled 1 if it was missed and 0 if wrongly taken; None if exact."""
    errors = gt != pred
    if not errors.any():
        return None
    regions, count = ndimage.label(errors)
    sizes = ndimage.sum_labels(errors, regions, index=np.arange(1, count + 1))
    largest = regions == int(np.argmax(sizes)) + 1
    x, y = interior_center(largest)
    return (x, y), int(gt[int(y), int(x)])


def simulate_clicks(
    gt: np.ndarray, num_clicks: int, predict: Callable[[list[Point], list[int]], np.ndarray]
) -> tuple[list[Point], list[int]]:
    """Click ``num_clicks`` times: the interior center, then corrective clicks on each new prediction.

    ``predict(points, labels)`` runs the model on all clicks so far and returns its (H, W) boolean mask. Clicking
    stops early once a prediction equals ``gt``. Returns the clicks given.
    """
    if num_clicks not in CLICK_COUNTS:
        raise ValueError(f"num_clicks must be one of {CLICK_COUNTS} (the SAM 2 paper's protocol), got {num_clicks}")
    points, labels = [interior_center(gt)], [1]
    prediction = predict(points, labels)
    for _ in range(num_clicks - 1):
        click = corrective_click(gt, prediction)
        if click is None:
            break
        points.append(click[0])
        labels.append(click[1])
        prediction = predict(points, labels)
    return points, labels
