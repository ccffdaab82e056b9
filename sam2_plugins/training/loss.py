"""The training loss of Meta's SAM 2 (`MultiStepMultiMasksAndIous`): focal + dice + IoU + object score.

Each prediction step of each frame is scored. With several candidate masks, focal and dice losses take the
candidate with the lowest weighted focal + dice; the IoU head is supervised on every candidate (L1 to the actual
IoU). Mask and IoU losses count only where the object is present; the object-score loss counts everywhere. Every
term is summed over frames, steps and objects and divided by the number of objects (averaged over processes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .clip_tracking import PredictionStep, TrackedFrame

LOSS_TERMS = ("loss_mask", "loss_dice", "loss_iou", "loss_class")


@dataclass(frozen=True)
class LossWeights:
    """Weights of the terms; the defaults are Meta's (focal 20, dice 1, IoU 1, object score 1)."""

    mask: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    object_score: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float, reduce_dims: int
) -> torch.Tensor:
    """Sigmoid focal loss averaged over the last `reduce_dims` flattened dimensions (alpha < 0: unweighted)."""
    probability = logits.sigmoid()
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    correct_probability = probability * targets + (1 - probability) * (1 - targets)
    loss = cross_entropy * (1 - correct_probability) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.flatten(-reduce_dims).mean(-1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - smoothed dice of each mask (..., H, W)."""
    probability = logits.sigmoid().flatten(-2)
    targets = targets.flatten(-2)
    overlap = 2 * (probability * targets).sum(-1)
    return 1 - (overlap + 1) / (probability.sum(-1) + targets.sum(-1) + 1)


def actual_iou(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """IoU of each thresholded mask (..., H, W) with its target."""
    predicted, truth = logits.flatten(-2) > 0, targets.flatten(-2) > 0
    intersection = (predicted & truth).sum(-1).float()
    union = (predicted | truth).sum(-1).float()
    return intersection / union.clamp(min=1.0)


def object_count(num_objects: int, device: torch.device) -> float:
    """The loss normalizer: objects per clip batch, averaged over the processes of a distributed run."""
    count = torch.tensor(float(num_objects), device=device)
    world = 1
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(count)
        world = dist.get_world_size()
    return max(count.item() / world, 1.0)


def clip_loss(
    frames: Sequence[TrackedFrame], masks: torch.Tensor, weights: LossWeights | None = None
) -> dict[str, torch.Tensor]:
    """Loss terms and their weighted sum ("loss") of tracked clips against their ground truth (T, O, S, S)."""
    weights = weights or LossWeights()
    normalizer = object_count(masks.shape[1], masks.device)
    totals = {term: masks.new_zeros((), dtype=torch.float32) for term in LOSS_TERMS}
    for frame, frame_masks in zip(frames, masks, strict=True):
        target = frame_masks.unsqueeze(1).float()
        present = target.flatten(1).amax(dim=1, keepdim=True)  # (O, 1): 1 where the object is on the frame
        for step in frame.steps:
            for term, value in _step_losses(step, target, present, weights).items():
                totals[term] = totals[term] + value / normalizer
    totals["loss"] = (
        weights.mask * totals["loss_mask"]
        + weights.dice * totals["loss_dice"]
        + weights.iou * totals["loss_iou"]
        + weights.object_score * totals["loss_class"]
    )
    return totals


def _step_losses(
    step: PredictionStep, target: torch.Tensor, present: torch.Tensor, weights: LossWeights
) -> dict[str, torch.Tensor]:
    candidates = step.candidate_masks
    target = target.expand_as(candidates)
    focal = focal_loss(candidates, target, weights.focal_alpha, weights.focal_gamma, reduce_dims=2)  # (O, M)
    dice = dice_loss(candidates, target)
    iou = (step.candidate_ious - actual_iou(candidates, target)).abs()
    if candidates.shape[1] > 1:
        best = torch.argmin(weights.mask * focal + weights.dice * dice, dim=-1, keepdim=True)
        focal, dice = focal.gather(1, best), dice.gather(1, best)
        iou = iou.mean(dim=-1, keepdim=True)
    object_score = focal_loss(step.object_scores, present, alpha=-1.0, gamma=0.0, reduce_dims=1).sum()
    return {
        "loss_mask": (focal * present).sum(),
        "loss_dice": (dice * present).sum(),
        "loss_iou": (iou * present).sum(),
        "loss_class": object_score,
    }
