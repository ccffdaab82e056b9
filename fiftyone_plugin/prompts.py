"""Prompts derived from ground-truth masks, as in the SAM 2 paper's interactive and semi-supervised protocols.

A click goes to an object's *interior center*: the pixel farthest from its boundary (the image border counts as
boundary). Corrective clicks after the first go to the interior center of the largest error region between the
prediction and the ground truth: positive where the object was missed, negative where background was taken.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from sam2_plugins.masks import mask_bounds

Point = tuple[float, float]
"""Pixel (x, y)."""


def interior_center(mask: np.ndarray) -> Point:
    """The foreground pixel farthest from the background and the image border, as pixel (x, y)."""
    if not mask.any():
        raise ValueError("an empty mask has no interior to click on")
    distance = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    row, column = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return float(column), float(row)


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
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
