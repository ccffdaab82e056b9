"""Cell divisions in a SAM 2 video session: a mother object ends, two daughter objects go on from the division frame.

A `Division` says that ``mother`` is shown up to ``frame - 1`` and its two ``daughters`` from ``frame`` on; the
session keeps tracking every object, and whoever paints its masks asks `Divisions.shown` which objects a frame
shows. `divide` prompts the daughters (their clicks, boxes or masks, or a split of the mother's mask into its two
largest parts); `propose_divisions` finds the divisions a tracking result suggests, for a person to review.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .model import VideoSession
from .prompts import ObjectPrompt, apply_prompt

DAUGHTERS = 2
MIN_PART_FRACTION = 0.1
"""A part of a split mask counts when it holds at least this fraction of the mask's pixels (specks don't)."""


@dataclass(frozen=True)
class Division:
    """``mother`` is shown up to ``frame - 1``; ``daughters`` start on ``frame`` with ``mother`` as parent."""

    frame: int
    mother: int
    daughters: tuple[int, int]


class Divisions:
    """The divisions of one session, in the order they were made (undo takes back the last)."""

    def __init__(self, divisions: Iterable[Division] = ()):
        self._divisions: list[Division] = []
        for division in divisions:
            self.add(division)

    def __iter__(self):
        return iter(self._divisions)

    def __len__(self) -> int:
        return len(self._divisions)

    def add(self, division: Division) -> None:
        """Record ``division``; an error names the object that can't take part in it."""
        if division.frame < 1:
            raise ValueError(
                f"object {division.mother} can't divide on frame {division.frame}: a mother needs a frame before "
                "the division to live on"
            )
        if len(set(division.daughters)) != DAUGHTERS or division.mother in division.daughters:
            raise ValueError(
                f"object {division.mother} divides into two other objects, got daughters {list(division.daughters)}"
            )
        for known in self._divisions:
            if known.mother == division.mother:
                raise ValueError(
                    f"object {division.mother} already divided on frame {known.frame} into "
                    f"{known.daughters[0]} and {known.daughters[1]}: undo that division first"
                )
            for daughter in division.daughters:
                if daughter in known.daughters:
                    raise ValueError(
                        f"object {daughter} is already a daughter of object {known.mother}: pick another label"
                    )
        born = self.first_frame(division.mother)
        if born is not None and born >= division.frame:
            raise ValueError(
                f"object {division.mother} starts on frame {born} (daughter of {self.parent(division.mother)}): it "
                f"can only divide after that frame, not on frame {division.frame}"
            )
        self._divisions.append(division)

    def pop(self) -> Division:
        """Take back the last division."""
        if not self._divisions:
            raise IndexError("no division to undo")
        return self._divisions.pop()

    def parent(self, obj_id: int) -> int:
        """The mother of ``obj_id``; 0 (CTC's 'no parent') when it has none."""
        return next((d.mother for d in self._divisions if obj_id in d.daughters), 0)

    def parents(self) -> dict[int, int]:
        """``{daughter: mother}`` of every division."""
        return {daughter: d.mother for d in self._divisions for daughter in d.daughters}

    def first_frame(self, obj_id: int) -> int | None:
        """The frame a daughter starts on; None for an object that is no daughter."""
        return next((d.frame for d in self._divisions if obj_id in d.daughters), None)

    def last_frame(self, obj_id: int) -> int | None:
        """The last frame a mother is shown on; None for an object that did not divide."""
        return next((d.frame - 1 for d in self._divisions if d.mother == obj_id), None)

    def shown(self, obj_id: int, frame_idx: int) -> bool:
        """Whether ``obj_id`` is shown on ``frame_idx``: not before it was born, not after it divided."""
        first, last = self.first_frame(obj_id), self.last_frame(obj_id)
        return (first is None or frame_idx >= first) and (last is None or frame_idx <= last)


def split_mask(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two largest connected parts (8-connected) of a boolean ``(H, W)`` mask, the larger first."""
    parts, count = ndimage.label(np.asarray(mask, dtype=bool), structure=np.ones((3, 3), dtype=bool))
    if count < DAUGHTERS:
        raise ValueError(
            f"the mask is {'empty' if count == 0 else 'one piece'}: there are no two parts to split it into; "
            "prompt the two daughters instead (a click or a box on each)"
        )
    sizes = np.bincount(parts.ravel())[1:]
    largest = np.argsort(sizes, kind="stable")[::-1][:DAUGHTERS] + 1
    return parts == largest[0], parts == largest[1]


def daughter_prompts(mother_mask: np.ndarray, division: Division) -> list[ObjectPrompt]:
    """The daughters' mask prompts: the two largest parts of the mother's mask on the division frame, the larger
    first."""
    try:
        parts = split_mask(mother_mask)
    except ValueError as error:
        raise ValueError(f"object {division.mother} on frame {division.frame}: {error}") from None
    return [ObjectPrompt(division.frame, d, mask=part) for d, part in zip(division.daughters, parts)]


def significant_parts(mask: np.ndarray, min_fraction: float = MIN_PART_FRACTION) -> int:
    """How many connected parts of ``mask`` hold at least ``min_fraction`` of its pixels."""
    parts, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count < 2:
        return count
    sizes = np.bincount(parts.ravel())[1:]
    return int((sizes >= min_fraction * sizes.sum()).sum())


def divide(
    session: VideoSession,
    divisions: Divisions,
    frame: int,
    mother: int,
    daughters: Sequence[int],
    prompts: Sequence[ObjectPrompt] | None = None,
    mother_mask: np.ndarray | None = None,
) -> Division:
    """End ``mother`` on ``frame - 1`` and start ``daughters`` on ``frame``.

    The daughters' ``prompts`` on ``frame`` (clicks, boxes, painted masks) go to ``session``; a daughter without
    one must already be an object of ``session`` (its prompt on ``frame`` sent). With ``prompts`` None the mother's
    mask on ``frame`` (``mother_mask``, else the session's) is split into its two largest parts, the larger going
    to the first daughter, as mask prompts. Propagating afterwards carries the daughters on; the mother is no longer
    shown from ``frame``.
    """
    division = Division(int(frame), int(mother), tuple(int(d) for d in daughters))
    if len(division.daughters) != DAUGHTERS:
        raise ValueError(f"object {mother} divides into 2 daughters, got {len(division.daughters)}")
    if prompts is None:
        if mother_mask is None:
            mother_mask = _session_mask(session, frame, mother)
        prompts = daughter_prompts(mother_mask, division)
    for prompt in prompts:
        if prompt.frame != division.frame or prompt.obj_id not in division.daughters:
            raise ValueError(
                f"a prompt of object {prompt.obj_id} on frame {prompt.frame} is no prompt of a daughter "
                f"({division.daughters[0]} or {division.daughters[1]}) on the division frame {division.frame}"
            )
    prompted = {prompt.obj_id for prompt in prompts}
    unprompted = [d for d in division.daughters if d not in prompted and d not in session.obj_ids]
    if unprompted:
        raise ValueError(
            f"daughter {unprompted[0]} of object {mother} has no prompt: click it or draw its box on frame {frame}, "
            "or divide without daughters' prompts to split the mother's mask"
        )
    divisions.add(division)
    for prompt in prompts:
        apply_prompt(session, prompt)
    return division


def _session_mask(session: VideoSession, frame: int, obj_id: int) -> np.ndarray:
    obj_ids, logits = session.masks(frame)
    if obj_id not in obj_ids:
        raise ValueError(f"object {obj_id} is not in this session: prompt it first")
    return (logits[obj_ids.index(obj_id)] > 0).cpu().numpy()


@dataclass(frozen=True)
class Proposal:
    """A division the tracking result suggests: ``mother`` splits (``daughters`` None: its mask falls into two parts
    from ``frame`` on) or ends where two new objects ``daughters`` appear inside its last mask."""

    frame: int
    mother: int
    daughters: tuple[int, int] | None = None

    def describe(self) -> str:
        if self.daughters is None:
            return f"frame {self.frame}: object {self.mother} splits in two"
        return f"frame {self.frame}: object {self.mother} -> {self.daughters[0]} + {self.daughters[1]}"


def propose_divisions(
    labels: Sequence[np.ndarray], persist: int = 3, divisions: Divisions | None = None
) -> list[Proposal]:
    """Divisions a ``(T, H, W)`` label stack suggests, by frame: an object whose mask is two parts on ``persist``
    frames in a row (from the first of them), and an object lost where two objects that were not there before
    appear within ``persist`` frames inside its last mask. Objects already in ``divisions`` are left out."""
    divisions = divisions or Divisions()
    divided = {d.mother for d in divisions} | set(divisions.parents())
    present = [set(np.unique(frame_labels).tolist()) - {0} for frame_labels in labels]
    proposals = []
    for obj_id in sorted(set().union(*present) - divided) if present else []:
        frames = {t for t, ids in enumerate(present) if obj_id in ids}
        split = {t for t in frames if significant_parts(labels[t] == obj_id) >= DAUGHTERS}
        whole_before = [t for t in sorted(split) if t - 1 in frames - split]
        start = next((t for t in whole_before if all(t + k in split for k in range(persist))), None)
        if start is not None:
            proposals.append(Proposal(start, obj_id))
    first_seen = {}
    for t, ids in enumerate(present):
        for obj_id in ids:
            first_seen.setdefault(obj_id, t)
    for obj_id in sorted(set(first_seen) - divided):
        last = max(t for t, ids in enumerate(present) if obj_id in ids)
        if last + 1 >= len(labels):
            continue
        region = ndimage.binary_dilation(labels[last] == obj_id, iterations=2)
        newcomers = [
            other
            for other, born in sorted(first_seen.items())
            if last < born <= last + persist and other not in divided and region[labels[born] == other].any()
        ]
        if len(newcomers) >= DAUGHTERS:
            pair = tuple(sorted(newcomers[:DAUGHTERS], key=lambda other: first_seen[other]))
            proposals.append(Proposal(first_seen[pair[0]], obj_id, pair))
    return sorted(proposals, key=lambda p: (p.frame, p.mother))
