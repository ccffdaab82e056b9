"""Masklets written as SA-V holds them: a train masklet JSON in the layout of Meta's files (read back by
`datasets.sav_train.read_masklet_json`), and automatic masklets as that JSON (``masklet_type`` "auto") or as SA-V
PNG folders."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from pycocotools import mask as coco_mask

from .atomic import atomic_write
from .datasets.sav_train import ANNOTATION_STRIDE
from .frame_names import object_name
from .masks import decode_rle, encode_rle
from .sav_writer import write_sav_predictions
from .video_writer import FPS

SMALL_AREA, MEDIUM_AREA = 32**2, 96**2  # COCO's size buckets, as SA-V's masklet_size_bucket uses them


class TrackedMasklet(Protocol):
    """What the writers read of a masklet (`auto_masklets.AutoMasklet`): per-frame RLEs and stability scores."""

    obj_id: int
    rles: dict[int, dict]
    stability_scores: dict[int, float | None]


def size_bucket(area: float) -> str:
    """SA-V's ``masklet_size_bucket`` of a mean mask area in pixels."""
    if area < SMALL_AREA:
        return "small"
    return "medium" if area < MEDIUM_AREA else "large"


def visibility_changes(visible: Sequence[bool]) -> int:
    """Changes between visible and invisible after the first visible entry (``masklet_visibility_changes``)."""
    visible = list(visible)
    first = visible.index(True) if True in visible else len(visible)
    return int(sum(a != b for a, b in zip(visible[first:], visible[first + 1 :])))


def _rle_area(rle: dict) -> int:
    return int(coco_mask.area({"size": list(rle["size"]), "counts": rle["counts"].encode("ascii")}))


def sav_masklet_json(
    video_id: str,
    rles: Sequence[Sequence[dict]],
    masklet_type: str,
    num_frames: int,
    stability_scores: Sequence[Sequence[float | None]] | None = None,
    environment: str = "",
    split: str = "train",
    fps: float = FPS,
) -> dict:
    """A ``{video_id}_{manual,auto}.json`` with every field of Meta's files; ``rles[k][i]`` is masklet ``i``'s COCO
    RLE (string counts, empty where absent) on annotated frame ``k`` (video frame ``4 * k``).

    As in Meta's files, a manual file holds float ``masklet_first_appeared_frame`` (annotated-frame index) and one
    null stability score per masklet, an auto file int first appearances and ``stability_scores[k][i]`` nested like
    ``masklet``.
    """
    height, width = rles[0][0]["size"]
    areas = np.asarray([[_rle_area(rle) for rle in frame] for frame in rles], float).T  # [masklet][frame]
    visible = areas > 0
    size_abs = [float(a[v].mean()) if v.any() else 0.0 for a, v in zip(areas, visible)]
    first_appeared = [int(np.argmax(v)) for v in visible]
    count = len(rles[0])
    auto = masklet_type == "auto"
    return {
        "video_id": video_id,
        "video_duration": num_frames / fps,
        "video_frame_count": float(num_frames),
        "video_height": float(height),
        "video_width": float(width),
        "video_resolution": float(height * width),
        "video_environment": environment,
        "video_split": split,
        "masklet": [list(frame) for frame in rles],
        "masklet_id": list(range(count)),
        "masklet_size_rel": [s / (height * width) for s in size_abs],
        "masklet_size_abs": size_abs,
        "masklet_size_bucket": [size_bucket(s) for s in size_abs],
        "masklet_visibility_changes": [visibility_changes(v) for v in visible],
        "masklet_first_appeared_frame": first_appeared if auto else [float(k) for k in first_appeared],
        "masklet_frame_count": [len(rles)] * count,
        "masklet_edited_frame_count": [0] * count if auto else [int(v.sum()) for v in visible],
        "masklet_type": [masklet_type] * count,
        "masklet_stability_score": [list(row) for row in stability_scores] if auto else [None] * count,
        "masklet_num": count,
    }


def auto_masklet_json(
    masklets: Sequence[TrackedMasklet],
    video_id: str,
    num_frames: int,
    frame_size: tuple[int, int],
    environment: str = "",
    fps: float = FPS,
) -> dict:
    """Automatic masklets (`auto_masklets`) as an SA-V ``{video_id}_auto.json``: their masks and stability scores on
    every 4th video frame, empty RLEs and null scores where a masklet has no mask. ``frame_size`` is (height, width).
    """
    if not masklets:
        raise ValueError(f"no masklets to write for video {video_id}: SA-V JSON needs at least one")
    empty = encode_rle(np.zeros(frame_size, bool))
    annotated = range(0, num_frames, ANNOTATION_STRIDE)
    rles = [[masklet.rles.get(frame, empty) for masklet in masklets] for frame in annotated]
    scores = [[masklet.stability_scores.get(frame) for masklet in masklets] for frame in annotated]
    return sav_masklet_json(video_id, rles, "auto", num_frames, scores, environment=environment, fps=fps)


def write_auto_masklet_json(
    path: str | os.PathLike,
    masklets: Sequence[TrackedMasklet],
    video_id: str,
    num_frames: int,
    frame_size: tuple[int, int],
    environment: str = "",
    fps: float = FPS,
) -> Path:
    """Write `auto_masklet_json` to ``path`` (written whole or not at all); returns the path."""
    path = Path(path)
    content = json.dumps(auto_masklet_json(masklets, video_id, num_frames, frame_size, environment, fps))
    with atomic_write(path) as partial:
        partial.write_text(content)
    return path


def write_auto_masklet_pngs(
    root: str | os.PathLike,
    masklets: Sequence[TrackedMasklet],
    video_id: str,
    num_frames: int,
    frame_size: tuple[int, int],
) -> Path:
    """Write automatic masklets as SA-V PNG folders ``root/video_id/<obj_id:03d>/<frame>.png`` (0/255, every frame
    of the video; empty where a masklet has no mask); returns the video folder."""
    objects = [object_name(masklet.obj_id) for masklet in masklets]
    with write_sav_predictions(root, video_id, num_frames, frame_size, objects) as writer:
        for name, masklet in zip(objects, masklets):
            for frame_idx, rle in masklet.rles.items():
                writer.add(frame_idx, name, decode_rle(rle, f"masklet {masklet.obj_id} on frame {frame_idx}"))
    return Path(root) / video_id
