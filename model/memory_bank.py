"""One object's memory: its prompted (conditioning) frames, its tracked frames and the choice of what to attend to.

The rules are Meta's SAM 2 video predictor's: a tracked frame attends to every conditioning frame (slot 0), to the
6 frames just before it in the direction of travel (slots 6..1, nearest first) and to up to 16 object pointers
(conditioning frames not ahead of it, then the 15 frames before it). Prompt results wait in `pending` until a
propagation starts, as user clicks on a frame may still change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .sam2_model import MAX_OBJECT_POINTERS, NUM_MASK_MEMORIES


@dataclass(eq=False)
class FrameMemory:
    """What one object leaves on one frame."""

    frame_idx: int
    low_res_masks: torch.Tensor  # (1, 1, S/4, S/4) logits as shown (holes filled)
    object_pointer: torch.Tensor  # (1, C)
    object_score: torch.Tensor  # (1, 1) logit
    from_clicks: bool  # a prompt result (its mask is binarized for memory) rather than a tracked prediction
    encoded_logits: torch.Tensor | None = None  # what `spatial` encodes, when not low_res_masks (holes filled after)
    # (1, C_mem, h, w) bfloat16; None until encoded, and again once no frame in the direction of travel attends to it
    spatial: torch.Tensor | None = None

    @property
    def memory_logits(self) -> torch.Tensor:
        """The low-resolution logits `spatial` is (re-)encoded from."""
        return self.low_res_masks if self.encoded_logits is None else self.encoded_logits


@dataclass
class PointPrompt:
    """Clicks (and box corners) of one object on one frame, in model-input pixels."""

    coords: torch.Tensor  # (1, N, 2)
    labels: torch.Tensor  # (1, N) int32: 1 positive, 0 negative, 2/3 box corners

    def extended(self, coords: torch.Tensor, labels: torch.Tensor) -> PointPrompt:
        return PointPrompt(torch.cat([self.coords, coords], dim=1), torch.cat([self.labels, labels], dim=1))


@dataclass
class MemorySelection:
    """The memories one object attends to on one frame; objects with equal `layout` can be batched."""

    spatial: list[tuple[int, FrameMemory]]
    pointers: list[tuple[int, FrameMemory]]
    max_pointer_distance: int

    @property
    def layout(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return tuple(slot for slot, _ in self.spatial), tuple(distance for distance, _ in self.pointers)


@dataclass
class MemoryBank:
    """Prompts, outputs and memories of one object over a video of `num_frames` frames."""

    num_frames: int
    conditioning: dict[int, FrameMemory] = field(default_factory=dict)
    tracked: dict[int, FrameMemory] = field(default_factory=dict)
    # prompt results not yet committed, for conditioning (True) and correction (False) frames
    pending: dict[bool, dict[int, FrameMemory]] = field(default_factory=lambda: {True: {}, False: {}})
    points: dict[int, PointPrompt] = field(default_factory=dict)
    # frames tracked or committed, with the direction (reverse?) they were reached in
    visited: dict[int, bool] = field(default_factory=dict)

    def latest(self, frame_idx: int, conditioning: bool | None = None) -> FrameMemory | None:
        """The newest output on a frame: a pending prompt result first (of either kind when `conditioning` is
        None), then committed ones."""
        pending = (self.pending[True], self.pending[False]) if conditioning is None else (self.pending[conditioning],)
        for store in (*pending, self.conditioning, self.tracked):
            if frame_idx in store:
                return store[frame_idx]
        return None

    def commit_pending(self) -> None:
        """Make prompt results memories (their `spatial` must be encoded); conditioning frames win over others."""
        for conditioning in (False, True):
            target = self.conditioning if conditioning else self.tracked
            target.update(self.pending[conditioning])
            self.pending[conditioning].clear()
        for frame_idx in self.conditioning:
            self.tracked.pop(frame_idx, None)

    def select(self, frame_idx: int, reverse: bool) -> MemorySelection:
        """The memories a tracked (non-conditioning) frame attends to."""
        step = -1 if reverse else 1
        spatial = [(0, memory) for _, memory in sorted(self.conditioning.items())]
        for slot in range(1, NUM_MASK_MEMORIES):
            memory = self.tracked.get(frame_idx - step * (NUM_MASK_MEMORIES - slot))
            if memory is not None:
                spatial.append((slot, memory))
        pointers = [
            (abs(frame_idx - t), memory)
            for t, memory in sorted(self.conditioning.items())
            if (t >= frame_idx if reverse else t <= frame_idx)
        ]
        for distance in range(1, self.max_pointer_distance + 1):
            t = frame_idx - step * distance
            if not 0 <= t < self.num_frames:
                break
            if t in self.tracked:
                pointers.append((distance, self.tracked[t]))
        return MemorySelection(spatial, pointers, self.max_pointer_distance)

    @property
    def max_pointer_distance(self) -> int:
        """Largest temporal distance of a tracked frame's pointer (also the pointer encoding's normalizer)."""
        return min(self.num_frames, MAX_OBJECT_POINTERS) - 1

    def forget_behind(self, frame_idx: int, reverse: bool) -> None:
        """Drop the tracked frames that frames after `frame_idx` in the direction of travel cannot reach."""
        step = -1 if reverse else 1
        for t in [t for t in self.tracked if (frame_idx - t) * step >= self.max_pointer_distance]:
            del self.tracked[t]
