"""Prompts simulated for training clips as Meta's SAM 2 training does (`SAM2Train`, its SA-V / MOSE recipe).

Per clip: with probability `point_probability` the conditioning frames get clicks (a box with probability
`box_probability`, else one click sampled uniformly inside the object), otherwise the ground-truth masks themselves.
The first frame always conditions; up to `max_conditioning_frames` frames do. With clicks, corrective clicks
follow on the conditioning frames and on random other frames (up to `max_corrected_frames`), each sampled uniformly
from the error between the prediction and the ground truth (from the ground truth alone with a small probability).

Decisions draw from a numpy generator (seeded like Meta's, 42, the same on every process) and pixel positions from
torch's generator, in the order Meta's code draws them: the same seeds give Meta's prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

BOX_LABELS = (2, 3)  # top-left, bottom-right corner


@dataclass(frozen=True)
class PromptRecipe:
    """How clips are prompted; the defaults are Meta's fine-tuning recipe (sam2.1_hiera_b+_MOSE_finetune.yaml)."""

    point_probability: float = 0.5
    box_probability: float = 0.5
    max_conditioning_frames: int = 2
    max_corrected_frames: int = 2
    corrections_per_frame: int = 7
    ground_truth_click_probability: float = 0.1
    corrected_frames_condition: bool = True  # a frame with corrective clicks becomes a conditioning frame
    box_noise: float = 0.1  # box corners move by up to this fraction of the box size ...
    box_noise_bound: float = 20.0  # ... and at most this many pixels

    def __post_init__(self) -> None:
        for name in ("point_probability", "box_probability", "ground_truth_click_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.max_conditioning_frames < 1 or self.max_corrected_frames < self.max_conditioning_frames:
            raise ValueError(
                "need 1 <= max_conditioning_frames <= max_corrected_frames, got "
                f"{self.max_conditioning_frames} and {self.max_corrected_frames}"
            )


@dataclass
class PointPrompt:
    """Clicks of every object of a clip on one frame, in model-input pixels."""

    coords: torch.Tensor  # (O, N, 2) x, y
    labels: torch.Tensor  # (O, N) int32: 1 positive, 0 negative, 2/3 box corners

    def extended(self, coords: torch.Tensor, labels: torch.Tensor) -> PointPrompt:
        return PointPrompt(torch.cat([self.coords, coords], dim=1), torch.cat([self.labels, labels], dim=1))


@dataclass
class ClipPrompts:
    """The prompts of one clip: which frames condition tracking, with masks or clicks, and which get corrections."""

    conditioning_frames: list[int]
    uses_clicks: bool
    clicks: dict[int, PointPrompt] = field(default_factory=dict)  # conditioning frame -> initial clicks
    corrected_frames: list[int] = field(default_factory=list)

    def processing_order(self, num_frames: int) -> list[int]:
        """Conditioning frames first, then the others in time order."""
        return self.conditioning_frames + [t for t in range(num_frames) if t not in self.conditioning_frames]


class PromptSampler:
    """Draws `ClipPrompts` and corrective clicks for training clips following a `PromptRecipe`."""

    def __init__(self, recipe: PromptRecipe | None = None, seed: int = 42) -> None:
        self.recipe = recipe or PromptRecipe()
        self.rng = np.random.default_rng(seed)

    def sample(self, masks: torch.Tensor) -> ClipPrompts:
        """Prompts for a clip whose ground truth is `masks` (T, O, S, S) bool."""
        recipe, num_frames = self.recipe, masks.shape[0]
        point_probability = 1.0 if num_frames == 1 else recipe.point_probability  # a still image takes clicks
        uses_clicks = self.rng.random() < point_probability
        num_conditioning = 1 if num_frames == 1 else recipe.max_conditioning_frames
        num_corrected = 1 if num_frames == 1 else recipe.max_corrected_frames
        if num_conditioning > 1:
            num_conditioning = int(self.rng.integers(1, num_conditioning, endpoint=True))
        if uses_clicks and num_corrected > num_conditioning:
            num_corrected = int(self.rng.integers(num_conditioning, num_corrected, endpoint=True))
        conditioning = [0]
        if num_conditioning > 1:
            conditioning += self.rng.choice(range(1, num_frames), num_conditioning - 1, replace=False).tolist()
        prompts = ClipPrompts(conditioning_frames=conditioning, uses_clicks=uses_clicks)
        if not uses_clicks:
            return prompts
        for t in conditioning:
            target = masks[t].unsqueeze(1)
            if self.rng.random() < recipe.box_probability:
                prompts.clicks[t] = self._noisy_box(target)
            else:
                prompts.clicks[t] = PointPrompt(*uniform_error_click(target, None))
        prompts.corrected_frames = list(conditioning)
        if num_corrected > num_conditioning:
            others = [t for t in range(num_frames) if t not in conditioning]
            prompts.corrected_frames += self.rng.choice(
                others, num_corrected - num_conditioning, replace=False
            ).tolist()
        return prompts

    def corrective_click(self, target: torch.Tensor, predicted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One click per object (O, 1, 2), (O, 1) on the error between `predicted` and `target` (O, 1, S, S) bool."""
        probability = self.recipe.ground_truth_click_probability
        from_ground_truth = probability > 0 and self.rng.random() < probability
        return uniform_error_click(target, None if from_ground_truth else predicted)

    def _noisy_box(self, target: torch.Tensor) -> PointPrompt:
        """Each object's tight box (O, 1, S, S), corners jittered by the recipe's noise, clamped to the image."""
        count, _, height, width = target.shape
        columns = torch.arange(width, device=target.device).view(1, 1, 1, width)
        rows = torch.arange(height, device=target.device).view(1, 1, height, 1)
        x0 = torch.where(target, columns, width).flatten(2).amin(-1)
        x1 = torch.where(target, columns, -1).flatten(2).amax(-1)
        y0 = torch.where(target, rows, height).flatten(2).amin(-1)
        y1 = torch.where(target, rows, -1).flatten(2).amax(-1)
        corners = torch.stack([x0, y0, x1, y1], dim=-1).float()  # (O, 1, 4)
        if self.recipe.box_noise > 0:
            bound = torch.tensor(self.recipe.box_noise_bound, device=target.device)
            max_dx = torch.min((x1 - x0) * self.recipe.box_noise, bound)
            max_dy = torch.min((y1 - y0) * self.recipe.box_noise, bound)
            jitter = 2 * torch.rand(count, 1, 4, device=target.device) - 1
            corners = corners + jitter * torch.stack([max_dx, max_dy, max_dx, max_dy], dim=-1)
            limit = torch.tensor([width, height, width, height], device=target.device) - 1
            corners = torch.minimum(corners.clamp(min=0), limit)
        labels = torch.tensor(BOX_LABELS, dtype=torch.int32, device=target.device).repeat(count, 1)
        return PointPrompt(corners.reshape(count, 2, 2), labels)


def uniform_error_click(target: torch.Tensor, predicted: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """A click per object drawn uniformly from its error region (O, 1, S, S) bool masks: positive (1) where the
    object was missed, negative (0) where background was taken; an exact prediction gets a negative click on the
    background. `predicted` None means nothing predicted (a click inside the object)."""
    if predicted is None:
        predicted = torch.zeros_like(target)
    count, _, height, width = target.shape
    exact = (target == predicted).flatten(2).all(dim=2)[..., None, None]
    # one uniform score per pixel and kind of click: the highest allowed score wins
    scores = torch.rand(count, 1, height, width, 2, device=target.device)
    negative_allowed = (predicted & ~target) | (exact & ~target)
    positive_allowed = target & ~predicted
    scores = scores * torch.stack([negative_allowed, positive_allowed], dim=-1)
    winner = scores.flatten(2).argmax(dim=2)  # (O, 1) over (pixel, kind)
    labels = (winner % 2).to(torch.int32)
    pixel = winner // 2
    coords = torch.stack([pixel % width, pixel // width], dim=2).float()
    return coords, labels
