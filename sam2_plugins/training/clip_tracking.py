"""A training clip tracked through the model core with the semantics of Meta's `SAM2Train.forward`.

All frames are encoded at once; conditioning frames are processed first (masks taken as the output, or clicks
decoded without memory), then the other frames in time order, each attending to every conditioning frame, the 6
tracked frames before it and up to 16 object pointers (in training, the pointers of later conditioning frames too,
with a signed temporal distance). Frames chosen for correction get corrective clicks, each decoded with the
previous mask logits. Every decoding step is kept for the loss; nothing is detached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..model.sam2_model import (
    MAX_OBJECT_POINTERS,
    NUM_MASK_MEMORIES,
    FrameFeatures,
    MemoryInputs,
    Prediction,
    Sam2Model,
)
from .prompting import ClipPrompts, PointPrompt, PromptSampler

MULTIMASK_MAX_POINTS = 1  # Meta's configs: three candidate masks for a prompt of at most one click


@dataclass
class PredictionStep:
    """One decoding of one frame for all objects: candidates at the model's input size, their IoUs, object scores."""

    candidate_masks: torch.Tensor  # (O, M, S, S) logits
    candidate_ious: torch.Tensor  # (O, M)
    object_scores: torch.Tensor  # (O, 1) logits


@dataclass
class TrackedFrame:
    """Every prediction step of a frame (the prompt's, then each correction's) and the final low-resolution masks."""

    steps: list[PredictionStep]
    low_res_masks: torch.Tensor  # (O, 1, S/4, S/4)


@dataclass
class _FrameMemory:
    spatial: torch.Tensor  # (O, C_mem, h, w)
    pointer: torch.Tensor  # (O, C)


def frame_features(features: FrameFeatures, rows: slice | torch.Tensor) -> FrameFeatures:
    """The rows `rows` of features encoded for a batch of images."""
    return FrameFeatures(
        high_res=[level[rows] for level in features.high_res],
        vision=features.vision[rows],
        vision_pos=features.vision_pos[rows],
    )


def track_clip(
    model: Sam2Model,
    images: torch.Tensor,
    masks: torch.Tensor,
    prompts: ClipPrompts,
    sampler: PromptSampler,
    object_clips: torch.Tensor | None = None,
    encode: Callable[[torch.Tensor], FrameFeatures] | None = None,
) -> list[TrackedFrame]:
    """Track a batch of clips sharing `prompts`: `images` (T, V, 3, S, S) normalized, ground truth `masks`
    (T, O, S, S) bool, `object_clips` (O,) the clip of each object (all 0 when V is 1). `encode` replaces
    `model.encode_image` (e.g. without gradients when the image encoder is frozen)."""
    num_frames, num_clips = images.shape[:2]
    num_objects = masks.shape[1]
    encoded = (encode or model.encode_image)(images.flatten(0, 1))
    conditioning: dict[int, _FrameMemory] = {}
    tracked: dict[int, _FrameMemory] = {}
    outputs: dict[int, TrackedFrame] = {}
    for t in prompts.processing_order(num_frames):
        if num_clips == 1:  # one frame's features serve all objects
            features = frame_features(encoded, slice(t, t + 1))
        else:
            features = frame_features(encoded, t * num_clips + object_clips)
        target = masks[t].unsqueeze(1)
        is_conditioning = t in prompts.conditioning_frames
        if is_conditioning and not prompts.uses_clicks:
            prediction = model.mask_as_output(features, target)
            high_res = target.float() * 20.0 - 10.0  # the mask itself, as logits (Meta's scale and bias)
            steps = [PredictionStep(high_res, prediction.candidate_ious, prediction.object_scores)]
            clicks = None
        else:
            if is_conditioning:
                embedding = model.without_memory(features, num_objects)
            else:
                embedding = model.with_memory(features, _memories(t, conditioning, tracked, num_frames))
            clicks = prompts.clicks.get(t)
            prediction = _decode(model, embedding, features, clicks, None)
            steps = [_step(model, prediction)]
            if t in prompts.corrected_frames:
                for _ in range(sampler.recipe.corrections_per_frame):
                    predicted = model.upsample_masks(prediction.low_res_masks) > 0
                    coords, labels = sampler.corrective_click(target, predicted)
                    clicks = PointPrompt(coords, labels) if clicks is None else clicks.extended(coords, labels)
                    prediction = _decode(model, embedding, features, clicks, prediction.low_res_masks)
                    steps.append(_step(model, prediction))
            high_res = model.upsample_masks(prediction.low_res_masks)
        # training encodes click results unbinarized, whatever the model's inference post-processing
        spatial = model.encode_memory(features, high_res, prediction.object_scores, prompted=False)
        memory = _FrameMemory(spatial, prediction.object_pointers)
        if is_conditioning or (sampler.recipe.corrected_frames_condition and t in prompts.corrected_frames):
            conditioning[t] = memory
        else:
            tracked[t] = memory
        outputs[t] = TrackedFrame(steps, prediction.low_res_masks)
    return [outputs[t] for t in range(num_frames)]


def _decode(
    model: Sam2Model,
    embedding: torch.Tensor,
    features: FrameFeatures,
    clicks: PointPrompt | None,
    previous_logits: torch.Tensor | None,
) -> Prediction:
    num_points = 0 if clicks is None else clicks.labels.shape[1]
    return model.decode(
        embedding,
        features.high_res,
        point_coords=None if clicks is None else clicks.coords,
        point_labels=None if clicks is None else clicks.labels,
        mask_logits=previous_logits,
        multimask=num_points <= MULTIMASK_MAX_POINTS,
    )


def _step(model: Sam2Model, prediction: Prediction) -> PredictionStep:
    candidates = model.upsample_masks(prediction.candidate_masks)
    return PredictionStep(candidates, prediction.candidate_ious, prediction.object_scores)


def _memories(
    frame_idx: int, conditioning: dict[int, _FrameMemory], tracked: dict[int, _FrameMemory], num_frames: int
) -> MemoryInputs:
    """What a tracked frame attends to in training: all conditioning frames, earlier ones or not."""
    spatial = [(0, memory.spatial) for memory in conditioning.values()]
    for slot in range(1, NUM_MASK_MEMORIES):
        memory = tracked.get(frame_idx - (NUM_MASK_MEMORIES - slot))
        if memory is not None:
            spatial.append((slot, memory.spatial))
    pointers = [(frame_idx - t, memory.pointer) for t, memory in conditioning.items()]
    max_distance = min(num_frames, MAX_OBJECT_POINTERS) - 1
    for distance in range(1, max_distance + 1):
        if frame_idx - distance < 0:
            break
        memory = tracked.get(frame_idx - distance)
        if memory is not None:
            pointers.append((distance, memory.pointer))
    return MemoryInputs(spatial, pointers, max_distance)
