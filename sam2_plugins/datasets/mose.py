"""MOSE: ``<split>/JPEGImages/<video>/<frame>.jpg`` and ``<split>/Annotations/<video>/<frame>.png`` palette PNGs,
as DAVIS 2017 but without ``ImageSets`` (every video folder of the split is in it). The valid and test splits give
the first frame's masks only; their scores come from the MOSE server, which takes a zip of the video folders."""

from __future__ import annotations

import os
from pathlib import Path

from .layout import Layout, OnSkip, skip_or_raise, split_folder, video_folders
from .palette_video import PaletteVideo

SPLITS = ("valid", "train", "test")


class MoseLayout(Layout):
    name = "mose"
    protocol = "davis"
    submission_folder = ""
    description = "MOSE: <split>/JPEGImages/<video>/ and <split>/Annotations/<video>/ (no ImageSets, no meta JSON)"

    def matches(self, root: Path) -> bool:
        folders = [root] + [root / split for split in SPLITS]
        return any((folder / "JPEGImages").is_dir() and (folder / "Annotations").is_dir() for folder in folders)

    def videos(
        self, root: str | os.PathLike, split: str | None = None, on_skip: OnSkip | None = None
    ) -> list[PaletteVideo]:
        folder, split = split_folder(Path(root), split, SPLITS, "JPEGImages", "MOSE")
        videos = []
        for video_id in video_folders(folder / "JPEGImages", "video folder"):
            frames, annotations = folder / "JPEGImages" / video_id, folder / "Annotations" / video_id
            video = PaletteVideo(video_id, frames, annotations, split, self.name)
            if video.annotations_folder.is_dir():
                videos.append(video)
            else:
                missing = FileNotFoundError(
                    f"{video.annotations_folder}: no annotations for video {video_id}; re-download the split"
                )
                skip_or_raise(on_skip, video_id, missing)
        return videos
