"""The stages of automatic mask generation: point grids, crop boxes, mask scores and boxes, NMS, RLE, uncropping.

Boxes are x0, y0, x1, y1 (x1, y1 the last pixel inside for boxes of masks); RLEs are COCO's uncompressed form
``{"size": [h, w], "counts": [...]}`` over the column-major mask, starting with a run of zeros. Plain torch and
numpy (no torchvision, no OpenCV).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import product
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from .postprocess import small_regions

Rle = dict[str, Any]


# ---------------------------------------------------------------- where to prompt
def build_point_grid(points_per_side: int) -> np.ndarray:
    """(n², 2) x, y points in [0, 1], the centres of an n x n grid of cells, x varying fastest."""
    offset = 1 / (2 * points_per_side)
    side = np.linspace(offset, 1 - offset, points_per_side)
    xs, ys = np.meshgrid(side, side)
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(points_per_side: int, crop_n_layers: int, downscale_factor: int) -> list[np.ndarray]:
    """One grid per crop layer, layer i with int(points_per_side / downscale_factor**i) points per side."""
    return [build_point_grid(int(points_per_side / downscale_factor**layer)) for layer in range(crop_n_layers + 1)]


def generate_crop_boxes(
    image_hw: tuple[int, int], crop_n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """Crop boxes (x0, y0, x1, y1) and their layer: the whole image, then (2^i)² overlapping crops in layer i.

    Crops of layer i overlap by `overlap_ratio` x the short side x 2 / 2^i pixels; columns vary slowest.
    """
    height, width = image_hw
    boxes, layers = [[0, 0, width, height]], [0]
    for layer in range(1, crop_n_layers + 1):
        per_side = 2**layer
        overlap = int(overlap_ratio * min(height, width) * (2 / per_side))
        crop_w = math.ceil((overlap * (per_side - 1) + width) / per_side)
        crop_h = math.ceil((overlap * (per_side - 1) + height) / per_side)
        starts_x = [int((crop_w - overlap) * i) for i in range(per_side)]
        starts_y = [int((crop_h - overlap) * i) for i in range(per_side)]
        for x0, y0 in product(starts_x, starts_y):
            boxes.append([x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height)])
            layers.append(layer)
    return boxes, layers


# ---------------------------------------------------------------- scoring masks
def stability_score(mask_logits: torch.Tensor, mask_threshold: float, offset: float) -> torch.Tensor:
    """IoU of each (..., H, W) mask thresholded at `mask_threshold` + `offset` and at `mask_threshold` - `offset`."""
    inner = (mask_logits > mask_threshold + offset).sum(dim=(-2, -1))
    outer = (mask_logits > mask_threshold - offset).sum(dim=(-2, -1))
    return inner / outer


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(..., 4) int64 boxes around (..., H, W) boolean masks; [0, 0, 0, 0] for an empty mask."""
    if masks.numel() == 0:
        return torch.zeros(*masks.shape[:-2], 4, dtype=torch.int64, device=masks.device)

    def extent(present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.arange(present.shape[-1], device=present.device)
        return torch.where(present, index, present.shape[-1]).amin(-1), torch.where(present, index, -1).amax(-1)

    top, bottom = extent(masks.any(dim=-1))
    left, right = extent(masks.any(dim=-2))
    boxes = torch.stack([left, top, right, bottom], dim=-1)
    return torch.where((bottom >= 0)[..., None], boxes, 0).to(torch.int64)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the boxes greedy non-maximum suppression keeps, by decreasing score (ties in input order): a box
    goes when its IoU with a kept, better-scored box exceeds `iou_threshold`."""
    order = torch.sort(scores, descending=True, stable=True).indices
    boxes = boxes[order].float()
    areas = box_area(boxes)
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for index in range(len(order)):
        if suppressed[index]:
            continue
        keep.append(index)
        later = boxes[index + 1 :]
        top_left = torch.maximum(boxes[index, :2], later[:, :2])
        bottom_right = torch.minimum(boxes[index, 2:], later[:, 2:])
        intersection = (bottom_right - top_left).clamp(min=0).prod(dim=1)
        iou = intersection / (areas[index] + areas[index + 1 :] - intersection)
        suppressed[index + 1 :] |= (iou > iou_threshold).numpy(force=True)
    return order[torch.tensor(keep, dtype=torch.int64, device=order.device)]


def is_box_near_crop_edge(
    boxes: torch.Tensor, crop_box: Sequence[int], image_box: Sequence[int], atol: float = 20.0
) -> torch.Tensor:
    """Whether each crop-relative box comes within `atol` pixels of an edge of the crop that is not an image edge."""
    crop = torch.as_tensor(crop_box, dtype=torch.float32, device=boxes.device)
    image = torch.as_tensor(image_box, dtype=torch.float32, device=boxes.device)
    boxes = uncrop_boxes(boxes, crop_box).float()
    near_crop_edge = torch.isclose(boxes, crop[None], atol=atol, rtol=0)
    near_image_edge = torch.isclose(boxes, image[None], atol=atol, rtol=0)
    return (near_crop_edge & ~near_image_edge).any(dim=1)


# ---------------------------------------------------------------- back to the whole image
def _offset(crop_box: Sequence[int], values: torch.Tensor, repeats: int) -> torch.Tensor:
    x0, y0 = crop_box[:2]
    return torch.tensor([[x0, y0] * repeats], device=values.device)


def uncrop_boxes(boxes: torch.Tensor, crop_box: Sequence[int]) -> torch.Tensor:
    """Crop-relative (N, 4) boxes in image coordinates."""
    return boxes + _offset(crop_box, boxes, 2)


def uncrop_points(points: torch.Tensor, crop_box: Sequence[int]) -> torch.Tensor:
    """Crop-relative (N, 2) points in image coordinates."""
    return points + _offset(crop_box, points, 1)


def uncrop_masks(masks: torch.Tensor, crop_box: Sequence[int], image_h: int, image_w: int) -> torch.Tensor:
    """(N, h, w) masks of a crop placed into (N, image_h, image_w) zeros."""
    x0, y0, x1, y1 = crop_box
    if (x0, y0, x1, y1) == (0, 0, image_w, image_h):
        return masks
    return torch.nn.functional.pad(masks, (x0, image_w - x1, y0, image_h - y1), value=0)


# ---------------------------------------------------------------- encodings
def masks_to_rle(masks: torch.Tensor) -> list[Rle]:
    """Uncompressed COCO RLEs of (N, H, W) boolean masks."""
    count, height, width = masks.shape
    flat = masks.transpose(1, 2).reshape(count, height * width)
    mask_ids, positions = (flat[:, 1:] != flat[:, :-1]).nonzero(as_tuple=True)
    changes_per_mask = torch.bincount(mask_ids, minlength=count).tolist()
    starts_with_one = flat[:, 0].tolist() if height * width else [False] * count
    ends = np.split((positions + 1).numpy(force=True), np.cumsum(changes_per_mask)[:-1])
    rles = []
    for first_is_one, change_ends in zip(starts_with_one, ends):
        bounds = np.concatenate([[0], change_ends, [height * width]])
        counts = np.diff(bounds).tolist()
        rles.append({"size": [height, width], "counts": [0, *counts] if first_is_one else counts})
    return rles


def rle_to_mask(rle: Rle) -> np.ndarray:
    """The (H, W) boolean mask of an uncompressed RLE."""
    height, width = rle["size"]
    values = np.arange(len(rle["counts"])) % 2 == 1
    flat = np.repeat(values, rle["counts"])
    return flat.reshape(width, height).T


def rle_area(rle: Rle) -> int:
    return int(sum(rle["counts"][1::2]))


def coco_rle(rle: Rle) -> Rle:
    """An uncompressed RLE in COCO's compressed form, its counts as a string (JSON-ready)."""
    from pycocotools import mask as mask_utils

    height, width = rle["size"]
    compressed = mask_utils.frPyObjects(rle, height, width)
    return {"size": compressed["size"], "counts": compressed["counts"].decode("utf-8")}


def remove_small_regions(mask: np.ndarray, area_thresh: float, mode: str) -> tuple[np.ndarray, bool]:
    """`mask` with holes (mode "holes") or islands ("islands") of fewer than `area_thresh` pixels (8-connected)
    removed, and whether anything changed; when every island is small, the largest stays."""
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', not {mode!r}")
    max_area = math.ceil(area_thresh) - 1
    small = small_regions(~mask if mode == "holes" else mask, max_area)
    if not small.any():
        return mask, False
    if mode == "holes":
        return mask | small, True
    kept = mask & ~small
    if not kept.any():
        labels, _ = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
        kept = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
    return kept, True


class MaskTable:
    """Columns of one length (tensors, arrays or lists), one row per mask, filtered and concatenated together."""

    def __init__(self, **columns: torch.Tensor | np.ndarray | list) -> None:
        self.columns = dict(columns)

    def __getitem__(self, name: str) -> Any:
        return self.columns[name]

    def __setitem__(self, name: str, column: torch.Tensor | np.ndarray | list) -> None:
        self.columns[name] = column

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def filter(self, keep: torch.Tensor) -> None:
        """Keep the rows a boolean mask or an index tensor selects, in its order."""
        indices = keep.nonzero()[:, 0] if keep.dtype == torch.bool else keep
        rows = indices.tolist()
        for name, column in self.columns.items():
            if isinstance(column, torch.Tensor):
                self.columns[name] = column[indices.to(column.device)]
            elif isinstance(column, np.ndarray):
                self.columns[name] = column[np.asarray(rows, dtype=np.int64)]
            else:
                self.columns[name] = [column[row] for row in rows]

    def cat(self, other: MaskTable) -> None:
        """Append the rows of `other`."""
        for name, column in other.columns.items():
            mine = self.columns.get(name)
            if mine is None:
                self.columns[name] = column
            elif isinstance(column, torch.Tensor):
                self.columns[name] = torch.cat([mine, column])
            elif isinstance(column, np.ndarray):
                self.columns[name] = np.concatenate([mine, column])
            else:
                self.columns[name] = mine + column
