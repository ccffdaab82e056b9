"""Automatic masklets, as SA-V's were made: segment everything on a start frame, track every mask through the video
together, and optionally segment again every few frames to add the objects that appeared meanwhile.

`auto_masklets` runs on the model core: any mask generator with Meta's `generate(image) -> records` API (our
`Sam2AutomaticMaskGenerator`) and a `Sam2VideoPredictor`. It yields ``(frame_idx, obj_ids, mask_logits)`` per frame as
`VideoSession.propagate` does and keeps an `AutoMasklet` record per object (what SA-V's auto JSON holds).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from .masks import decode_rle, encode_rle
from .model import FrameSequence, Sam2VideoPredictor, VideoSession
from .model.amg import stability_score
from .sav_masklets import visibility_changes

FrameOutput = tuple[int, list[int], torch.Tensor]
STABILITY_OFFSET = 1.0  # logit offset of the stability score, Meta's generator default


class MaskGenerator(Protocol):
    """Meta's `SAM2AutomaticMaskGenerator` API: records with `segmentation`, `predicted_iou`, `stability_score`."""

    def generate(self, image: np.ndarray) -> list[dict]: ...


@dataclass
class AutoMasklet:
    """One automatically found object: where it was seeded, its generator scores and its mask on every frame."""

    obj_id: int
    first_frame: int
    """The video frame the generator found it on (its mask prompt)."""
    predicted_iou: float
    """The generator's predicted IoU of the seeding mask."""
    rles: dict[int, dict] = field(repr=False, default_factory=dict)
    """COCO RLE (string counts) of its mask on each frame it was tracked on, in the order they were visited."""
    stability_scores: dict[int, float | None] = field(repr=False, default_factory=dict)
    """Stability score of its mask logits on each of those frames (the generator's on `first_frame`); None when
    the mask is empty."""
    ended_frame: int | None = None
    """The frame it stopped on after `end_after_absent` absent frames; None while tracked to the end."""

    @property
    def frame_count(self) -> int:
        """Frames it was tracked on."""
        return len(self.rles)

    @property
    def visible_frames(self) -> list[int]:
        """Frames it has a non-empty mask on, in video order."""
        return sorted(frame for frame, score in self.stability_scores.items() if score is not None)

    @property
    def visibility_changes(self) -> int:
        """How often it turns invisible or visible again after it first appears (video order), as SA-V counts."""
        return visibility_changes([self.stability_scores[frame] is not None for frame in sorted(self.rles)])

    def mask(self, frame_idx: int) -> np.ndarray | None:
        """Its ``(H, W)`` bool mask on a frame, None where it was not tracked."""
        rle = self.rles.get(frame_idx)
        return None if rle is None else decode_rle(rle, f"masklet {self.obj_id} on frame {frame_idx}")


def stability_scores(logits: torch.Tensor, offset: float = STABILITY_OFFSET) -> list[float | None]:
    """Per mask of (N, H, W) logits, the generator's stability score (`amg.stability_score` at threshold 0); None
    for an empty mask."""
    scores = stability_score(logits, 0.0, offset).tolist()
    shown = (logits > 0).flatten(1).any(1).tolist()
    return [score if visible else None for score, visible in zip(scores, shown)]


def _record_mask(record: dict, where: str) -> np.ndarray:
    segmentation = record["segmentation"]
    if isinstance(segmentation, dict):  # output_mode "uncompressed_rle" or "coco_rle"
        return decode_rle(segmentation, where)
    return np.asarray(segmentation, dtype=bool)


class AutoMaskletTracker:
    """Iterate it for ``(frame_idx, obj_ids, (N, H, W) mask logits)`` per frame; `masklets` holds the records.

    See `auto_masklets` for the parameters.
    """

    def __init__(
        self,
        video_predictor: Sam2VideoPredictor,
        mask_generator: MaskGenerator,
        frames: FrameSequence | np.ndarray,
        start_frame: int = 0,
        reseed_every: int | None = None,
        new_object_iou: float = 0.3,
        new_object_coverage: float = 0.5,
        min_new_area: int = 100,
        end_after_absent: int | None = None,
        reverse: bool = False,
    ) -> None:
        if reseed_every is not None and reseed_every < 1:
            raise ValueError(f"reseed_every={reseed_every}: give a number of frames >= 1, or None not to reseed")
        if end_after_absent is not None and end_after_absent < 1:
            raise ValueError(f"end_after_absent={end_after_absent}: give a number of frames >= 1, or None")
        self.video_predictor = video_predictor
        self.mask_generator = mask_generator
        self.frames = frames
        self.start_frame = start_frame
        self.reseed_every = reseed_every
        self.new_object_iou = new_object_iou
        self.new_object_coverage = new_object_coverage
        self.min_new_area = min_new_area
        self.end_after_absent = end_after_absent
        self.reverse = reverse
        self.masklets: list[AutoMasklet] = []
        self._absent_for: dict[int, int] = {}

    def __iter__(self) -> Iterator[FrameOutput]:
        self.masklets, self._absent_for = [], {}
        # an automatic run makes no corrections: frames beyond pointer reach are dropped (flat memory)
        session = self.video_predictor.init_video(self.frames, prune_memories=True)
        try:
            yield from self._track(session)
        finally:
            session.close()

    def _track(self, session: VideoSession) -> Iterator[FrameOutput]:
        step = -1 if self.reverse else 1
        if not 0 <= self.start_frame < session.num_frames:
            raise IndexError(f"start_frame {self.start_frame} is outside the video's {session.num_frames} frames")
        end = -1 if self.reverse else session.num_frames
        seed_frame = self.start_frame
        yield self._seeded(session, seed_frame, None)
        while seed_frame + step != end:
            next_seed = None if self.reseed_every is None else seed_frame + step * self.reseed_every
            if next_seed is not None and not 0 <= next_seed < session.num_frames:
                next_seed = None
            last = next_seed if next_seed is not None else end - step
            seeded_output = None
            for frame_idx, obj_ids, logits in self._frames_between(session, seed_frame + step, last):
                if frame_idx == next_seed:
                    seeded_output = (obj_ids, logits)
                else:
                    yield self._recorded(session, frame_idx, obj_ids, logits)
            if next_seed is None:
                return
            yield self._seeded(session, next_seed, seeded_output)
            seed_frame = next_seed

    def _frames_between(self, session: VideoSession, first: int, last: int) -> Iterator[FrameOutput]:
        """Track from `first` to `last` (inclusive, in the direction of travel); frames with no object are empty."""
        if session.obj_ids:
            yield from session.propagate(start_frame=first, reverse=self.reverse, max_frames=abs(last - first))
            return
        empty = torch.zeros(0, session.video_height, session.video_width)
        for frame_idx in range(first, last + (-1 if self.reverse else 1), -1 if self.reverse else 1):
            yield frame_idx, [], empty

    def _seeded(
        self, session: VideoSession, frame_idx: int, tracked: tuple[list[int], torch.Tensor] | None
    ) -> FrameOutput:
        """Run the generator on a frame; its masks no tracked object covers become new objects there."""
        records = self.mask_generator.generate(np.asarray(session.frames[frame_idx]))
        obj_ids, logits = tracked if tracked is not None else ([], None)
        taken = [] if logits is None else list((logits > 0).cpu())
        added_scores: dict[int, float] = {}
        for number, record in enumerate(records):
            mask = _record_mask(record, f"mask generator record {number} on frame {frame_idx}")
            if tracked is not None and not self._is_new(mask, taken):
                continue
            obj_id = len(self.masklets)
            obj_ids, logits = session.add_mask(frame_idx, obj_id, mask)
            taken.append(torch.from_numpy(mask))
            self.masklets.append(AutoMasklet(obj_id, frame_idx, float(record["predicted_iou"])))
            added_scores[obj_id] = float(record["stability_score"])
        if logits is None:
            obj_ids, logits = session.masks(frame_idx)
        return self._recorded(session, frame_idx, obj_ids, logits, added_scores)

    def _is_new(self, mask: np.ndarray, taken: list[torch.Tensor]) -> bool:
        """A generated mask big enough that no tracked mask matches (IoU) or covers it."""
        candidate = torch.from_numpy(mask)
        area = int(candidate.sum())
        if area < self.min_new_area:
            return False
        if not taken:
            return True
        others = torch.stack(taken).to(candidate.device)
        overlap = (others & candidate).flatten(1).sum(1)
        union = (others | candidate).flatten(1).sum(1)
        covered = int((others.any(0) & candidate).sum())
        return bool((overlap / union.clamp(min=1)).max() < self.new_object_iou) and (
            covered / area < self.new_object_coverage
        )

    def _recorded(
        self,
        session: VideoSession,
        frame_idx: int,
        obj_ids: list[int],
        logits: torch.Tensor,
        seed_scores: dict[int, float] | None = None,
    ) -> FrameOutput:
        """Add a frame's masks to the records; objects absent for `end_after_absent` frames stop after it."""
        seed_scores = seed_scores or {}
        scores = stability_scores(logits)
        present = (session.object_scores(frame_idx) > 0).tolist() if obj_ids else []
        foreground = (logits > 0).cpu().numpy()
        for row, obj_id in enumerate(obj_ids):
            masklet = self.masklets[obj_id]
            masklet.rles[frame_idx] = encode_rle(foreground[row])
            score = scores[row]
            masklet.stability_scores[frame_idx] = seed_scores.get(obj_id, score) if score is not None else None
            self._absent_for[obj_id] = 0 if present[row] else self._absent_for.get(obj_id, 0) + 1
        if self.end_after_absent is not None:
            for obj_id in obj_ids:
                if self._absent_for[obj_id] >= self.end_after_absent:
                    session.remove_object(obj_id)
                    self.masklets[obj_id].ended_frame = frame_idx
        return frame_idx, list(obj_ids), logits


def auto_masklets(
    video_predictor: Sam2VideoPredictor,
    mask_generator: MaskGenerator,
    frames: FrameSequence | np.ndarray,
    start_frame: int = 0,
    reseed_every: int | None = None,
    new_object_iou: float = 0.3,
    new_object_coverage: float = 0.5,
    min_new_area: int = 100,
    end_after_absent: int | None = None,
    reverse: bool = False,
) -> AutoMaskletTracker:
    """Segment everything on `start_frame` with `mask_generator` and track every mask through `frames` (forward, or
    backward with `reverse`), all objects batched in one video session; iterate the result for
    ``(frame_idx, obj_ids, (N, H, W) mask logits)`` per frame (> 0 is foreground), its `masklets` for the records.

    Objects are numbered 0, 1, ... in the generator's record order (as SA-V numbers masklets). With
    `reseed_every=K` the generator runs again every K frames; a mask whose IoU with every tracked mask is below
    `new_object_iou`, which tracked masks cover less than `new_object_coverage` of and whose area is at least
    `min_new_area` pixels becomes a new object from that frame on. An object whose object score stays below zero
    for `end_after_absent` frames stops (None: every object is tracked to the end).
    """
    return AutoMaskletTracker(
        video_predictor,
        mask_generator,
        frames,
        start_frame=start_frame,
        reseed_every=reseed_every,
        new_object_iou=new_object_iou,
        new_object_coverage=new_object_coverage,
        min_new_area=min_new_area,
        end_after_absent=end_after_absent,
        reverse=reverse,
    )
