"""Spatial memories of tracked frames: encoded when a frame is tracked, freed once the next frames in the direction
of travel cannot attend to them, re-encoded from their masks when a correction or a propagation the other way needs
them again. Conditioning frames' spatial memories are encoded once and kept."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager

import torch

from .frame_features import FrameFeatureCache
from .memory_bank import Direction, FrameMemory
from .sam2_model import NUM_MASK_MEMORIES, Sam2Model


class SpatialMemoryEncoder:
    """Encodes `FrameMemory.spatial` for a session's frames and frees the droppable ones behind the window."""

    def __init__(
        self, model: Sam2Model, features: FrameFeatureCache, run_model: Callable[[], AbstractContextManager]
    ) -> None:
        self._model = model
        self._features = features
        self._run_model = run_model
        # encoded memories that may be freed; weak, so a forgotten object's memories leave with it
        self._droppable: weakref.WeakSet[FrameMemory] = weakref.WeakSet()

    def encode(self, memories: Sequence[FrameMemory], droppable: bool = True) -> None:
        """Encode the spatial memories of `memories`, batched per frame and kind, stored in bfloat16 as Meta's
        predictor stores them (each object its own tensor, so one object's memory never keeps another's alive)."""
        batches: dict[tuple[int, bool], list[FrameMemory]] = {}
        for memory in memories:
            batches.setdefault((memory.frame_idx, memory.prompted), []).append(memory)
        for (frame_idx, prompted), batch in batches.items():
            with self._run_model():
                high_res = self._model.upsample_masks(torch.cat([memory.memory_logits for memory in batch]))
                scores = torch.cat([memory.object_score for memory in batch])
                spatial = self._model.encode_memory(self._features.features(frame_idx), high_res, scores, prompted)
            for memory, features in zip(batch, spatial):
                memory.spatial = features[None].to(torch.bfloat16)
        if droppable:
            self._droppable.update(memories)

    def ensure_encoded(self, memories: Iterable[FrameMemory]) -> None:
        """Re-encode, from their masks, those of `memories` whose spatial memory was freed."""
        self.encode([memory for memory in memories if memory.spatial is None])

    def drop_behind(self, frame_idx: int, direction: Direction) -> None:
        """Free the droppable spatial memories that frames after `frame_idx` in `direction` cannot attend to."""
        for memory in list(self._droppable):
            if direction.distance_behind(frame_idx, memory.frame_idx) >= NUM_MASK_MEMORIES - 1:
                memory.spatial = None
                self._droppable.discard(memory)
