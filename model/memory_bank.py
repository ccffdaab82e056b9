"""One object's memory: its prompted (conditioning) frames, its tracked frames and the choice of what to attend to.

The rules are Meta's SAM 2 video predictor's: a tracked frame attends to every conditioning frame (slot 0), to the
6 frames just before it in the direction of travel (slots 6..1, nearest first) and to up to 16 object pointers
(conditioning frames not ahead of it, then the 15 frames before it). Prompt results wait in `pending` until a
propagation starts, as user clicks on a frame may still change.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from enum import Enum

import torch

from .sam2_model import MAX_OBJECT_POINTERS, NUM_MASK_MEMORIES


class Direction(Enum):
    """The way a propagation travels through the video; the value is the frame step."""

    FORWARD = 1
    BACKWARD = -1

    @classmethod
    def of(cls, reverse: bool) -> Direction:
        return cls.BACKWARD if reverse else cls.FORWARD

    def distance_behind(self, frame_idx: int, other_idx: int) -> int:
        """How many frames `other_idx` lies behind `frame_idx` in this direction (negative: ahead of it)."""
        return (frame_idx - other_idx) * self.value


class PromptRole(Enum):
    """What a prompt on a frame does for its object."""

    CONDITIONING = "conditioning"  # on a frame the object was not tracked on: the frame conditions its tracking
    CORRECTION = "correction"  # on a frame the object was tracked on: it corrects the tracked mask there


@dataclass(eq=False)
class FrameMemory:
    """What one object leaves on one frame."""

    frame_idx: int
    low_res_masks: torch.Tensor  # (1, 1, S/4, S/4) logits as shown (holes filled)
    object_pointer: torch.Tensor  # (1, C)
    object_score: torch.Tensor  # (1, 1) logit
    prompted: bool  # a prompt result (its mask is binarized for memory) rather than a tracked prediction
    encoded_logits: torch.Tensor | None = None  # what `spatial` encodes, when not low_res_masks (holes filled after)
    # (1, C_mem, h, w) bfloat16; None until encoded, and again once no frame in the direction of travel attends to it
    spatial: torch.Tensor | None = None

    @property
    def memory_logits(self) -> torch.Tensor:
        """The low-resolution logits `spatial` is (re-)encoded from."""
        return self.low_res_masks if self.encoded_logits is None else self.encoded_logits

    @property
    def nbytes(self) -> int:
        """Bytes of the tensors this memory holds."""
        tensors = (self.low_res_masks, self.object_pointer, self.object_score, self.encoded_logits, self.spatial)
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)


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
    # prompt results not yet committed, per role
    pending: dict[PromptRole, dict[int, FrameMemory]] = field(default_factory=lambda: {role: {} for role in PromptRole})
    points: dict[int, PointPrompt] = field(default_factory=dict)
    # frames a propagation has passed, with the direction it travelled
    reached: dict[int, Direction] = field(default_factory=dict)

    def role_of(self, frame_idx: int) -> PromptRole:
        """A prompt's role on a frame: a frame not yet tracked is a new conditioning frame, else a correction."""
        return PromptRole.CORRECTION if frame_idx in self.reached else PromptRole.CONDITIONING

    def latest(self, frame_idx: int, pending_roles: Collection[PromptRole] = tuple(PromptRole)) -> FrameMemory | None:
        """The newest output on a frame: a pending prompt result of `pending_roles` first, then committed ones."""
        stores = [self.pending[role] for role in PromptRole if role in pending_roles]
        for store in (*stores, self.conditioning, self.tracked):
            if frame_idx in store:
                return store[frame_idx]
        return None

    def commit_pending(self) -> None:
        """Make prompt results memories (their `spatial` must be encoded); conditioning frames win over others."""
        self.tracked.update(self.pending[PromptRole.CORRECTION])
        self.conditioning.update(self.pending[PromptRole.CONDITIONING])
        for store in self.pending.values():
            store.clear()
        for frame_idx in self.conditioning:
            self.tracked.pop(frame_idx, None)

    def select(self, frame_idx: int, direction: Direction) -> MemorySelection:
        """The memories a tracked (non-conditioning) frame attends to."""
        spatial = [(0, memory) for _, memory in sorted(self.conditioning.items())]
        for slot in range(1, NUM_MASK_MEMORIES):
            memory = self.tracked.get(frame_idx - direction.value * (NUM_MASK_MEMORIES - slot))
            if memory is not None:
                spatial.append((slot, memory))
        pointers = [
            (abs(frame_idx - t), memory)
            for t, memory in sorted(self.conditioning.items())
            if direction.distance_behind(frame_idx, t) >= 0
        ]
        for distance in range(1, self.max_pointer_distance + 1):
            t = frame_idx - direction.value * distance
            if not 0 <= t < self.num_frames:
                break
            if t in self.tracked:
                pointers.append((distance, self.tracked[t]))
        return MemorySelection(spatial, pointers, self.max_pointer_distance)

    @property
    def max_pointer_distance(self) -> int:
        """Largest temporal distance of a tracked frame's pointer (also the pointer encoding's normalizer)."""
        return min(self.num_frames, MAX_OBJECT_POINTERS) - 1

    def forget_behind(self, frame_idx: int, direction: Direction) -> None:
        """Drop the tracked frames that frames after `frame_idx` in the direction of travel cannot reach."""
        for t in [t for t in self.tracked if direction.distance_behind(frame_idx, t) >= self.max_pointer_distance]:
            del self.tracked[t]

    @property
    def memories(self) -> list[FrameMemory]:
        """Every memory the object holds: committed and pending."""
        pending = [memory for store in self.pending.values() for memory in store.values()]
        return [*self.conditioning.values(), *self.tracked.values(), *pending]
