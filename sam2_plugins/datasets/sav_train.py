"""SA-V train: shards ``sav_NNN/`` of ``{video_id}.mp4`` with ``{video_id}_manual.json`` (and most with
``_auto.json``), masklets as COCO RLE on every 4th frame. As a VOS video, its objects are the manual masklets
(``003`` for masklet 3, as SA-V val names object folders); predictions are per-object folders.

Readers are lazy: masks are decoded only when asked for, frames through :mod:`sam2_plugins.frames`.

Train records, as Meta's ``{video_id}_manual.json`` / ``_auto.json`` hold them (every field kept):

- :class:`MaskletFile`: one JSON file, its ``video_*`` fields and its :class:`Masklet` list (file order).
- :class:`Masklet`: masklet ``i`` of the file, i.e. entry ``i`` of every per-masklet list. ``rles[k]`` is
  ``masklet[k][i]``, its COCO RLE (``size`` = [height, width], ``counts`` a string) on annotated frame ``k`` =
  video frame ``4 * k``. ``stability_scores[k]`` is ``masklet_stability_score[k][i]`` of an auto file (the
  same [frame][masklet] nesting as ``masklet``); ``None`` for a manual masklet, whose file holds one ``null`` per
  masklet. ``first_appeared_frame`` is the annotated-frame index ``k`` of its first visible mask (stored as a
  float in manual files, an int in auto files; read as an int).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..frame_names import object_name
from ..masks import MaskFormatError, decode_rle
from ..safe_names import safe_component
from .layout import Layout, OnSkip, VosVideo, load_json_object

if TYPE_CHECKING:  # the video readers (PyAV, tifffile) load only when a video is opened
    from ..frames import FrameSource

ANNOTATION_STRIDE = 4
"""SA-V train masklets annotate every 4th video frame (6 fps annotations of 24 fps video)."""
EVAL_FRAMES_FOLDER = "JPEGImages_24fps"
EVAL_ANNOTATIONS_FOLDER = "Annotations_6fps"
_PER_MASKLET_FIELDS = (
    "masklet_id",
    "masklet_size_rel",
    "masklet_size_abs",
    "masklet_size_bucket",
    "masklet_visibility_changes",
    "masklet_first_appeared_frame",
    "masklet_frame_count",
    "masklet_edited_frame_count",
    "masklet_type",
)


# ---------------------------------------------------------------------------------------------------- train


@dataclass
class Masklet:
    """One object tracked through a train video (see the module docstring for how each field maps to the JSON)."""

    masklet_id: int
    masklet_type: str
    size_rel: float
    size_abs: float
    size_bucket: str
    visibility_changes: int
    first_appeared_frame: int
    frame_count: int
    edited_frame_count: int
    stability_scores: list[float | None] | None
    """``stability_scores[k]``: the auto masklet's score on annotated frame ``k``; None for manual masklets."""
    rles: list[dict | None] = field(repr=False)
    """``rles[k]``: the COCO RLE on annotated frame ``k`` (video frame ``4 * k``)."""
    source: str
    """The JSON file it was read from (named in errors)."""

    @property
    def key(self) -> str:
        """Unique within a video: manual and auto masklet ids overlap, so the type is part of the key."""
        return f"{self.masklet_type}_{self.masklet_id}"

    @property
    def annotated_frames(self) -> list[int]:
        """Video frame index of each annotation."""
        return [ANNOTATION_STRIDE * k for k in range(len(self.rles))]

    def mask(self, annotation_index: int) -> np.ndarray | None:
        """The decoded ``(H, W)`` bool mask of annotation ``annotation_index`` (video frame ``4 * index``)."""
        rle = self.rles[annotation_index]
        where = f"{self.source}: masklet[{annotation_index}] of {self.key}"
        return None if rle is None else decode_rle(rle, where)


@dataclass
class MaskletFile:
    """One ``{video_id}_manual.json`` or ``{video_id}_auto.json``: video metadata and its masklets."""

    path: Path
    video_id: str
    video_duration: float
    video_frame_count: int
    video_height: int
    video_width: int
    video_resolution: float
    video_environment: str
    video_split: str
    masklet_num: int
    masklets: list[Masklet]

    def check_fits(self, frames: FrameSource) -> None:
        """Every RLE has the video's size and every annotated frame exists in ``frames`` (the video's mp4)."""
        video_size = [frames.height, frames.width]
        if [self.video_height, self.video_width] != video_size:
            raise MaskFormatError(
                f"{self.path}: annotations are {self.video_width}x{self.video_height} but {frames!r} is "
                f"{frames.width}x{frames.height}; the annotation does not belong to this video"
            )
        annotated = len(self.masklets[0].rles) if self.masklets else 0
        if ANNOTATION_STRIDE * (annotated - 1) >= len(frames):
            raise MaskFormatError(
                f"{self.path}: {annotated} annotated frames (every {ANNOTATION_STRIDE}th) reach video frame "
                f"{ANNOTATION_STRIDE * (annotated - 1)}, past the end of {frames!r} ({len(frames)} frames); the "
                "annotation does not belong to this video or the mp4 is cut short: re-download the shard"
            )
        for masklet in self.masklets:
            for k, rle in enumerate(masklet.rles):
                size = rle.get("size") if isinstance(rle, dict) else video_size
                if size != video_size:
                    stated = "x".join(map(str, size[::-1])) if isinstance(size, list) else repr(size)
                    raise MaskFormatError(
                        f"{self.path}: masklet[{k}] of {masklet.key} is {stated} but {frames!r} is "
                        f"{frames.width}x{frames.height}; the annotation does not belong to this video"
                    )


def read_masklet_json(path: str | os.PathLike) -> MaskletFile:
    """Read and check one SA-V train annotation JSON; masks stay RLE until :meth:`Masklet.mask`."""
    path = Path(path)
    data = load_json_object(path, "SA-V masklet fields")
    try:
        _check_masklet_lengths(data, path)
        stability = _stability_scores(data, path)
        environment = data["video_environment"]
        return MaskletFile(
            path=path,
            video_id=str(data["video_id"]),
            video_duration=float(data["video_duration"]),
            video_frame_count=int(data["video_frame_count"]),
            video_height=int(data["video_height"]),
            video_width=int(data["video_width"]),
            video_resolution=float(data["video_resolution"]),
            video_environment=environment if isinstance(environment, str) else ", ".join(environment),
            video_split=str(data["video_split"]),
            masklet_num=int(data["masklet_num"]),
            masklets=[_masklet(data, i, stability[i], path) for i in range(len(data["masklet_id"]))],
        )
    except MaskFormatError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise MaskFormatError(f"{path}: missing or malformed SA-V field {error}; see the SA-V README format") from error


def _check_masklet_lengths(data: dict, path: Path) -> None:
    """Every per-masklet list, and every annotated frame of ``masklet``, has one entry per masklet."""
    count = len(data["masklet_id"])
    for name in _PER_MASKLET_FIELDS:
        if len(data[name]) != count:
            raise MaskFormatError(f"{path}: {name} has {len(data[name])} entries, masklet_id has {count}")
    for k, frame in enumerate(data["masklet"]):
        if len(frame) != count:
            raise MaskFormatError(f"{path}: masklet[{k}] holds {len(frame)} RLEs for {count} masklets")


def _stability_scores(data: dict, path: Path) -> list[list[float | None] | None]:
    """Per masklet, its stability score on each annotated frame, or None where the file scores it ``null``.

    Manual files hold one ``null`` per masklet; auto files one list per annotated frame with a score per masklet.
    """
    count, frames = len(data["masklet_id"]), len(data["masklet"])
    scores = data.get("masklet_stability_score")
    if scores is None or (len(scores) == count and all(score is None for score in scores)):
        return [None] * count
    if len(scores) != frames or not all(isinstance(row, list) and len(row) == count for row in scores):
        raise MaskFormatError(
            f"{path}: masklet_stability_score must hold one null per masklet (manual files) or, like masklet, one "
            f"list of {count} scores per annotated frame ({frames} lists, auto files); re-download this annotation"
        )
    return [[None if row[i] is None else float(row[i]) for row in scores] for i in range(count)]


def _whole_number(value: float | int, name: str, i: int, path: Path) -> int:
    """An integer field that SA-V may store as a float (``113.0``); a fractional value is an error."""
    if float(value) != int(value):
        raise MaskFormatError(f"{path}: {name}[{i}] is {value}, not a whole number; re-download this annotation")
    return int(value)


def _masklet(data: dict, i: int, stability_scores: list[float | None] | None, path: Path) -> Masklet:
    return Masklet(
        masklet_id=_whole_number(data["masklet_id"][i], "masklet_id", i, path),
        masklet_type=str(data["masklet_type"][i]),
        size_rel=float(data["masklet_size_rel"][i]),
        size_abs=float(data["masklet_size_abs"][i]),
        size_bucket=str(data["masklet_size_bucket"][i]),
        visibility_changes=_whole_number(data["masklet_visibility_changes"][i], "masklet_visibility_changes", i, path),
        first_appeared_frame=_whole_number(
            data["masklet_first_appeared_frame"][i], "masklet_first_appeared_frame", i, path
        ),
        frame_count=_whole_number(data["masklet_frame_count"][i], "masklet_frame_count", i, path),
        edited_frame_count=_whole_number(data["masklet_edited_frame_count"][i], "masklet_edited_frame_count", i, path),
        stability_scores=stability_scores,
        rles=[frame[i] for frame in data["masklet"]],
        source=str(path),
    )


@dataclass(eq=False)
class TrainVideo(VosVideo):
    """One SA-V train video: its mp4, manual masklets and (for most videos) automatic masklets."""

    video_id: str
    video_path: Path
    manual_path: Path
    auto_path: Path | None
    split: str = "train"
    layout: str = "sav-train"

    def frames(self) -> FrameSource:
        from ..frames import open_frames

        return open_frames(self.video_path)

    @functools.cached_property
    def _objects(self) -> dict[str, Masklet]:
        """Object id (``003``) -> its manual masklet, the file checked to fit the mp4."""
        [manual] = self.annotations(include_auto=False)
        return {object_name(masklet.masklet_id): masklet for masklet in manual.masklets}

    @property
    def object_ids(self) -> list[str]:
        return list(self._objects)

    def annotated_frames(self, obj: str | None = None) -> list[int]:
        masklets = self._objects.values() if obj is None else [self._masklet(obj)]
        return sorted({ANNOTATION_STRIDE * k for m in masklets for k, rle in enumerate(m.rles) if rle is not None})

    def masks(self, frame: int, objects: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        k, offset = divmod(frame, ANNOTATION_STRIDE)
        found = {}
        for obj in self.object_ids if objects is None else objects:
            masklet = self._masklet(obj)
            mask = masklet.mask(k) if offset == 0 and 0 <= k < len(masklet.rles) else None
            if mask is not None:
                found[obj] = mask
        return found

    def first_frame(self, obj: str) -> int:
        masklet = self._masklet(obj)
        for k in range(len(masklet.rles)):
            mask = masklet.mask(k)
            if mask is not None and mask.any():
                return ANNOTATION_STRIDE * k
        raise MaskFormatError(
            f"{self.manual_path}: masklet {obj} is empty on every annotated frame, so it has no frame to be prompted "
            "on; re-download this annotation"
        )

    def _masklet(self, obj: str) -> Masklet:
        if obj not in self._objects:
            raise KeyError(f"{self.manual_path}: no manual masklet {obj!r} in video {self.video_id}")
        return self._objects[obj]

    def annotations(self, include_auto: bool = True) -> list[MaskletFile]:
        """The manual file, then the auto file when there is one and ``include_auto`` (else it is not read),
        each checked to fit the mp4 (:meth:`MaskletFile.check_fits`)."""
        paths = [self.manual_path] + ([self.auto_path] if self.auto_path and include_auto else [])
        files = [read_masklet_json(path) for path in paths]
        with self.frames() as frames:
            for masklet_file in files:
                masklet_file.check_fits(frames)
        return files


def warn_skipped(video_id: str, reason: str) -> None:
    """Report a skipped train video as a warning; ``reason`` names the missing file."""
    warnings.warn(reason, stacklevel=3)


def list_train_videos(root: str | os.PathLike, on_skip: OnSkip = warn_skipped) -> list[TrainVideo]:
    """Every video of an SA-V train download: ``root/sav_NNN/{video_id}.mp4`` (or mp4s directly in ``root``).

    A video whose mp4 or ``_manual.json`` is missing, whose id cannot name a file
    (:func:`~sam2_plugins.safe_names.safe_component`) or whose id is in two shards is skipped and reported as
    ``on_skip(video_id, reason)``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; pass the SA-V train folder holding the sav_NNN shards")
    mp4s: dict[str, list[Path]] = {}
    for mp4 in _train_files(root, "*.mp4"):
        mp4s.setdefault(mp4.stem, []).append(mp4)
    videos = []
    for video_id, (mp4, *copies) in mp4s.items():
        try:
            safe_component(video_id, f"{mp4}: video id")
        except ValueError as error:
            on_skip(video_id, str(error))
            continue
        if copies:
            on_skip(
                video_id,
                f"{mp4} and {copies[0]}: video {video_id} is in two shards; keep the one that belongs to its "
                "annotations and delete the other (a video id names one video)",
            )
            continue
        manual = mp4.with_name(f"{video_id}_manual.json")
        if not manual.is_file():
            on_skip(video_id, f"{manual}: manual annotation missing, video {mp4} skipped; re-download this shard")
            continue
        auto = mp4.with_name(f"{video_id}_auto.json")
        videos.append(TrainVideo(video_id, mp4, manual, auto if auto.is_file() else None))
    for manual in _train_files(root, "*_manual.json"):
        video_id = manual.name[: -len("_manual.json")]
        mp4 = manual.with_name(f"{video_id}.mp4")
        if not mp4.is_file():
            on_skip(video_id, f"{mp4}: video missing for {manual}, skipped; re-download this shard")
    if not videos:
        raise FileNotFoundError(
            f"{root}: no train video with its manual annotation (sav_NNN/<video_id>.mp4 and "
            "<video_id>_manual.json); pass the SA-V train folder"
        )
    return videos


def _train_files(root: Path, pattern: str) -> list[Path]:
    """Files matching ``pattern`` directly in ``root``, then in its ``sav_NNN`` shards."""
    return sorted(root.glob(pattern)) + sorted(root.glob(f"sav_*/{pattern}"))


class SavTrainLayout(Layout):
    name = "sav-train"
    protocol = "sav"
    description = "SA-V train: <video_id>.mp4 with <video_id>_manual.json, in sav_NNN/ shards or directly"
    per_object_predictions = True

    def matches(self, root: Path) -> bool:
        return bool(_train_files(root, "*_manual.json"))

    def videos(
        self, root: str | os.PathLike, split: str | None = None, on_skip: OnSkip | None = None
    ) -> list[TrainVideo]:
        if split not in (None, "train"):
            raise ValueError(f"{root}: SA-V train has one split, 'train', not {split!r}")
        return list_train_videos(root, on_skip or warn_skipped)
