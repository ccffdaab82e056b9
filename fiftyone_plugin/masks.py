"""Full-frame binary masks <-> FiftyOne Detections, pixel-exact through ``Detection.to_segmentation``.

FiftyOne renders an instance mask by truncating ``frame_width * x`` and ``frame_width * (x + w)`` to ints and
resizing the stored crop to the difference. ``Detection.from_mask`` stores ``x = xmin / width``, which the
product sometimes lands just below ``xmin`` in floating point: the box shifts a pixel and the crop is resampled.
Here every box edge sits a small fraction of a pixel inside its pixel, so truncation always recovers the crop's
exact position and size, and the crop is rendered without resampling.
"""

from __future__ import annotations

import fiftyone as fo
import numpy as np

from sam2_plugins.masks import mask_bounds

EDGE_OFFSET_PIXELS = 1e-3
"""How far inside its pixel each box edge is placed; far above float error, far below a visible shift."""


def mask_to_detection(mask: np.ndarray, **attributes) -> fo.Detection | None:
    """A Detection whose ``to_segmentation(frame_size=(W, H))`` is exactly ``mask`` (H, W); None when it is empty."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D (H, W) mask, got shape {mask.shape}")
    mask = mask > 0 if mask.dtype != np.bool_ else mask
    bounds = mask_bounds(mask)
    if bounds is None:
        return None
    x0, y0, x1, y1 = bounds
    height, width = mask.shape
    left = (x0 + EDGE_OFFSET_PIXELS) / width
    top = (y0 + EDGE_OFFSET_PIXELS) / height
    box = [left, top, (x1 + EDGE_OFFSET_PIXELS) / width - left, (y1 + EDGE_OFFSET_PIXELS) / height - top]
    return fo.Detection(bounding_box=box, mask=np.ascontiguousarray(mask[y0:y1, x0:x1]), **attributes)


def detection_to_mask(detection: fo.Detection, frame_size: tuple[int, int]) -> np.ndarray:
    """The (H, W) bool mask of ``detection`` on a ``frame_size = (W, H)`` frame, rendered by FiftyOne itself."""
    return detection.to_segmentation(frame_size=frame_size).mask > 0
