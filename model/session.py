"""A video session: prompts on frames, propagation through the video, corrections, many objects.

Semantics follow Meta's `SAM2VideoPredictor` (sam2 1.1.0) with per-object inference; all objects of a frame are
batched through memory attention, the mask decoder and the memory encoder.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import AbstractContextManager

import numpy as np
import torch
import torch.nn.functional as F

from .frame_features import FrameFeatureCache
from .frames import FrameSequence
from .memory_bank import FrameMemory, MemoryBank, MemorySelection, PointPrompt
from .postprocess import fill_holes
from .sam2_model import NO_OBJECT_SCORE, NUM_MASK_MEMORIES, MemoryInputs, Prediction, Sam2Model

ObjectId = Hashable
FrameMasks = tuple[list[ObjectId], torch.Tensor]  # object ids and their (N, H, W) logits at video resolution
PREVIOUS_LOGITS_LIMIT = 32.0  # previous logits fed back with new clicks are clamped to +-this
BOX_CORNER_LABELS = (2, 3)


class VideoSession:
    """Tracking state of one video; create it with `Sam2VideoPredictor.init_video`."""

    def __init__(
        self,
        model: Sam2Model,
        frames: FrameSequence,
        run_model: Callable[[], AbstractContextManager],
        fill_hole_area: int,
        feature_cache_bytes: int,
        prune_memories: bool,
    ) -> None:
        if len(frames) == 0:
            raise ValueError(f"{frames!r} holds no frames")
        self.frames = frames
        self.num_frames = len(frames)
        self.video_height, self.video_width = frames.height, frames.width
        self._model = model
        self._run_model = run_model
        self._fill_hole_area = fill_hole_area
        self._prune_memories = prune_memories
        self._features = FrameFeatureCache(frames, model, run_model, feature_cache_bytes)
        self._banks: dict[ObjectId, MemoryBank] = {}
        # tracked frames' memories holding spatial features; these are dropped once behind the attention window
        self._encoded_tracked: weakref.WeakSet[FrameMemory] = weakref.WeakSet()

    @property
    def obj_ids(self) -> list[ObjectId]:
        """Ids of the objects prompted so far, in the order of the masks' first axis."""
        return list(self._banks)

    # ---------------------------------------------------------------- prompts
    def add_points(
        self,
        frame_idx: int,
        obj_id: ObjectId,
        points: Sequence[Sequence[float]] | np.ndarray,
        labels: Sequence[int] | np.ndarray,
        clear_old: bool = True,
    ) -> FrameMasks:
        """Clicks at pixel (x, y) `points` with `labels` 1 (positive) or 0 (negative); returns the frame's masks.

        With `clear_old=False` the clicks add to the object's earlier clicks on this frame.
        """
        coords, point_labels = self._points(points, labels)
        return self._add_clicks(frame_idx, obj_id, coords, point_labels, clear_old)

    def add_box(
        self,
        frame_idx: int,
        obj_id: ObjectId,
        box: Sequence[float] | np.ndarray,
        points: Sequence[Sequence[float]] | np.ndarray | None = None,
        labels: Sequence[int] | np.ndarray | None = None,
    ) -> FrameMasks:
        """A pixel box (x0, y0, x1, y1), optionally with clicks; replaces the object's prompts on this frame."""
        corners = np.asarray(box, dtype=np.float32)
        if corners.shape != (4,):
            raise ValueError(f"box must be 4 numbers x0, y0, x1, y1 in pixels, got shape {corners.shape}")
        coords, point_labels = self._points(corners.reshape(2, 2), BOX_CORNER_LABELS)
        if points is not None:
            extra_coords, extra_labels = self._points(points, labels)
            coords = torch.cat([coords, extra_coords], dim=1)
            point_labels = torch.cat([point_labels, extra_labels], dim=1)
        return self._add_clicks(frame_idx, obj_id, coords, point_labels, clear_old=True)

    def add_mask(self, frame_idx: int, obj_id: ObjectId, mask: np.ndarray | torch.Tensor) -> FrameMasks:
        """A (H, W) boolean mask at the video's resolution as the object's prompt; returns the frame's masks."""
        self._check_frame(frame_idx)
        mask = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
        if mask.shape != (self.video_height, self.video_width):
            raise ValueError(
                f"mask shape {tuple(mask.shape)} differs from the video's (height, width) "
                f"{(self.video_height, self.video_width)}: pass one boolean mask per object at the video's size"
            )
        size = self._model.image_size
        mask_input = mask.bool()[None, None].float().to(self._model.device)
        if mask_input.shape[-2:] != (size, size):
            resized = F.interpolate(mask_input, (size, size), mode="bilinear", align_corners=False, antialias=True)
            mask_input = (resized >= 0.5).float()
        bank = self._bank(obj_id)
        bank.points.pop(frame_idx, None)
        conditioning = frame_idx not in bank.visited
        with self._run_model():
            prediction = self._model.mask_as_output(self._features.features(frame_idx), mask_input)
        bank.pending[conditioning][frame_idx] = self._frame_memories(frame_idx, prediction, from_clicks=True)[0]
        return self._frame_masks(frame_idx, conditioning)

    def _points(self, points, labels) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel points (N, 2) and labels (N,) as model-input coordinates (1, N, 2) and int32 labels (1, N)."""
        coords = np.asarray(points, dtype=np.float32).reshape(-1, 2) if len(points) else np.zeros((0, 2), np.float32)
        point_labels = np.asarray(labels, dtype=np.int32).reshape(-1)
        if len(coords) != len(point_labels):
            raise ValueError(f"{len(coords)} points but {len(point_labels)} labels: give one label per point")
        scale = torch.tensor([self.video_width, self.video_height], dtype=torch.float32)
        model_coords = torch.from_numpy(coords) / scale * self._model.image_size
        device = self._model.device
        return model_coords[None].to(device), torch.from_numpy(point_labels)[None].to(device)

    def _add_clicks(
        self, frame_idx: int, obj_id: ObjectId, coords: torch.Tensor, labels: torch.Tensor, clear_old: bool
    ) -> FrameMasks:
        self._check_frame(frame_idx)
        bank = self._bank(obj_id)
        prompt = PointPrompt(coords, labels)
        if not clear_old and frame_idx in bank.points:
            prompt = bank.points[frame_idx].extended(coords, labels)
        bank.points[frame_idx] = prompt
        # a frame not yet tracked is a new conditioning frame; otherwise the clicks correct the tracked mask
        conditioning = frame_idx not in bank.visited
        previous = bank.latest(frame_idx, conditioning)
        previous_logits = None
        if previous is not None:
            previous_logits = previous.low_res_masks.clamp(-PREVIOUS_LOGITS_LIMIT, PREVIOUS_LOGITS_LIMIT)
        with self._run_model():
            features = self._features.features(frame_idx)
            if conditioning:
                embedding = self._model.without_memory(features, batch=1)
            else:
                selection = bank.select(frame_idx, reverse=bank.visited[frame_idx])
                embedding = self._model.with_memory(features, self._memory_inputs([selection]))
            prediction = self._model.decode(
                embedding,
                features.high_res,
                prompt.coords,
                prompt.labels,
                mask_logits=previous_logits,
                multimask=prompt.labels.shape[1] <= 1,  # the first click is ambiguous; a box is not
            )
        bank.pending[conditioning][frame_idx] = self._frame_memories(frame_idx, prediction, from_clicks=True)[0]
        return self._frame_masks(frame_idx, conditioning)

    # ---------------------------------------------------------------- propagation
    def propagate(
        self, start_frame: int | None = None, reverse: bool = False, max_frames: int | None = None
    ) -> Iterator[tuple[int, list[ObjectId], torch.Tensor]]:
        """Track every object frame by frame; yields (frame_idx, obj_ids, (N, H, W) logits), > 0 is foreground.

        Starts at the earliest prompted frame unless `start_frame` is given and visits at most `max_frames` + 1
        frames (all by default), backwards with `reverse`. Outputs are streamed, not accumulated; `masks(frame_idx)`
        gives a visited frame's masks again later (unless the session prunes memories).
        """
        self._commit_prompts()
        if start_frame is None:
            start_frame = min(t for bank in self._banks.values() for t in bank.conditioning)
        self._check_frame(start_frame)
        max_frames = self.num_frames if max_frames is None else max_frames
        if reverse:
            order = range(start_frame, max(start_frame - max_frames, 0) - 1, -1) if start_frame > 0 else range(0)
        else:
            order = range(start_frame, min(start_frame + max_frames, self.num_frames - 1) + 1)
        order = list(order)
        for position, frame_idx in enumerate(order):
            masks = self._track_frame(frame_idx, reverse, upcoming=order[position + 1 :])
            yield frame_idx, self.obj_ids, self._to_video_resolution(masks)

    def _track_frame(self, frame_idx: int, reverse: bool, upcoming: Sequence[int]) -> torch.Tensor:
        """Low-resolution logits (N, 1, S/4, S/4) of every object on a frame, tracking those not prompted there."""
        to_track = [obj_id for obj_id, bank in self._banks.items() if frame_idx not in bank.conditioning]
        if to_track:
            self._track_objects(frame_idx, to_track, reverse, upcoming)
        for bank in self._banks.values():
            bank.visited[frame_idx] = reverse
            if self._prune_memories:
                bank.forget_behind(frame_idx, reverse)
        self._drop_spatial_behind(frame_idx, reverse)
        shown = [bank.conditioning.get(frame_idx) or bank.tracked[frame_idx] for bank in self._banks.values()]
        return torch.cat([memory.low_res_masks for memory in shown])

    def _track_objects(self, frame_idx: int, obj_ids: list[ObjectId], reverse: bool, upcoming: Sequence[int]) -> None:
        """One tracking step for `obj_ids` on a frame, batched; objects whose memories line up share attention."""
        groups: dict[tuple, list[MemorySelection]] = {}
        owners: dict[tuple, list[ObjectId]] = {}
        for obj_id in obj_ids:
            selection = self._banks[obj_id].select(frame_idx, reverse)
            groups.setdefault(selection.layout, []).append(selection)
            owners.setdefault(selection.layout, []).append(obj_id)
        with self._run_model():
            features = self._features.features(frame_idx, upcoming)
            embedding = torch.cat(
                [self._model.with_memory(features, self._memory_inputs(group)) for group in groups.values()]
            )
            prediction = self._model.decode(embedding, features.high_res, multimask=True)
        ordered = [obj_id for members in owners.values() for obj_id in members]
        memories = self._frame_memories(frame_idx, prediction, from_clicks=False)
        self._encode_spatial(memories)
        for obj_id, memory in zip(ordered, memories):
            self._banks[obj_id].tracked[frame_idx] = memory

    def _commit_prompts(self) -> None:
        """Encode the memories of prompted frames and make them part of each object's memory."""
        if not self._banks:
            raise RuntimeError("no object has a prompt yet: add points, a box or a mask before propagating")
        for conditioning in (True, False):
            pending = [memory for bank in self._banks.values() for memory in bank.pending[conditioning].values()]
            self._encode_spatial(pending, droppable=not conditioning)
        for obj_id, bank in self._banks.items():
            bank.commit_pending()
            if not bank.conditioning:
                raise RuntimeError(
                    f"object {obj_id!r} has only corrections, no prompt on an untracked frame: "
                    "add points, a box or a mask on a frame it has not been tracked on"
                )

    def _memory_inputs(self, selections: list[MemorySelection]) -> MemoryInputs:
        """Batch the memories of objects whose selections share a layout (re-encoding dropped spatial memories)."""
        self._encode_spatial(
            [memory for selection in selections for _, memory in selection.spatial if memory.spatial is None]
        )
        spatial = [
            (slot, torch.cat([selection.spatial[i][1].spatial for selection in selections]))
            for i, (slot, _) in enumerate(selections[0].spatial)
        ]
        pointers = [
            (distance, torch.cat([selection.pointers[i][1].object_pointer for selection in selections]))
            for i, (distance, _) in enumerate(selections[0].pointers)
        ]
        return MemoryInputs(spatial, pointers, selections[0].max_pointer_distance)

    def _frame_memories(self, frame_idx: int, prediction: Prediction, from_clicks: bool) -> list[FrameMemory]:
        """One FrameMemory per object of a prediction, with holes filled in the logits it shows.

        A tracked prediction's memory encodes its logits before hole filling (prompt results: after), as Meta's.
        """
        predicted = prediction.low_res_masks
        shown = fill_holes(predicted, self._fill_hole_area)
        memories = []
        for i in range(shown.shape[0]):
            encoded = None
            if not from_clicks and shown is not predicted and not torch.equal(shown[i], predicted[i]):
                encoded = predicted[i : i + 1]
            memories.append(
                FrameMemory(
                    frame_idx,
                    shown[i : i + 1],
                    prediction.object_pointers[i : i + 1],
                    prediction.object_scores[i : i + 1],
                    from_clicks,
                    encoded,
                )
            )
        return memories

    def _encode_spatial(self, memories: Sequence[FrameMemory], droppable: bool = True) -> None:
        """Encode the spatial memories of `memories`, batched per frame and kind, stored in bfloat16 as Meta's
        predictor stores them (each object its own tensor, so one object's memory never keeps another's alive).

        Droppable ones (all but conditioning frames') are freed once behind the attention window.
        """
        batches: dict[tuple[int, bool], list[FrameMemory]] = {}
        for memory in memories:
            batches.setdefault((memory.frame_idx, memory.from_clicks), []).append(memory)
        for (frame_idx, from_clicks), batch in batches.items():
            with self._run_model():
                high_res = self._model.upsample_masks(torch.cat([memory.memory_logits for memory in batch]))
                scores = torch.cat([memory.object_score for memory in batch])
                spatial = self._model.encode_memory(self._features.features(frame_idx), high_res, scores, from_clicks)
            for memory, features in zip(batch, spatial):
                memory.spatial = features[None].to(torch.bfloat16)
        if droppable:
            self._encoded_tracked.update(memories)

    def _drop_spatial_behind(self, frame_idx: int, reverse: bool) -> None:
        """Free the spatial memories of tracked frames that the next frames in the direction of travel cannot
        attend to; a correction or a propagation in the other direction re-encodes them from their masks."""
        step = -1 if reverse else 1
        for memory in list(self._encoded_tracked):
            if (frame_idx - memory.frame_idx) * step >= NUM_MASK_MEMORIES - 1:
                memory.spatial = None
                self._encoded_tracked.discard(memory)

    # ---------------------------------------------------------------- outputs
    def masks(self, frame_idx: int) -> FrameMasks:
        """The latest masks of every object on a frame (NO_OBJECT_SCORE where an object has none)."""
        return self._frame_masks(frame_idx, conditioning=None)

    def object_scores(self, frame_idx: int) -> torch.Tensor:
        """Per-object presence logits (N,) on a frame (> 0: visible), NO_OBJECT_SCORE where unknown."""
        scores = [bank.latest(frame_idx) for bank in self._banks.values()]
        return torch.tensor([NO_OBJECT_SCORE if memory is None else float(memory.object_score) for memory in scores])

    def _frame_masks(self, frame_idx: int, conditioning: bool | None) -> FrameMasks:
        """Every object's newest logits on a frame at video resolution (see `MemoryBank.latest`)."""
        self._check_frame(frame_idx)
        side = self._model.image_size // 4
        masks = []
        for bank in self._banks.values():
            memory = bank.latest(frame_idx, conditioning)
            if memory is None:
                masks.append(torch.full((1, 1, side, side), NO_OBJECT_SCORE, device=self._model.device))
            else:
                masks.append(memory.low_res_masks)
        if not masks:
            return [], torch.zeros(0, self.video_height, self.video_width)
        return self.obj_ids, self._to_video_resolution(torch.cat(masks))

    def _to_video_resolution(self, low_res_masks: torch.Tensor) -> torch.Tensor:
        size = (self.video_height, self.video_width)
        return F.interpolate(low_res_masks.float(), size=size, mode="bilinear", align_corners=False)[:, 0]

    # ---------------------------------------------------------------- objects
    def remove_object(self, obj_id: ObjectId) -> list[ObjectId]:
        """Forget an object and everything about it; returns the remaining object ids."""
        self._banks.pop(obj_id, None)
        return self.obj_ids

    def encode_frame(self, frame_idx: int) -> None:
        """Encode a frame's image now (the frame a viewer shows), so a first prompt there runs only the decoder."""
        self._check_frame(frame_idx)
        self._features.features(frame_idx)

    def reset(self) -> None:
        """Forget every object, prompt and memory (cached image features stay)."""
        self._banks.clear()

    def close(self) -> None:
        """Release background decoding and cached features (the frames stay open: their opener closes them)."""
        self._features.close()

    def _bank(self, obj_id: ObjectId) -> MemoryBank:
        if obj_id not in self._banks:
            self._banks[obj_id] = MemoryBank(self.num_frames)
        return self._banks[obj_id]

    def _check_frame(self, frame_idx: int) -> None:
        if not 0 <= frame_idx < self.num_frames:
            raise IndexError(f"frame index {frame_idx} is outside the video's {self.num_frames} frames")
