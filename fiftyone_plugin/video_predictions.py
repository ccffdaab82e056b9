"""SAM 2 on one video sample, for ``apply_sam2``, ``Sam2VideoModel`` and ``auto_masklets``: what the predictor
reads, and the Detections of every frame propagated from the library's prompts.

Each object is tracked from its first prompted frame on (the VOS protocol of Meta's ``vos_inference.py``): an
object prompted on a later frame gets no prediction before it, and the masks a propagation of it alone would
give, with all objects batched in one session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import fiftyone as fo

from sam2_plugins.frames import open_frames
from sam2_plugins.prompts import apply_prompts, first_prompt_frames, propagate_prompted

from .masks import mask_to_detection
from .tracks import frame_index
from .video_prompts import LabelPrompts
from .views import flat_videos

SAVE_EVERY_FRAMES = 16
"""Predicted frames are written to the database in batches of this many."""


def frames_source(sample: fo.Sample) -> str:
    """What the predictor reads: the folder of the frames' own images (SA-V val/test JPEGs) or the video file.

    Looked up in the dataset, so a sample of a view that leaves the frames' ``filepath`` out works too.
    """
    dataset = sample.dataset
    if dataset.has_frame_field("filepath"):  # unwound: a video's frames are never gathered into one document
        paths = flat_videos(dataset).select(sample.id).values("frames.filepath", unwind=True)
        if paths and paths[0]:
            return str(Path(paths[0]).parent)
    return sample.filepath


def predicted_frames(
    predictor, sample: fo.Sample, prompted: LabelPrompts, last: int | None = None
) -> Iterator[tuple[int, int, fo.Detections]]:
    """Prompt one video and track each object from its first prompt to frame number ``last`` (None: its end):
    ``(frame number, number of frames propagated, Detections)`` per frame, as they come."""
    import torch

    frames = open_frames(frames_source(sample))
    session = predictor.init_video(frames, prune_memories=True)
    try:
        apply_prompts(session, prompted.prompts)
        firsts = first_prompt_frames(prompted.prompts)
        end = session.num_frames - 1 if last is None else min(frame_index(last), session.num_frames - 1)
        num_frames = end - min(firsts.values()) + 1
        for frame_idx, obj_ids, logits in propagate_prompted(session, firsts, end):
            presence = torch.sigmoid(session.object_scores(frame_idx)).tolist()
            scores = dict(zip(session.obj_ids, presence))
            masks = (logits > 0).cpu().numpy()
            detections = [
                mask_to_detection(
                    mask, index=int(obj_id), confidence=scores[obj_id], **prompted.attributes.get(obj_id, {})
                )
                for obj_id, mask in zip(obj_ids, masks)
            ]
            yield frame_idx + 1, num_frames, fo.Detections(detections=[d for d in detections if d is not None])
    finally:
        session.close()
        frames.close()
