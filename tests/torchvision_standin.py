"""A torch-only stand-in for the few torchvision pieces Meta's image predictor and mask generator import.

PyPI's torchvision cannot load with the CPU torch here (`operator torchvision::nms does not exist`), so parity tests
call `install()` before importing `sam2.sam2_image_predictor` or `sam2.automatic_mask_generator`. Each piece follows
torchvision's documented behaviour: `Resize` on tensors is bilinear with antialiasing, `batched_nms` is greedy NMS per
category in order of decreasing score (stable for ties), boxes are x0, y0, x1, y1.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class ToTensor:
    """(H, W, C) or (H, W) uint8 array (or PIL image) as a (C, H, W) float tensor in [0, 1]."""

    def __call__(self, picture) -> torch.Tensor:
        array = np.asarray(picture)
        if array.ndim == 2:
            array = array[:, :, None]
        return torch.from_numpy(array.transpose(2, 0, 1).copy()).float().div(255)


class Resize(nn.Module):
    """Resize a (C, H, W) float tensor to `size` (bilinear, antialiased; unchanged when already that size)."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = [int(size[0]), int(size[1])]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[-2] == self.size[0] and image.shape[-1] == self.size[1]:
            return image
        resized = F.interpolate(
            image.unsqueeze(0), size=self.size, mode="bilinear", align_corners=False, antialias=True
        )
        return resized.squeeze(0)


class Normalize(nn.Module):
    """(image - mean) / std per channel."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=image.dtype, device=image.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=image.dtype, device=image.device).view(-1, 1, 1)
        return (image - mean) / std


class Compose:
    """The transforms applied one after the other."""

    def __init__(self, transforms: list) -> None:
        self.transforms = list(transforms)

    def __call__(self, picture):
        for transform in self.transforms:
            picture = transform(picture)
        return picture


def create_feature_extractor(*args, **kwargs):
    """Imported by FiftyOne's torch utilities, used by none of the models the tests run."""
    raise NotImplementedError("torchvision's feature extraction is not part of the test stand-in")


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _box_iou(box: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    top_left = torch.maximum(box[:2], others[:, :2])
    bottom_right = torch.minimum(box[2:], others[:, 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(dim=1)
    return intersection / (box_area(box[None]) + box_area(others) - intersection)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices kept by greedy NMS within each category, by decreasing score: one box at a time."""
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    suppressed = [False] * len(order)
    keep = []
    for rank, index in enumerate(order):
        if suppressed[rank]:
            continue
        keep.append(index)
        for later in range(rank + 1, len(order)):
            other = order[later]
            if not suppressed[later] and idxs[other] == idxs[index]:
                suppressed[later] = bool(_box_iou(boxes[index].float(), boxes[other][None].float())[0] > iou_threshold)
    return torch.tensor(keep, dtype=torch.int64)


def install() -> None:
    """Put the stand-in into `sys.modules` as `torchvision`, `torchvision.transforms`, `torchvision.ops.boxes` (and
    the names FiftyOne's `fiftyone.utils.torch` imports, for its zoo SAM 2 models)."""
    if "torchvision" in sys.modules:
        return
    package = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    ops = types.ModuleType("torchvision.ops")
    boxes = types.ModuleType("torchvision.ops.boxes")
    transforms.ToTensor, transforms.Resize, transforms.Normalize = ToTensor, Resize, Normalize
    boxes.batched_nms, boxes.box_area = batched_nms, box_area
    ops.boxes, ops.batched_nms, ops.box_area = boxes, batched_nms, box_area
    package.transforms, package.ops = transforms, ops
    transforms.Compose = Compose
    transforms.functional = types.ModuleType("torchvision.transforms.functional")  # imported by FiftyOne, unused
    models = types.ModuleType("torchvision.models")
    models.feature_extraction = types.ModuleType("torchvision.models.feature_extraction")
    models.feature_extraction.create_feature_extractor = create_feature_extractor
    package.models = models
    sys.modules.update(
        {
            "torchvision": package,
            "torchvision.transforms": transforms,
            "torchvision.transforms.functional": transforms.functional,
            "torchvision.ops": ops,
            "torchvision.ops.boxes": boxes,
            "torchvision.models": models,
            "torchvision.models.feature_extraction": models.feature_extraction,
        }
    )
