"""LVOS v1 / v2 (long-term VOS): ``<split>/JPEGImages/<video>/<frame>.jpg`` (``00000001.jpg``, ...; numbering need
not start at 0), ``<split>/Annotations/<video>/<frame>.png`` palette PNGs (label = object id) and
``<split>/<split>_meta.json`` (splits train, val, test), which gives each object the frames it is scored over:
``{"videos": {<video>: {"objects": {<id>: {"frame_range": {"start": <frame>, "end": <frame>, "frame_nums": n}}}}}}``.
An object is prompted on its first annotated frame in its range; frames outside it are not scored for it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..frame_names import is_number_name
from ..masks import MaskFormatError
from .layout import Layout, OnSkip, listed_videos, read_meta_videos, split_folder
from .palette_video import PaletteVideo

SPLITS = ("val", "train", "test")


class LvosVideo(PaletteVideo):
    """An LVOS video: its objects and their frame ranges from the split's meta JSON."""

    def __init__(
        self, video_id: str, folder: Path, split: str, ranges: Mapping[str, tuple[object, object]], meta: Path
    ):
        super().__init__(video_id, folder / "JPEGImages" / video_id, folder / "Annotations" / video_id, split)
        self.layout = LvosLayout.name
        self.meta_path = meta
        self._ranges = ranges

    @property
    def object_ids(self) -> list[str]:
        return list(self._ranges)

    def object_range(self, obj: str) -> tuple[int, int]:
        if obj not in self._ranges:
            raise KeyError(f"{self.meta_path}: video {self.video_id} has no object {obj!r}")
        start, end = (self._frame(value, obj) for value in self._ranges[obj])
        if end < start:
            raise MaskFormatError(f"{self.meta_path}: object {obj} of video {self.video_id} ends before it starts")
        return start, end

    def annotated_frames(self, obj: str | None = None) -> list[int]:
        if obj is None:
            return list(self.annotation_files)
        start, end = self.object_range(obj)
        return [frame for frame in self.annotation_files if start <= frame <= end]

    def first_frame(self, obj: str) -> int:
        for frame in self.annotated_frames(obj):
            if self.masks(frame, [obj]):
                return frame
        raise MaskFormatError(
            f"{self.annotations_folder}: object {obj} is in no PNG of its frame_range in {self.meta_path}, so it has "
            "no frame to be prompted on; restore its annotations or remove it from the meta file"
        )

    def _frame(self, value: object, obj: str) -> int:
        """The frame a range bound names: a frame name, or a frame number (``1`` for ``00000001``)."""
        if isinstance(value, int) or (
            isinstance(value, str) and value not in self.frame_names and is_number_name(value)
        ):
            numbered = [
                i for i, name in enumerate(self.frame_names) if is_number_name(name) and int(name) == int(value)
            ]
            if numbered:
                return numbered[0]
        return self.frame_index(str(value), f"{self.meta_path}: frame_range of object {obj} of video {self.video_id}")


class LvosLayout(Layout):
    name = "lvos"
    protocol = "lvos"
    description = "LVOS: <split>/JPEGImages/, <split>/Annotations/ and <split>/<split>_meta.json"

    def matches(self, root: Path) -> bool:
        folders = [root] + [root / split for split in SPLITS]
        return any((folder / "JPEGImages").is_dir() and any(folder.glob("*_meta.json")) for folder in folders)

    def videos(
        self, root: str | os.PathLike, split: str | None = None, on_skip: OnSkip | None = None
    ) -> list[LvosVideo]:
        """The videos of the split's meta JSON (in its order) whose frames are there."""
        folder, split = split_folder(Path(root), split, SPLITS, "JPEGImages", "LVOS")
        metas = sorted(folder.glob("*_meta.json"))
        meta = (
            folder / f"{split}_meta.json" if (folder / f"{split}_meta.json").is_file() or len(metas) != 1 else metas[0]
        )
        entries = read_meta_videos(meta)

        def video(video_id: str) -> LvosVideo:
            fields = entries[video_id]["objects"].items()
            ranges = {str(obj): _range(meta, video_id, obj, bounds) for obj, bounds in fields}
            return LvosVideo(video_id, folder, split, ranges, meta)

        return listed_videos(entries, meta, video, on_skip)


def _range(meta: Path, video_id: str, obj: str, fields: object) -> tuple[object, object]:
    bounds = fields.get("frame_range") if isinstance(fields, dict) else None
    if not isinstance(bounds, dict) or "start" not in bounds or "end" not in bounds:
        raise ValueError(f'{meta}: object {obj} of video {video_id} needs "frame_range": {{"start": .., "end": ..}}')
    return bounds["start"], bounds["end"]
