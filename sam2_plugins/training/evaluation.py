"""Held-out J&F of a model: each object prompted with its ground-truth mask on the frame it first appears,
tracked from there through the video (empty before it, as Meta's `vos_inference.py` leaves a later object), scored
on its annotated frames as the SA-V evaluator scores (first and last left out)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist

from ..datasets import VosVideo
from ..evaluate import evaluate_object
from ..model.predictor import Sam2VideoPredictor
from ..model.sam2_model import Sam2Model


def held_out_jf(
    model: Sam2Model,
    videos: Sequence[VosVideo],
    device: str | torch.device | None = None,
) -> float:
    """Mean J&F (0..100) over every object of `videos`, on a copy of `model` (inference leaves cached tensors that
    training could not use, and switches to eval mode). Under torchrun each process tracks its share of the videos
    and every process returns the mean over all of them."""
    predictor = Sam2VideoPredictor(copy.deepcopy(model), fill_hole_area=0, device=device)
    distributed = dist.is_initialized()
    share = videos[dist.get_rank() :: dist.get_world_size()] if distributed else videos
    scores = []
    for video in share:
        predicted = _track_video(predictor, video)
        for obj in video.object_ids:
            frames = video.annotated_frames(obj)
            gt = [video.masks(t, [obj]).get(obj, np.zeros(video.frame_size, bool)) for t in frames]
            pred = [predicted[t].get(obj) for t in frames]
            score = evaluate_object(gt, pred, video=video.video_id, obj=obj)
            if score.scored:  # an object annotated on too few frames has none left to score
                scores.append(score.jf)
    if distributed:
        shares: list[list[float] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(shares, scores)
        scores = [score for process_scores in shares for score in process_scores]
    if not scores:
        raise ValueError(
            "no object of the held-out videos has annotated frames to score besides its first and last: "
            "pass longer held-out videos"
        )
    return float(np.mean(scores))


def _track_video(predictor: Sam2VideoPredictor, video: VosVideo) -> dict[int, dict[str, np.ndarray]]:
    """Masks on every annotated frame from each object's first frame on, per object."""
    annotated = set(video.annotated_frames())
    predicted: dict[int, dict[str, np.ndarray]] = {t: {} for t in annotated}
    first_frames = {obj: video.first_frame(obj) for obj in video.object_ids}
    with video.frames() as frames:
        session = predictor.init_video(frames)
        try:
            for obj, first in first_frames.items():
                session.add_mask(first, obj, video.masks(first, [obj])[obj])
            for t, obj_ids, logits in session.propagate():
                if t in annotated:
                    masks = (logits > 0).cpu().numpy()
                    predicted[t].update(
                        (obj, mask) for obj, mask in zip(obj_ids, masks, strict=True) if first_frames[obj] <= t
                    )
        finally:
            session.close()
    return predicted
