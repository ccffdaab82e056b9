"""SA-V val/test: ``sav_{val,test}.txt`` lists the videos, ``JPEGImages_24fps/<video>/<frame>.jpg`` holds every
24 fps frame (named by index) and ``Annotations_6fps/<video>/<object>/<frame>.png`` one 0/255 mask per object on
every 4th frame (objects may overlap). Predictions are per-object folders, as the SA-V evaluator reads them."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..frame_names import frame_name, is_number_name
from ..masks import MaskFormatError, write_binary_png
from ..safe_names import safe_component
from .layout import Layout, OnSkip, checked_folder, skip_or_raise
from .object_folders import ObjectFolderVideo

if TYPE_CHECKING:
    from ..frames import FrameSource

EVAL_FRAMES_FOLDER = "JPEGImages_24fps"
EVAL_ANNOTATIONS_FOLDER = "Annotations_6fps"
SPLITS = ("val", "test")


class EvalVideo(ObjectFolderVideo):
    """One SA-V val/test video: 24 fps JPEG frames and per-object 0/255 PNG masks at 6 fps (objects may overlap)."""

    def check_fits(self, frames: FrameSource) -> None:
        """``frames`` (the video's JPEGs) are named 0, 1, 2, ... by frame index, as SA-V numbers its 24 fps frames
        (a gap is a missing file, never closed up), and every mask is on one of them; errors name the files."""
        from ..frames import FrameSourceError

        indices = []
        for name in frames.frame_names:
            if not is_number_name(name):
                raise FrameSourceError(
                    f"{self.frames_folder}: frame {name!r} is not named by its index; SA-V names each frame by its "
                    "index (00000.jpg, 00001.jpg, ...)"
                )
            indices.append(int(name))
        missing = sorted(set(range(max(indices) + 1)) - set(indices))
        if missing:
            listed = ", ".join(frame_name(index) for index in missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise FileNotFoundError(
                f"{self.frames_folder}: {len(missing)} frame(s) missing before frame {frame_name(max(indices))}: "
                f"{listed}; SA-V numbers every 24 fps frame, so masks would land on the wrong frames: re-download "
                "this video"
            )
        [(index, count)] = Counter(indices).most_common(1)
        if count > 1:
            files = [name for name in frames.frame_names if int(name) == index]
            raise FrameSourceError(f"{self.frames_folder}: frame {index} is in {count} files, {files}; keep one")
        for obj in self.object_ids:
            annotated: dict[int, Path] = {}
            for name in sorted(path.stem for path in (self.annotations_folder / obj).glob("*.png")):
                path = self.annotations_folder / obj / f"{name}.png"
                if not is_number_name(name):
                    raise MaskFormatError(f"{path}: not named by a frame index; SA-V names masks by frame (00004.png)")
                if int(name) >= len(indices):
                    raise MaskFormatError(
                        f"{path}: a mask on frame {int(name)}, but {self.frames_folder} ends at frame "
                        f"{frame_name(len(indices) - 1)}; the frames are cut short: re-download this video"
                    )
                if int(name) in annotated:
                    raise MaskFormatError(f"{path} and {annotated[int(name)].name}: two masks on one frame; keep one")
                annotated[int(name)] = path


def read_eval_split(
    root: str | os.PathLike, split: str | None = None, on_skip: OnSkip | None = None
) -> list[EvalVideo]:
    """The videos of an SA-V val/test folder, in the order of ``sav_val.txt`` / ``sav_test.txt``.

    A listed video whose frames or annotations folder is missing, whose id cannot name a folder
    (:func:`~sam2_plugins.safe_names.safe_component`) or that is listed twice is an error, or, given ``on_skip``,
    skipped and reported as ``on_skip(video_id, reason)``.
    """
    root = Path(root)
    lists = [root / f"sav_{split}.txt"] if split else sorted(root.glob("sav_*.txt"))
    if not lists or not lists[0].is_file():
        raise FileNotFoundError(f"{root}: no sav_val.txt or sav_test.txt; pass the sav_val or sav_test folder")
    lines: dict[str, list[int]] = {}
    for number, line in enumerate(lists[0].read_text().splitlines(), start=1):
        if line.strip():
            lines.setdefault(line.strip(), []).append(number)
    split = lists[0].stem[len("sav_") :]
    videos = []
    for video_id, numbers in lines.items():
        try:
            videos.append(_listed_video(root, lists[0], video_id, numbers, split))
        except (ValueError, FileNotFoundError) as error:
            skip_or_raise(on_skip, video_id, error)
    return videos


def _listed_video(root: Path, list_file: Path, video_id: str, lines: list[int], split: str) -> EvalVideo:
    """The video on ``lines`` of ``list_file``, its id a folder name, listed once, with both folders."""
    safe_component(video_id, f"{list_file}, line {lines[0]}: video id")
    if len(lines) > 1:
        raise ValueError(f"{list_file}: video {video_id} is listed on lines {lines[0]} and {lines[1]}; list it once")
    frames, annotations = root / EVAL_FRAMES_FOLDER / video_id, root / EVAL_ANNOTATIONS_FOLDER / video_id
    video = EvalVideo(video_id, frames, annotations, split, SavEvalLayout.name)
    for folder in (video.frames_folder, video.annotations_folder):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{folder}: missing folder for video {video_id} listed in {list_file}; re-download this video"
            )
    return video


# ---------------------------------------------------------------------------------------------------- writers


def write_sav_object_masks(root: str | os.PathLike, video: str, obj: str, masks: Mapping[str, np.ndarray]) -> Path:
    """Write one object's masks as ``root/video/obj/<frame>.png`` (0/255); returns the object folder.

    The video, object and frame names must be single file names, and the folder must not lead outside ``root``."""
    folder = checked_folder(root, video, obj)
    for frame, mask in masks.items():
        write_binary_png(folder / f"{safe_component(frame, 'frame name')}.png", mask)
    return folder


class SavEvalLayout(Layout):
    name = "sav-val"
    protocol = "sav"
    description = f"SA-V val/test: sav_val.txt or sav_test.txt, {EVAL_FRAMES_FOLDER}/ and {EVAL_ANNOTATIONS_FOLDER}/"
    per_object_predictions = True

    def matches(self, root: Path) -> bool:
        return (root / EVAL_FRAMES_FOLDER).is_dir() and any((root / f"sav_{split}.txt").is_file() for split in SPLITS)

    def videos(
        self, root: str | os.PathLike, split: str | None = None, on_skip: OnSkip | None = None
    ) -> list[EvalVideo]:
        return read_eval_split(root, split, on_skip)
