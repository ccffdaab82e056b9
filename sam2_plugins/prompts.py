"""SAM 2 prompts, said once: an `ObjectPrompt` record, `apply_prompts` that gives them to a video session, and
`propagate_prompted` that tracks each object from its first prompt on.

Every front-end converts its own labels to `ObjectPrompt` (FiftyOne's Detections and Keypoints, napari's clicks,
boxes and painted labels, a VOS dataset's ground-truth masks) and leaves the session calls to this module.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from .prompt_simulation import CLICK_COUNTS, Point, simulate_clicks

if TYPE_CHECKING:
    import torch

    from .model import VideoSession

FrameMasks = tuple[list[Hashable], "torch.Tensor"]
"""A frame's object ids and their ``(N, H, W)`` logits at the video's resolution (> 0 is foreground)."""


@dataclass(frozen=True, eq=False)
class ObjectPrompt:
    """One object's prompt on one frame (0-based ``frame``), in pixel coordinates of that frame.

    Clicks (``points`` as (x, y) with ``labels`` 1 positive / 0 negative), a ``box`` (x0, y0, x1, y1, optionally
    with clicks), or a boolean ``mask`` of the frame's (H, W). With ``simulated_clicks`` > 0 the mask is a ground
    truth that this many clicks are simulated from (the SAM 2 paper's protocol: the interior center, then a
    corrective click on each prediction's largest error) instead of a mask prompt.
    """

    frame: int
    obj_id: Hashable
    points: tuple[Point, ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = None
    simulated_clicks: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", tuple((float(x), float(y)) for x, y in self.points))
        object.__setattr__(self, "labels", tuple(int(label) for label in self.labels))
        if self.box is not None:
            object.__setattr__(self, "box", tuple(float(value) for value in self.box))
        where = f"prompt of object {self.obj_id!r} on frame {self.frame}"
        if not isinstance(self.frame, (int, np.integer)) or self.frame < 0:
            raise ValueError(f"{where}: the frame must be a 0-based frame index, got {self.frame!r}")
        if len(self.points) != len(self.labels):
            raise ValueError(
                f"{where}: {len(self.points)} points but {len(self.labels)} labels; give one label (1 positive, "
                "0 negative) per point"
            )
        if any(label not in (0, 1) for label in self.labels):
            raise ValueError(f"{where}: labels {list(self.labels)} must be 1 (positive) or 0 (negative)")
        if self.box is not None and len(self.box) != 4:
            raise ValueError(f"{where}: a box is 4 numbers x0, y0, x1, y1, got {list(self.box)}")
        if self.mask is not None and (self.points or self.box is not None):
            raise ValueError(f"{where}: give a mask or clicks/a box, not both (SAM 2 takes one kind per frame)")
        if self.simulated_clicks and (self.mask is None or self.simulated_clicks not in CLICK_COUNTS):
            raise ValueError(
                f"{where}: simulated_clicks={self.simulated_clicks} needs a ground-truth mask and one of "
                f"{CLICK_COUNTS} clicks"
            )
        if self.mask is None and self.box is None and not self.points:
            raise ValueError(f"{where} holds nothing: give clicks, a box or a mask")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ObjectPrompt):
            return NotImplemented
        for field in fields(self):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if isinstance(mine, np.ndarray) or isinstance(theirs, np.ndarray):
                if not (isinstance(mine, np.ndarray) and isinstance(theirs, np.ndarray)):
                    return False
                if not np.array_equal(mine, theirs):
                    return False
            elif mine != theirs:
                return False
        return True

    __hash__ = None


def apply_prompt(session: VideoSession, prompt: ObjectPrompt) -> FrameMasks:
    """Give ``prompt`` to ``session`` (replacing the object's earlier prompt on that frame); the frame's masks."""
    frame, obj_id = prompt.frame, prompt.obj_id
    if prompt.simulated_clicks:
        result: list[FrameMasks] = []

        def predict(points: list[Point], labels: list[int]) -> np.ndarray:
            result[:] = [session.add_points(frame, obj_id, points, labels)]
            obj_ids, logits = result[0]
            return (logits[obj_ids.index(obj_id)] > 0).cpu().numpy()

        simulate_clicks(prompt.mask, prompt.simulated_clicks, predict)
        return result[0]
    if prompt.mask is not None:
        return session.add_mask(frame, obj_id, prompt.mask)
    points = np.asarray(prompt.points, dtype=np.float32).reshape(-1, 2)
    labels = np.asarray(prompt.labels, dtype=np.int32)
    if prompt.box is not None:
        return session.add_box(frame, obj_id, prompt.box, points, labels)
    return session.add_points(frame, obj_id, points, labels)


def apply_prompts(session: VideoSession, prompts: Iterable[ObjectPrompt]) -> dict[int, FrameMasks]:
    """Give every prompt to ``session`` in order; ``{frame: its masks after the last prompt there}``."""
    return {prompt.frame: apply_prompt(session, prompt) for prompt in prompts}


def first_prompt_frames(prompts: Iterable[ObjectPrompt]) -> dict[Hashable, int]:
    """``{object id: the first frame it is prompted on}``."""
    firsts: dict[Hashable, int] = {}
    for prompt in prompts:
        firsts[prompt.obj_id] = min(prompt.frame, firsts.get(prompt.obj_id, prompt.frame))
    return firsts


def propagate_prompted(
    session: VideoSession, first_frames: Mapping[Hashable, int], last: int | None = None
) -> Iterator[tuple[int, list[Hashable], torch.Tensor]]:
    """Track each object forward from its first prompted frame (``first_frames``, see `first_prompt_frames`) to
    frame ``last`` (None: the video's end), as the VOS protocol does: an object is neither tracked nor yielded
    before its first frame, so one that appears later gets the masks a propagation of it alone would give (Meta's
    ``vos_inference.py --track_object_appearing_later_in_video``), with all objects batched in one session.

    Yields ``(frame, object ids, (N, H, W) logits)`` per frame from the earliest first frame on; a frame before
    every object's first frame is not yielded.
    """
    unknown = [obj_id for obj_id in first_frames if obj_id not in session.obj_ids]
    if unknown:
        raise ValueError(f"objects {unknown!r} have no prompt in the session (it holds {session.obj_ids!r})")
    end = session.num_frames - 1 if last is None else min(last, session.num_frames - 1)
    starts = sorted({frame for frame in first_frames.values() if frame <= end})
    for position, start in enumerate(starts):
        stop = starts[position + 1] - 1 if position + 1 < len(starts) else end
        tracked = [obj_id for obj_id in session.obj_ids if obj_id in first_frames and first_frames[obj_id] <= start]
        yield from session.propagate(start_frame=start, max_frames=stop - start, obj_ids=tracked)
