"""YouTube-VOS 2018 / 2019: ``<split>/JPEGImages/<video>/<frame>.jpg`` (every 5th frame of the 30 fps video, named by
its number), ``<split>/Annotations/<video>/<frame>.png`` palette PNGs and ``<split>/meta.json``, which lists each
video's objects and the frames each is annotated on (train) or to be predicted on (valid, test). Objects may first
appear after the first frame: in valid and test a video's PNGs are only those of the frames where an object first
appears, each holding that object. Their ground truth is hidden: the server takes a zip of
``Annotations/<video>/<frame>.png``, one PNG per frame of ``JPEGImages``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..masks import MaskFormatError
from .layout import Layout, OnSkip, listed_videos, read_meta_videos, split_folder
from .palette_video import PaletteVideo

SPLITS = ("valid", "train", "test")
META_FILE = "meta.json"


class YoutubeVosVideo(PaletteVideo):
    """A YouTube-VOS video: its objects, and the frames of each, from ``meta.json``."""

    def __init__(self, video_id: str, folder: Path, split: str, objects: Mapping[str, Sequence[str]], meta: Path):
        super().__init__(video_id, folder / "JPEGImages" / video_id, folder / "Annotations" / video_id, split)
        self.layout = YoutubeVosLayout.name
        self.meta_path = meta
        self._object_frames = objects

    @property
    def object_ids(self) -> list[str]:
        return list(self._object_frames)

    def annotated_frames(self, obj: str | None = None) -> list[int]:
        """Frames with a PNG (for ``obj``: those of its meta.json frames whose PNG holds it; in valid and test a
        PNG holds only the objects first appearing there)."""
        if obj is None:
            return list(self.annotation_files)
        where = f"{self.meta_path}: object {obj} of video {self.video_id}"
        listed = [self.frame_index(name, where) for name in self._frames_of(obj)]
        return sorted(frame for frame in listed if obj in self._labels.get(frame, ()))

    def first_frame(self, obj: str) -> int:
        annotated = self.annotated_frames(obj)
        if not annotated:
            raise MaskFormatError(
                f"{self.annotations_folder}: object {obj} of {self.meta_path} is in none of the PNGs of its frames, so "
                "it has no frame to be prompted on; restore its annotations or remove it from meta.json"
            )
        return annotated[0]

    def _frames_of(self, obj: str) -> Sequence[str]:
        if obj not in self._object_frames:
            raise KeyError(f"{self.meta_path}: video {self.video_id} has no object {obj!r}")
        return self._object_frames[obj]


class YoutubeVosLayout(Layout):
    name = "youtube-vos"
    protocol = "youtube-vos"
    submission_folder = "Annotations/"
    description = "YouTube-VOS: <split>/JPEGImages/, <split>/Annotations/ and <split>/meta.json"

    def matches(self, root: Path) -> bool:
        return any((folder / META_FILE).is_file() for folder in [root] + [root / split for split in SPLITS])

    def videos(
        self, root: str | os.PathLike, split: str | None = None, on_skip: OnSkip | None = None
    ) -> list[YoutubeVosVideo]:
        """The videos of ``meta.json`` (in its order) whose frames are there."""
        folder, split = split_folder(Path(root), split, SPLITS, META_FILE, "YouTube-VOS")
        meta = folder / META_FILE
        entries = read_meta_videos(meta)

        def video(video_id: str) -> YoutubeVosVideo:
            fields = entries[video_id]["objects"].items()
            objects = {str(obj): _frame_list(meta, video_id, obj, frames) for obj, frames in fields}
            return YoutubeVosVideo(video_id, folder, split, objects, meta)

        return listed_videos(entries, meta, video, on_skip)


def _frame_list(meta: Path, video_id: str, obj: str, fields: object) -> list[str]:
    frames = fields.get("frames") if isinstance(fields, dict) else None
    if not isinstance(frames, list) or not all(isinstance(name, str) for name in frames):
        raise ValueError(f'{meta}: object {obj} of video {video_id} needs "frames": a list of frame names')
    return frames
