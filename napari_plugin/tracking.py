"""A SAM 2 video session bound to a Labels array: prompts in, label images out.

Object ``k`` of the session is label value ``k`` of the Labels array. Painting a frame's masks replaces only the
pixels of the objects being painted: other labels on that frame (other objects, hand-painted labels) stay.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from enum import Enum

import numpy as np

from sam2_plugins.division import Division, Divisions, daughter_prompts, divide
from sam2_plugins.model import NO_OBJECT_SCORE, VideoSession
from sam2_plugins.prompts import ObjectPrompt, apply_prompt

from .prompts import FramePrompts, PromptKey

FrameLabels = tuple[int, np.ndarray]
"""(frame index, that frame's whole ``(H, W)`` label image with the propagated masks painted in)."""
Pixels = dict[int, np.ndarray]
"""Flat pixel indices of one object's label on some frames, by frame (what an undo paints back)."""


class Direction(Enum):
    """Which way propagation runs from the current frame."""

    FORWARD = "forward"
    BACKWARD = "backward"
    BOTH = "both"


def propagation_runs(current: int, direction: Direction, first: int, last: int) -> list[tuple[int, bool, int]]:
    """``(start_frame, reverse, max_frames)`` runs covering ``first..last`` from ``current`` in ``direction``.

    A run visits ``max_frames + 1`` frames, the start frame included (the predictor's convention); a backward run
    from the first frame of the range visits nothing new, so none is planned.
    """
    if not first <= current <= last:
        raise ValueError(f"the current frame {current} is outside the frame range {first}..{last}; widen the range")
    runs = []
    if direction in (Direction.FORWARD, Direction.BOTH):
        runs.append((current, False, last - current))
    if direction in (Direction.BACKWARD, Direction.BOTH) and current > first:
        runs.append((current, True, current - first))
    if not runs:
        raise ValueError(
            f"frame {current} is the first frame of the range {first}..{last}: nothing lies behind it; "
            "propagate forward or both ways"
        )
    return runs


def frames_visited(runs: Iterable[tuple[int, bool, int]]) -> int:
    """How many frame steps ``runs`` make (a frame visited by two runs counts twice)."""
    return sum(max_frames + 1 for _, _, max_frames in runs)


def paint_masks(frame_labels: np.ndarray, obj_ids: Sequence[int], logits: np.ndarray) -> None:
    """Write objects' masks into one ``(H, W)`` label image in place.

    Pixels of ``obj_ids`` are cleared first; a foreground pixel takes the id of the object with the highest logit
    there, unless another label already holds it.
    """
    frame_labels[np.isin(frame_labels, obj_ids)] = 0
    if len(obj_ids) == 0:
        return
    foreground = (logits > 0).any(axis=0) & (frame_labels == 0)
    winner = np.argmax(logits, axis=0)
    frame_labels[foreground] = np.asarray(obj_ids, dtype=frame_labels.dtype)[winner[foreground]]


def _as_numpy(masks) -> np.ndarray:
    """Logits from the predictor (a torch tensor on any device) as a float32 numpy array."""
    if hasattr(masks, "detach"):
        masks = masks.detach().float().cpu().numpy()
    return np.asarray(masks, dtype=np.float32)


class TrackingSession:
    """Keeps a predictor session's prompts in step with the prompt layers and paints results into ``labels``.

    ``labels`` is a ``(T, H, W)`` integer array (a view along the sequence axis of the Labels layer's data). Mask
    prompts (painted labels, see :mod:`.painted_prompts`) are kept in ``masks``; on a frame, an object's latest
    prompt wins: clicks or a box there replace its mask prompt. ``divisions`` say which objects each frame shows: a
    mother up to the frame before it divided, its daughters from that frame on.
    """

    def __init__(self, session: VideoSession, labels: np.ndarray):
        self.session = session
        self.labels = labels
        self.prompts: dict[PromptKey, FramePrompts] = {}
        self.masks: dict[PromptKey, np.ndarray] = {}
        self.divisions = Divisions()
        self._undo: list[tuple[Pixels, dict[int, Pixels], tuple[int, ...]]] = []

    def add_masks(self, frame_idx: int, masks: dict[int, np.ndarray]) -> set[int]:
        """Prompt each object ``obj_id`` of ``masks`` with its ``(H, W)`` boolean mask on ``frame_idx``; returns the
        frames repainted."""
        for obj_id, mask in sorted(masks.items()):
            self._apply_mask((frame_idx, obj_id), mask)
        return {frame_idx} if masks else set()

    def sync_prompts(self, prompts: dict[PromptKey, FramePrompts]) -> set[int]:
        """Send the prompts that changed since the last call to the predictor; return the frames repainted.

        ``self.prompts`` follows what the predictor has received, so a failed call is retried next time.
        """
        changed = {key for key in self.prompts.keys() | prompts.keys() if self.prompts.get(key) != prompts.get(key)}
        repainted = set()
        for obj_id in sorted({obj_id for frame_idx, obj_id in changed if (frame_idx, obj_id) not in prompts}):
            repainted |= self._reprompt_object(obj_id, prompts)
        for key in sorted(changed):
            if key in prompts and self.prompts.get(key) != prompts[key]:
                self._apply(key, prompts[key])
                repainted.add(key[0])
        return repainted

    def propagate_runs(
        self, runs: Iterable[tuple[int, bool, int]], obj_ids: Sequence[int] | None = None
    ) -> Iterator[FrameLabels]:
        """Each visited frame's labels, painted on a copy, for consecutive ``(start_frame, reverse, max_frames)`` runs.

        With ``obj_ids`` only those objects are tracked and painted: the other objects' masks, memories and labels
        stay as they are. Runs in a worker thread and leaves ``self.labels`` alone: the caller assigns each yielded
        frame. A frame visited twice (the start frame of both directions) may be copied before its first result is
        assigned; painting replaces every pixel of the painted objects, so the second result is the same either way.
        """
        for start_frame, reverse, max_frames in runs:
            for frame_idx, tracked_ids, masks in self.session.propagate(
                start_frame=start_frame, reverse=reverse, max_frames=max_frames, obj_ids=obj_ids
            ):
                frame_labels = np.array(self.labels[frame_idx])
                self._paint(frame_labels, frame_idx, tracked_ids, masks)
                yield frame_idx, frame_labels

    def divide(self, frame_idx: int, mother: int, daughters: Sequence[int], prompted: bool = False) -> set[int]:
        """Divide ``mother`` on ``frame_idx`` into ``daughters`` (`sam2_plugins.division.divide`): objects
        ``prompted`` with clicks or boxes on that frame, or new objects made of the two largest parts of the
        mother's label there. The mother's label leaves that frame and the later ones, the daughters' the earlier
        ones; returns the frames repainted."""
        prompts = []
        if prompted:
            for daughter in daughters:
                if (frame_idx, daughter) not in self.prompts and (frame_idx, daughter) not in self.masks:
                    raise ValueError(
                        f"daughter {daughter} has no prompt on frame {frame_idx}: click it or draw its box there"
                    )
        else:
            division = Division(frame_idx, mother, tuple(daughters))
            prompts = daughter_prompts(self.labels[frame_idx] == mother, division)
        division = divide(self.session, self.divisions, frame_idx, mother, daughters, prompts=prompts)
        masks = {prompt.obj_id: prompt.mask for prompt in prompts}
        repainted = self._recorded(division, masks)
        obj_ids, logits = self.session.masks(frame_idx)
        chosen = [obj_ids.index(daughter) for daughter in division.daughters]
        self._paint(self.labels[frame_idx], frame_idx, list(division.daughters), _as_numpy(logits)[chosen])
        return repainted | {frame_idx}

    def link(self, frame_idx: int, mother: int, daughters: Sequence[int]) -> set[int]:
        """Record that ``daughters``, already tracked, come from ``mother`` dividing on ``frame_idx`` (a proposal
        accepted); returns the frames repainted."""
        division = Division(frame_idx, mother, tuple(daughters))
        self.divisions.add(division)
        return self._recorded(division, {})

    def _recorded(self, division: Division, masks: dict[int, np.ndarray]) -> set[int]:
        """Erase what ``division`` no longer shows (the mother from its frame on, the daughters before it), keep
        that and the daughters it created (those of ``masks``, their mask prompts) for its undo; returns the frames
        repainted."""
        mother_pixels = self._erase(division.mother, range(division.frame, len(self.labels)))
        daughter_pixels = {d: self._erase(d, range(division.frame)) for d in division.daughters}
        self._undo.append((mother_pixels, daughter_pixels, tuple(masks)))
        self.masks.update({(division.frame, daughter): mask for daughter, mask in masks.items()})
        return set(mother_pixels) | {t for pixels in daughter_pixels.values() for t in pixels}

    def undo_division(self) -> tuple[Division, set[int]]:
        """Take back the last division: daughters it created leave the session and the labels, the others lose
        their mother, and the labels it erased come back; returns it and the frames repainted."""
        division = self.divisions.pop()
        mother_pixels, daughter_pixels, created = self._undo.pop()
        repainted = set()
        for daughter in created:
            self.session.remove_object(daughter)
            for key in [key for key in (*self.masks, *self.prompts) if key[1] == daughter]:
                self.masks.pop(key, None)
                self.prompts.pop(key, None)
            repainted |= self._erase(daughter, range(len(self.labels))).keys()
        for obj_id, pixels in [(division.mother, mother_pixels), *daughter_pixels.items()]:
            for frame_idx, indices in pixels.items():
                flat = self.labels[frame_idx].reshape(-1)
                flat[indices[flat[indices] == 0]] = obj_id
                repainted.add(frame_idx)
        return division, repainted

    def _erase(self, obj_id: int, frames: Iterable[int]) -> Pixels:
        """Clear ``obj_id``'s label from ``frames``; returns the pixels it held there."""
        erased = {}
        for frame_idx in frames:
            flat = self.labels[frame_idx].reshape(-1)
            indices = np.flatnonzero(flat == obj_id)
            if len(indices):
                flat[indices] = 0
                erased[frame_idx] = indices
        return erased

    def _paint(self, frame_labels: np.ndarray, frame_idx: int, obj_ids: Sequence[int], logits) -> None:
        """`paint_masks` of the objects the frame shows (`Divisions.shown`); the others' labels are cleared there."""
        logits = _as_numpy(logits)
        hidden = [k for k, obj_id in enumerate(obj_ids) if not self.divisions.shown(obj_id, frame_idx)]
        if hidden:
            logits = logits.copy()
            logits[hidden] = NO_OBJECT_SCORE
        paint_masks(frame_labels, obj_ids, logits)

    def _apply(self, key: PromptKey, prompts: FramePrompts) -> None:
        obj_ids, masks = apply_prompt(self.session, prompts.object_prompt(key))
        self.prompts[key] = prompts
        self.masks.pop(key, None)
        self._paint(self.labels[key[0]], key[0], obj_ids, masks)

    def _apply_mask(self, key: PromptKey, mask: np.ndarray) -> None:
        frame_idx, obj_id = key
        obj_ids, masks = apply_prompt(self.session, ObjectPrompt(frame_idx, obj_id, mask=mask))
        self.masks[key] = mask
        self._paint(self.labels[frame_idx], frame_idx, obj_ids, masks)

    def _reprompt_object(self, obj_id: int, prompts: dict[PromptKey, FramePrompts]) -> set[int]:
        """Some of an object's prompts were deleted: the predictor has no per-frame removal, so the object is
        removed and its remaining ``prompts`` sent again, then its mask prompts. Its label is erased from the frames
        that lost their prompts (from every frame when none is left). Returns the frames repainted."""
        remaining = sorted(key for key in prompts if key[1] == obj_id)
        masks = {key: self.masks[key] for key in sorted(self.masks) if key[1] == obj_id}
        self.session.remove_object(obj_id)
        before = {key: self.prompts.pop(key) for key in [key for key in self.prompts if key[1] == obj_id]}
        erased = {frame_idx for frame_idx, _ in before} if remaining or masks else set(range(len(self.labels)))
        for frame_idx in erased:
            frame_labels = self.labels[frame_idx]
            frame_labels[frame_labels == obj_id] = 0
        for key in remaining:
            if key in masks and before.get(key) == prompts[key]:
                self.prompts[key] = prompts[key]  # the mask painted after these clicks stays the prompt here
            else:
                self._apply(key, prompts[key])  # new clicks replace a mask prompt
        for key, mask in masks.items():
            if key in self.masks:
                self._apply_mask(key, mask)
        return erased | {frame_idx for frame_idx, _ in [*remaining, *masks]}
