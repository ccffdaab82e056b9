"""DAVIS 2017 and 2016: ``JPEGImages/480p/<sequence>/<frame>.jpg``, ``Annotations/480p/<sequence>/<frame>.png``
and ``ImageSets/<year>/<split>.txt`` (one sequence per line); ``Full-Resolution`` in place of ``480p`` when only that
is there. DAVIS 2017 annotations are palette PNGs holding every object (label k = object k, 255 = void); DAVIS 2016
has one object per sequence (its binary 0/255 masks, or every label of a 2017 PNG merged). The original DAVIS 2016
download lists ``ImageSets/480p/<split>.txt`` as ``/JPEGImages/480p/<seq>/<frame>.jpg /Annotations/...`` pairs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..masks import write_palette_png
from ..safe_names import safe_component
from .layout import Layout, OnSkip, checked_folder, listed_videos
from .palette_video import VOID_LABEL, PaletteVideo

RESOLUTIONS = ("480p", "Full-Resolution")
SPLITS = ("val", "train", "test-dev", "test-challenge")


class Davis2016Video(PaletteVideo):
    """A DAVIS 2016 sequence: one object, ``"1"``, the foreground of each annotation PNG."""

    def split_objects(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        foreground = labels > 0 if self.palette is None else (labels > 0) & (labels != VOID_LABEL)
        return {"1": foreground} if foreground.any() else {}


class DavisLayout(Layout):
    name = "davis"
    protocol = "davis"
    year = "2017"
    video_class = PaletteVideo
    submission_folder = ""
    description = "DAVIS: JPEGImages/480p/, Annotations/480p/ and ImageSets/2017/<split>.txt"

    def matches(self, root: Path) -> bool:
        return (root / "ImageSets").is_dir() and any((root / "JPEGImages" / res).is_dir() for res in RESOLUTIONS)

    def videos(
        self, root: str | os.PathLike, split: str | None = None, on_skip: OnSkip | None = None
    ) -> list[PaletteVideo]:
        """The sequences listed in ``ImageSets/<year>/<split>.txt`` (default ``val``), in its order."""
        root = Path(root)
        split = split or "val"
        resolution = next((res for res in RESOLUTIONS if (root / "JPEGImages" / res).is_dir()), RESOLUTIONS[0])
        list_file, sequences = self._listed(root, split)
        frames, annotations = root / "JPEGImages" / resolution, root / "Annotations" / resolution
        return listed_videos(
            sequences,
            list_file,
            lambda sequence: self.video_class(sequence, frames / sequence, annotations / sequence, split, self.name),
            on_skip,
        )

    def _listed(self, root: Path, split: str) -> tuple[Path, list[str]]:
        """The list file of ``split`` and its sequences, each once, in order."""
        list_file = root / "ImageSets" / self.year / f"{safe_component(split, 'DAVIS split')}.txt"
        if not list_file.is_file():
            known = sorted(path.stem for path in (root / "ImageSets" / self.year).glob("*.txt"))
            raise FileNotFoundError(
                f"{list_file}: not found; DAVIS {self.year} splits here: {', '.join(known) or 'none'} (pass one of "
                f"them, or the folder that holds JPEGImages/, Annotations/ and ImageSets/)"
            )
        return list_file, list(
            dict.fromkeys(line.strip() for line in list_file.read_text().splitlines() if line.strip())
        )


class Davis2016Layout(DavisLayout):
    name = "davis-2016"
    protocol = "davis2016"
    year = "2016"
    video_class = Davis2016Video
    description = "DAVIS 2016: JPEGImages/480p/, Annotations/480p/ and ImageSets/2016/ (or ImageSets/480p/) lists"

    def matches(self, root: Path) -> bool:
        return super().matches(root) and not (root / "ImageSets" / "2017").is_dir()

    def _listed(self, root: Path, split: str) -> tuple[Path, list[str]]:
        pairs = root / "ImageSets" / "480p" / f"{safe_component(split, 'DAVIS split')}.txt"
        if (root / "ImageSets" / self.year).is_dir() or not pairs.is_file():
            return super()._listed(root, split)
        sequences = []
        for number, line in enumerate(pairs.read_text().splitlines(), start=1):
            parts = line.split()[0].strip("/").split("/") if line.strip() else []
            if parts and (len(parts) != 4 or parts[0] != "JPEGImages"):
                raise ValueError(
                    f"{pairs}, line {number}: {line!r} is not '/JPEGImages/480p/<sequence>/<frame>.jpg "
                    "/Annotations/480p/<sequence>/<frame>.png'; re-download DAVIS 2016"
                )
            sequences.extend(parts[2:3])
        return pairs, list(dict.fromkeys(sequences))


def write_davis_label_maps(root: str | os.PathLike, video: str, label_maps: Mapping[str, np.ndarray]) -> Path:
    """Write label maps as ``root/video/<frame>.png`` DAVIS palette PNGs; returns the video folder (video and frame
    names must be single file names, the folder inside ``root``)."""
    folder = checked_folder(root, video)
    for frame, labels in label_maps.items():
        write_palette_png(folder / f"{safe_component(frame, 'frame name')}.png", labels)
    return folder
