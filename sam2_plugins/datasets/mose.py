"""MOSE: ``<split>/JPEGImages/<video>/<frame>.jpg`` and ``<split>/Annotations/<video>/<frame>.png`` palette PNGs,
as DAVIS 2017 but without ``ImageSets`` (every video folder of the split is in it). The valid and test splits give
the first frame's masks only; their scores come from the MOSE server, which takes a zip of the video folders."""

from __future__ import annotations

import os
from pathlib import Path

from .layout import Layout, OnSkip, listed_videos, split_folder
from .palette_video import PaletteVideo

SPLITS = ("valid", "train", "test")


class MoseLayout(Layout):
    name = "mose"
    protocol = "mose"
    submission_folder = ""
    description = "MOSE: <split>/JPEGImages/<video>/ and <split>/Annotations/<video>/ (no ImageSets, no meta JSON)"

    def matches(self, root: Path) -> bool:
        folders = [root] + [root / split for split in SPLITS]
        return any((folder / "JPEGImages").is_dir() and (folder / "Annotations").is_dir() for folder in folders)

    def videos(
        self, root: str | os.PathLike, split: str | None = None, on_skip: OnSkip | None = None
    ) -> list[PaletteVideo]:
        folder, split = split_folder(Path(root), split, SPLITS, "JPEGImages", "MOSE")
        frames, annotations = folder / "JPEGImages", folder / "Annotations"
        return listed_videos(
            _video_folders(frames),
            frames,
            lambda video_id: PaletteVideo(video_id, frames / video_id, annotations / video_id, split, self.name),
            on_skip,
        )


def _video_folders(folder: Path) -> list[str]:
    """The names of the video folders in ``folder``, sorted (hidden entries skipped)."""
    return sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))
