"""The layout protocol: what every VOS dataset layout (SA-V, DAVIS, MOSE, LVOS, YouTube-VOS) tells the rest of the
project, so import, predict, export and evaluate read and write each benchmark through one interface.

A :class:`Layout` lists a dataset's videos (:class:`VosVideo`) and writes predictions the way that benchmark's tools
read them. A :class:`VosVideo` gives its frames, its objects (ids as text: ``"1"`` for palette label 1, ``"003"``
for SA-V object folder 003), the frames holding ground truth, the masks there, and the frame each object is first
seen on (where a benchmark run prompts it). Frames are 0-based indices into :attr:`VosVideo.frame_names`.
"""

from __future__ import annotations

import functools
import json
import os
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..atomic import atomic_write, write_error
from ..masks import MaskFormatError, davis_palette
from ..safe_names import path_inside, safe_component
from ..sav_writer import write_palette_predictions, write_sav_predictions

if TYPE_CHECKING:  # the video readers (PyAV, tifffile) load only when a video is opened
    from ..frames import FrameSource

OnSkip = Callable[[str, str], None]
"""``on_skip(video_id, reason)``: told about a video left out of a listing; without it, the reason is an error."""


class VosVideo(ABC):
    """One video of a VOS dataset: frames, objects and ground truth, read lazily."""

    video_id: str
    split: str | None
    layout: str

    @abstractmethod
    def frames(self) -> FrameSource:
        """The video's frames (close it, or use it in a ``with`` block)."""

    @functools.cached_property
    def frame_names(self) -> list[str]:
        """Each frame's file stem, in video order (frame ``i`` is ``frame_names[i]``)."""
        with self.frames() as frames:
            return list(frames.frame_names)

    @functools.cached_property
    def frame_size(self) -> tuple[int, int]:
        """``(height, width)`` of the frames."""
        with self.frames() as frames:
            return frames.height, frames.width

    @property
    @abstractmethod
    def object_ids(self) -> list[str]:
        """The annotated objects, in the layout's order."""

    @abstractmethod
    def annotated_frames(self, obj: str | None = None) -> list[int]:
        """Sorted frame indices with a ground-truth file for ``obj`` (for any object when None)."""

    @abstractmethod
    def masks(self, frame: int, objects: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Object id -> ``(H, W)`` bool mask on annotated frame ``frame`` (only ``objects`` when given). An object
        with no ground truth there (absent from a palette PNG, no file in its folder) is not in the dict."""

    @abstractmethod
    def first_frame(self, obj: str) -> int:
        """The first frame on which ``obj`` is visible in the ground truth: the frame a benchmark run prompts it on."""

    def object_range(self, obj: str) -> tuple[int, int] | None:
        """``(first, last)`` frames (inclusive) over which the layout scores ``obj``; None: the whole video."""
        return None

    @property
    def palette(self) -> bytes | None:
        """The RGB palette of the ground-truth PNGs (predictions are written with it), None when they have none."""
        return None

    def frame_index(self, name: str, where: str | os.PathLike) -> int:
        """The index of the frame named ``name``; an error naming ``where`` (the file that refers to it) if none."""
        index = self._frame_indices.get(name)
        if index is None:
            raise MaskFormatError(
                f"{where}: refers to frame {name!r}, which is not among the {len(self.frame_names)} frames of video "
                f"{self.video_id}; restore the frame or remove the annotation"
            )
        return index

    @functools.cached_property
    def _frame_indices(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.frame_names)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.video_id!r}, split={self.split!r}, layout={self.layout!r})"


class FolderVideo(VosVideo):
    """A video of JPEG frames in ``frames_folder`` with its ground truth in ``annotations_folder``."""

    def __init__(
        self, video_id: str, frames_folder: Path, annotations_folder: Path, split: str | None = None, layout: str = ""
    ):
        self.video_id = video_id
        self.frames_folder = Path(frames_folder)
        self.annotations_folder = Path(annotations_folder)
        self.split = split
        self.layout = layout

    def frames(self) -> FrameSource:
        from ..frames import open_frames

        return open_frames(self.frames_folder)

    def _check_frame_size(self, path: Path, mask: np.ndarray) -> np.ndarray:
        """``mask`` read from ``path``, if it has the frames' size; else an error naming both."""
        if mask.shape != self.frame_size:
            raise MaskFormatError(
                f"{path}: {mask.shape[1]}x{mask.shape[0]} but the frames in {self.frames_folder} are "
                f"{self.frame_size[1]}x{self.frame_size[0]}; the annotation does not belong to this video"
            )
        return mask


class Layout(ABC):
    """A dataset layout: how its videos are found and how predictions for its tools are written."""

    name: str
    """The name :func:`~sam2_plugins.datasets.get_layout` knows it by."""
    protocol: str
    """The scoring protocol that applies (a name of ``sam2_plugins.evaluate``'s protocols): ``"sav"``, ``"davis"``,
    ``"davis2016"``, ``"mose"``, ``"lvos"``; ``"youtube-vos"`` (its ground truth is hidden: scored on its server)."""
    description: str
    """What a folder of this layout holds (named in errors when no layout matches)."""
    per_object_predictions: bool = False
    """True: predictions are ``<video>/<object>/<frame>.png`` (0/1), else ``<video>/<frame>.png`` label maps."""
    submission_folder: str | None = None
    """For hidden-test-set servers: the folder the zip holds the video folders in (``""``: at its root); None when the
    benchmark takes no zip."""

    @abstractmethod
    def matches(self, root: Path) -> bool:
        """Whether ``root`` looks like a folder of this layout (folder shapes only; nothing is decoded)."""

    @abstractmethod
    def videos(
        self, root: str | os.PathLike, split: str | None = None, on_skip: OnSkip | None = None
    ) -> list[VosVideo]:
        """The videos of ``split`` (the layout's default split when None) of the dataset at ``root``."""

    def write_predictions(
        self, out_root: str | os.PathLike, video: VosVideo, masks: Mapping[int, Mapping[str, np.ndarray]]
    ) -> Path:
        """Write ``masks`` (frame index -> object id -> ``(H, W)`` mask) as ``out_root/<video>`` in this layout's
        prediction form, every frame of the video present (empty where ``masks`` has none), written whole under a
        temporary name and swapped in; returns the video folder."""
        palette = video.palette or davis_palette()
        names = video.frame_names
        if self.per_object_predictions:
            with write_sav_predictions(
                out_root, video.video_id, len(names), video.frame_size, video.object_ids, names, palette
            ) as writer:
                for frame, frame_masks in masks.items():
                    for obj, mask in frame_masks.items():
                        writer.add(frame, obj, mask)
            return writer.destination
        with write_palette_predictions(out_root, video.video_id, names, video.frame_size, palette) as writer:
            for frame, frame_masks in masks.items():
                writer.add_frame(frame, frame_masks)
        return writer.destination

    def write_submission(
        self, predictions_root: str | os.PathLike, videos: Sequence[VosVideo], zip_path: str | os.PathLike
    ) -> Path:
        """Zip the predictions of ``videos`` (as :meth:`write_predictions` wrote them under ``predictions_root``) the
        way this benchmark's evaluation server takes them; every frame of every video must be there."""
        if self.submission_folder is None:
            raise ValueError(
                f"no evaluation server zip is known for the {self.name} layout; score its predictions folder with "
                "sam2-plugins evaluate"
            )
        predictions_root, zip_path = Path(predictions_root), Path(zip_path)
        members = []
        for video in videos:
            folder = predictions_root / safe_component(video.video_id, "video id")
            for name in video.frame_names:
                png = folder / f"{safe_component(name, 'frame name')}.png"
                if not png.is_file():
                    raise FileNotFoundError(
                        f"{png}: missing; the {self.name} server needs a PNG for every frame of every video: run "
                        "the prediction of this video again"
                    )
                members.append((png, f"{self.submission_folder}{video.video_id}/{name}.png"))
        try:
            zip_path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(zip_path) as partial, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
                for png, arcname in members:
                    archive.write(png, arcname)
        except OSError as error:
            raise write_error(zip_path, error) from error
        return zip_path

    def __repr__(self) -> str:
        return f"<{self.name} layout>"


def split_folder(root: Path, split: str | None, splits: Sequence[str], marker: str, layout: str) -> tuple[Path, str]:
    """``(folder holding marker, split name)``: ``root`` itself when it holds ``marker`` (a split folder), else
    ``root/split`` (default: the first of ``splits`` present); errors name the folder and the splits there."""
    if (root / marker).exists() and (split is None or split == root.name):
        return root, root.name
    present = [name for name in splits if (root / name / marker).exists()]
    if split is None:
        if not present:
            raise FileNotFoundError(
                f"{root}: no {marker} here nor in a split folder ({', '.join(splits)}); pass the {layout} folder"
            )
        split = present[0]
    folder = root / safe_component(split, f"{layout} split")
    if not (folder / marker).exists():
        listed = ", ".join(present) or "none"
        raise FileNotFoundError(f"{folder / marker}: not found; split {split!r} is not here (splits found: {listed})")
    return folder, split


def checked_folder(root: str | os.PathLike, video: str, obj: str | None = None) -> Path:
    """``root/video[/obj]`` from names checked to be single folder names, refused if a link leads outside ``root``."""
    folder = Path(root) / safe_component(video, "video name")
    if obj is not None:
        folder = folder / safe_component(obj, "object name")
    return path_inside(Path(root), folder)


def skip_or_raise(on_skip: OnSkip | None, video_id: str, error: Exception) -> None:
    """Report a video left out through ``on_skip``, or raise ``error`` when there is none."""
    if on_skip is None:
        raise error
    on_skip(video_id, str(error))


def listed_videos(
    video_ids: Iterable[str], source: Path, make: Callable[[str], FolderVideo], on_skip: OnSkip | None
) -> list[FolderVideo]:
    """``make(video_id)`` for each id listed in ``source`` (a list or meta file, a folder), in order: the id checked
    to be a folder name, the video's frames and annotations folders there. A video failing that (or ``make``, with
    a ValueError) is an error, or left out and reported through ``on_skip``."""
    videos = []
    for video_id in video_ids:
        try:
            safe_component(video_id, f"{source}: video id")
            video = make(video_id)
            for folder in (video.frames_folder, video.annotations_folder):
                if not folder.is_dir():
                    raise FileNotFoundError(
                        f"{folder}: missing for video {video_id} listed in {source}; re-download the dataset, or "
                        f"leave the video out of {source.name}"
                    )
        except (ValueError, FileNotFoundError) as error:
            skip_or_raise(on_skip, video_id, error)
        else:
            videos.append(video)
    return videos


def load_json_object(path: Path, expected: str) -> dict:
    """The JSON object in ``path``; errors name the file and, when it is no object, the ``expected`` fields."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not found; re-download the dataset's annotations") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise MaskFormatError(f"{path}: corrupt JSON ({error}); re-download or re-export this file") from error
    if not isinstance(data, dict):
        raise MaskFormatError(f"{path}: expected a JSON object with {expected}")
    return data


def read_meta_videos(path: Path) -> dict[str, dict]:
    """The ``videos`` mapping of a YouTube-VOS / LVOS meta JSON (video id -> ``{"objects": {...}}``)."""
    videos = load_json_object(path, '"videos"').get("videos")
    if not isinstance(videos, dict) or not all(
        isinstance(video, dict) and isinstance(video.get("objects"), dict) for video in videos.values()
    ):
        raise MaskFormatError(
            f'{path}: expected {{"videos": {{<video id>: {{"objects": {{<object id>: {{...}}}}}}}}}}; '
            "re-download this meta file"
        )
    return videos
