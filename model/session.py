"""A video session: prompts on frames, propagation through the video, corrections, many objects.

Semantics follow Meta's `SAM2VideoPredictor` (sam2 1.1.0) with per-object inference; all objects of a frame are
batched through memory attention, the mask decoder and the memory encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import AbstractContextManager

import numpy as np
import torch
import torch.nn.functional as F

from .frame_features import FeatureStore, FrameFeatureCache
from .frames import FrameSequence
from .memory_bank import Direction, FrameMemory, MemoryBank, MemorySelection, PointPrompt, PromptRole
from .postprocess import fill_holes
from .sam2_model import NO_OBJECT_SCORE, MemoryInputs, Prediction, Sam2Model
from .spatial_memory import SpatialMemoryEncoder

ObjectId = Hashable
FrameMasks = tuple[list[ObjectId], torch.Tensor]  # object ids and their (N, H, W) logits at video resolution
PREVIOUS_LOGITS_LIMIT = 32.0  # previous logits fed back with new clicks are clamped to +-this
BOX_CORNER_LABELS = (2, 3)
CLICK_LABELS = (0, 1)  # negative, positive


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
        feature_store: FeatureStore | None = None,
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
        self._features = FrameFeatureCache(frames, model, run_model, feature_cache_bytes, store=feature_store)
        self._spatial = SpatialMemoryEncoder(model, self._features, run_model)
        self._banks: dict[ObjectId, MemoryBank] = {}
        self._running_propagations = 0

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
        coords, point_labels = self._clicks(points, labels)
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
        _check_finite("box", corners)
        x0, y0, x1, y1 = corners.tolist()
        if x1 < x0 or y1 < y0:
            raise ValueError(
                f"box {[x0, y0, x1, y1]} has its corners swapped (x1 < x0 or y1 < y0): "
                "give the top-left corner (x0, y0) first, then the bottom-right one (x1, y1)"
            )
        coords, point_labels = self._model_points(corners.reshape(2, 2), np.asarray(BOX_CORNER_LABELS))
        if points is not None and len(points):  # clicks with the box are optional
            extra_coords, extra_labels = self._clicks(points, labels)
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
        _check_binary_mask(mask)
        bank = self._bank(obj_id)
        size = self._model.image_size
        mask_input = mask.bool()[None, None].float().to(self._model.device)
        if mask_input.shape[-2:] != (size, size):
            resized = F.interpolate(mask_input, (size, size), mode="bilinear", align_corners=False, antialias=True)
            mask_input = (resized >= 0.5).float()
        bank.points.pop(frame_idx, None)
        role = bank.role_of(frame_idx)
        with self._run_model():
            prediction = self._model.mask_as_output(self._features.features(frame_idx), mask_input)
        bank.pending[role][frame_idx] = self._frame_memories(frame_idx, prediction, prompted=True)[0]
        return self._frame_masks(frame_idx, (role,))

    def _clicks(self, points, labels) -> tuple[torch.Tensor, torch.Tensor]:
        """User clicks, checked: pixel points (N, 2) and labels (N,) 0 or 1 as model inputs (see `_model_points`)."""
        coords = np.asarray(points, dtype=np.float32)
        if coords.size == 0:
            raise ValueError("points is empty: give at least one (x, y) click, or use add_box / add_mask")
        if coords.ndim != 2 or coords.shape[1] != 2:
            raise ValueError(f"points must be (x, y) pairs in pixels, got shape {coords.shape}")
        _check_finite("points", coords)
        point_labels = np.asarray(labels).reshape(-1)
        if len(coords) != len(point_labels):
            raise ValueError(f"{len(coords)} points but {len(point_labels)} labels: give one label per point")
        if not np.isin(point_labels, CLICK_LABELS).all():
            raise ValueError(
                f"labels {point_labels.tolist()} hold values other than 0 and 1: "
                "label each point 1 (on the object) or 0 (not on the object)"
            )
        return self._model_points(coords, point_labels)

    def _model_points(self, coords: np.ndarray, point_labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel points (N, 2) and labels (N,) as model-input coordinates (1, N, 2) and int32 labels (1, N)."""
        point_labels = point_labels.astype(np.int32)
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
        role = bank.role_of(frame_idx)
        previous = bank.latest(frame_idx, (role,))
        previous_logits = None
        if previous is not None:
            previous_logits = previous.low_res_masks.clamp(-PREVIOUS_LOGITS_LIMIT, PREVIOUS_LOGITS_LIMIT)
        with self._run_model():
            features = self._features.features(frame_idx)
            if role is PromptRole.CONDITIONING:
                embedding = self._model.without_memory(features, batch=1)
            else:
                selection = bank.select(frame_idx, bank.reached[frame_idx])
                embedding = self._model.with_memory(features, self._memory_inputs([selection]))
            prediction = self._model.decode(
                embedding,
                features.high_res,
                prompt.coords,
                prompt.labels,
                mask_logits=previous_logits,
                multimask=prompt.labels.shape[1] <= 1,  # the first click is ambiguous; a box is not
            )
        bank.pending[role][frame_idx] = self._frame_memories(frame_idx, prediction, prompted=True)[0]
        return self._frame_masks(frame_idx, (role,))

    # ---------------------------------------------------------------- propagation
    def propagate(
        self,
        start_frame: int | None = None,
        reverse: bool = False,
        max_frames: int | None = None,
        obj_ids: Sequence[ObjectId] | None = None,
    ) -> Iterator[tuple[int, list[ObjectId], torch.Tensor]]:
        """Track the objects frame by frame; yields (frame_idx, obj_ids, (N, H, W) logits), > 0 is foreground.

        Starts at the earliest prompted frame unless `start_frame` is given and visits at most `max_frames` + 1
        frames (all by default), backwards with `reverse`. With `obj_ids` only those objects (in the session's
        order) are tracked, committed and yielded: the other objects' masks, memories and prompts stay as they were.
        Outputs are streamed, not accumulated; `masks(frame_idx)` gives a visited frame's masks again later (unless
        the session prunes memories). Objects can be prompted meanwhile; a new object only once the propagation has
        ended.
        """
        self._running_propagations += 1
        try:
            yield from self._propagation(start_frame, reverse, max_frames, self._checked_selection(obj_ids))
        finally:
            self._running_propagations -= 1

    def _checked_selection(self, obj_ids: Sequence[ObjectId] | None) -> set[ObjectId] | None:
        """The objects a propagation of `obj_ids` tracks (None: every object), each one of the session's."""
        if obj_ids is None:
            return None
        unknown = [obj_id for obj_id in obj_ids if obj_id not in self._banks]
        if unknown or not obj_ids:
            raise ValueError(
                f"obj_ids {list(obj_ids)!r} must name objects of this session; "
                f"unknown: {unknown!r}, known: {self.obj_ids!r} (pass None to propagate every object)"
            )
        return set(obj_ids)

    def _selected_banks(self, selected: set[ObjectId] | None) -> dict[ObjectId, MemoryBank]:
        """The banks of the `selected` objects (None: every object) still in the session, in the session's order."""
        return {obj_id: bank for obj_id, bank in self._banks.items() if selected is None or obj_id in selected}

    def _propagation(
        self,
        start_frame: int | None,
        reverse: bool,
        max_frames: int | None,
        selected: set[ObjectId] | None,
    ) -> Iterator[tuple[int, list[ObjectId], torch.Tensor]]:
        self._commit_prompts(self._selected_banks(selected))
        if start_frame is None:
            start_frame = min(t for bank in self._selected_banks(selected).values() for t in bank.conditioning)
        self._check_frame(start_frame)
        max_frames = self.num_frames if max_frames is None else max_frames
        if reverse:
            order = range(start_frame, max(start_frame - max_frames, 0) - 1, -1) if start_frame > 0 else range(0)
        else:
            order = range(start_frame, min(start_frame + max_frames, self.num_frames - 1) + 1)
        order = list(order)
        direction = Direction.of(reverse)
        for position, frame_idx in enumerate(order):
            tracked = self._selected_banks(selected)  # objects may be removed meanwhile
            masks = self._track_frame(frame_idx, tracked, direction, upcoming=order[position + 1 :])
            yield frame_idx, list(tracked), self._to_video_resolution(masks)

    def _track_frame(
        self, frame_idx: int, banks: dict[ObjectId, MemoryBank], direction: Direction, upcoming: Sequence[int]
    ) -> torch.Tensor:
        """Low-resolution logits (N, 1, S/4, S/4) of the `banks`' objects on a frame, tracking those not prompted
        there."""
        to_track = [obj_id for obj_id, bank in banks.items() if frame_idx not in bank.conditioning]
        if to_track:
            self._track_objects(frame_idx, to_track, direction, upcoming)
        for bank in banks.values():
            bank.reached[frame_idx] = direction
            if self._prune_memories:
                bank.forget_behind(frame_idx, direction)
        self._spatial.drop_behind(frame_idx, direction)
        shown = [bank.conditioning.get(frame_idx) or bank.tracked[frame_idx] for bank in banks.values()]
        if not shown:  # every (selected) object was removed during the propagation
            side = self._model.image_size // 4
            return torch.zeros(0, 1, side, side, device=self._model.device)
        return torch.cat([memory.low_res_masks for memory in shown])

    def _track_objects(
        self, frame_idx: int, obj_ids: list[ObjectId], direction: Direction, upcoming: Sequence[int]
    ) -> None:
        """One tracking step for `obj_ids` on a frame, batched; objects whose memories line up share attention."""
        groups: dict[tuple, list[MemorySelection]] = {}
        owners: dict[tuple, list[ObjectId]] = {}
        for obj_id in obj_ids:
            selection = self._banks[obj_id].select(frame_idx, direction)
            groups.setdefault(selection.layout, []).append(selection)
            owners.setdefault(selection.layout, []).append(obj_id)
        with self._run_model():
            features = self._features.features(frame_idx, upcoming)
            embedding = torch.cat(
                [self._model.with_memory(features, self._memory_inputs(group)) for group in groups.values()]
            )
            prediction = self._model.decode(embedding, features.high_res, multimask=True)
        ordered = [obj_id for members in owners.values() for obj_id in members]
        memories = self._frame_memories(frame_idx, prediction, prompted=False)
        self._spatial.encode(memories)
        for obj_id, memory in zip(ordered, memories):
            self._banks[obj_id].tracked[frame_idx] = memory

    def _commit_prompts(self, banks: dict[ObjectId, MemoryBank]) -> None:
        """Encode the memories of the `banks`' prompted frames and make them part of each object's memory."""
        if not self._banks:
            raise RuntimeError("no object has a prompt yet: add points, a box or a mask before propagating")
        for role in PromptRole:
            pending = [memory for bank in banks.values() for memory in bank.pending[role].values()]
            self._spatial.encode(pending, droppable=role is PromptRole.CORRECTION)
        for obj_id, bank in banks.items():
            bank.commit_pending()
            if not bank.conditioning:
                raise RuntimeError(
                    f"object {obj_id!r} has only corrections, no prompt on an untracked frame: "
                    "add points, a box or a mask on a frame it has not been tracked on"
                )

    def _memory_inputs(self, selections: list[MemorySelection]) -> MemoryInputs:
        """Batch the memories of objects whose selections share a layout (re-encoding dropped spatial memories)."""
        self._spatial.ensure_encoded(memory for selection in selections for _, memory in selection.spatial)
        spatial = [
            (slot, torch.cat([selection.spatial[i][1].spatial for selection in selections]))
            for i, (slot, _) in enumerate(selections[0].spatial)
        ]
        pointers = [
            (distance, torch.cat([selection.pointers[i][1].object_pointer for selection in selections]))
            for i, (distance, _) in enumerate(selections[0].pointers)
        ]
        return MemoryInputs(spatial, pointers, selections[0].max_pointer_distance)

    def _frame_memories(self, frame_idx: int, prediction: Prediction, prompted: bool) -> list[FrameMemory]:
        """One FrameMemory per object of a prediction, with holes filled in the logits it shows.

        A tracked prediction's memory encodes its logits before hole filling (prompt results: after), as Meta's.
        """
        predicted = prediction.low_res_masks
        shown = fill_holes(predicted, self._fill_hole_area)
        memories = []
        for i in range(shown.shape[0]):
            encoded = None
            if not prompted and shown is not predicted and not torch.equal(shown[i], predicted[i]):
                encoded = predicted[i : i + 1]
            memories.append(
                FrameMemory(
                    frame_idx,
                    shown[i : i + 1],
                    prediction.object_pointers[i : i + 1],
                    prediction.object_scores[i : i + 1],
                    prompted,
                    encoded,
                )
            )
        return memories

    # ---------------------------------------------------------------- outputs
    def masks(self, frame_idx: int) -> FrameMasks:
        """The latest masks of every object on a frame (NO_OBJECT_SCORE where an object has none)."""
        return self._frame_masks(frame_idx, tuple(PromptRole))

    def object_scores(self, frame_idx: int) -> torch.Tensor:
        """Per-object presence logits (N,) on a frame (> 0: visible), NO_OBJECT_SCORE where unknown."""
        scores = [bank.latest(frame_idx) for bank in self._banks.values()]
        return torch.tensor([NO_OBJECT_SCORE if memory is None else float(memory.object_score) for memory in scores])

    def memory_bytes(self) -> int:
        """Bytes of what the session keeps of its objects (masks, pointers, scores, spatial memories), cached image
        features not included."""
        return sum(memory.nbytes for bank in self._banks.values() for memory in bank.memories)

    def _frame_masks(self, frame_idx: int, pending_roles: tuple[PromptRole, ...]) -> FrameMasks:
        """Every object's newest logits on a frame at video resolution (see `MemoryBank.latest`)."""
        self._check_frame(frame_idx)
        side = self._model.image_size // 4
        masks = []
        for bank in self._banks.values():
            memory = bank.latest(frame_idx, pending_roles)
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
            if self._running_propagations:
                raise RuntimeError(
                    f"object {obj_id!r} is new while propagate() is running: add it after the propagation ends "
                    "(run it to the end or break out of its loop), then propagate again"
                )
            self._banks[obj_id] = MemoryBank(self.num_frames)
        return self._banks[obj_id]

    def _check_frame(self, frame_idx: int) -> None:
        if not 0 <= frame_idx < self.num_frames:
            raise IndexError(f"frame index {frame_idx} is outside the video's {self.num_frames} frames")


def _check_finite(argument: str, values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        raise ValueError(f"{argument} {values.tolist()} holds NaN or infinite coordinates: give pixel coordinates")


def _check_binary_mask(mask: torch.Tensor) -> None:
    """A mask prompt must be boolean, or integers 0 and 1 only: probabilities or labels are not silently cut."""
    if mask.dtype == torch.bool:
        return
    if mask.is_floating_point() or mask.is_complex():
        raise ValueError(
            f"mask is {mask.dtype}, not boolean: pass a boolean mask, e.g. probabilities > 0.5 or labels == label"
        )
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(
            "mask holds values other than 0 and 1 (a label image?): pass one boolean mask, e.g. labels == label"
        )
