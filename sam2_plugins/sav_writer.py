"""SA-V prediction folders, as the official evaluator reads them: ``root/<video>/<object>/<frame>.png`` (0/255),
every object a PNG on every frame of the video.

A video is written under a temporary name and swapped in when complete. Rewriting it deletes only what this writer
writes, the frame PNGs ``<object>/<digits>.png`` (objects no longer predicted go with theirs); any other file a
user keeps in the video folder stays, and nothing is written through a symbolic link.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from .frame_names import frame_name, is_number_name
from .masks import MaskFormatError, write_binary_png
from .safe_names import safe_component


class SavPredictionWriter:
    """One video's prediction folder being written; see :func:`write_sav_predictions`."""

    def __init__(self, folder: Path, num_frames: int, frame_size: tuple[int, int], objects: Iterable[str] = ()):
        self.folder = folder
        self.num_frames = num_frames
        self.frame_size = tuple(frame_size)
        self._frames_written: dict[str, set[int]] = {}
        for obj in objects:
            self._object_frames(obj)

    def add(self, frame: int, obj: str, mask: np.ndarray) -> None:
        """Write object ``obj``'s ``(H, W)`` mask on frame ``frame`` (0-based); a second mask replaces the first."""
        path = self.folder / safe_component(obj, "object name") / f"{frame_name(frame)}.png"
        if not 0 <= frame < self.num_frames:
            raise IndexError(f"{path}: frame {frame} is outside the video's {self.num_frames} frames")
        if np.shape(mask) != self.frame_size:
            raise MaskFormatError(
                f"{path}: mask of shape {np.shape(mask)} for frames of (height, width) {self.frame_size}; "
                "pass masks at the video's size"
            )
        write_binary_png(path, mask)
        self._object_frames(obj).add(frame)

    def fill_empty_frames(self) -> None:
        """Give every object an empty PNG on each frame it has no mask on."""
        empty = _empty_png(self.frame_size)
        for obj, frames in self._frames_written.items():
            (self.folder / obj).mkdir(exist_ok=True)
            for frame in sorted(set(range(self.num_frames)) - frames):
                (self.folder / obj / f"{frame_name(frame)}.png").write_bytes(empty)

    def _object_frames(self, obj: str) -> set[int]:
        if obj not in self._frames_written:
            self._frames_written[safe_component(obj, "object name")] = set()
        return self._frames_written[obj]


@contextmanager
def write_sav_predictions(
    root: str | os.PathLike, video: str, num_frames: int, frame_size: tuple[int, int], objects: Iterable[str] = ()
) -> Iterator[SavPredictionWriter]:
    """Write ``root/video`` in the SA-V prediction layout: ``add`` masks in the ``with`` block, in any order.

    ``frame_size`` is (height, width); ``objects`` get their folder even when no mask is added. On leaving the block
    every object gets an empty PNG on each frame it has no mask on, and the new frame PNGs replace those of any
    previous ``root/video`` (other files there stay). ``video`` and the object names must be single folder names
    (:func:`~sam2_plugins.safe_names.safe_component`). An error leaves the previous folder as it was.
    """
    root = Path(root)
    folder = root / safe_component(video, "video name")
    partial, previous = root / f".{video}.partial", root / f".{video}.previous"
    _check_replaceable(folder, partial, previous)
    root.mkdir(parents=True, exist_ok=True)
    _remove_written(partial)  # left by a run that was cut off
    partial.mkdir()
    try:
        writer = SavPredictionWriter(partial, num_frames, frame_size, objects)
        yield writer
        writer.fill_empty_frames()
        _swap_in(partial, folder, previous)
    finally:
        _remove_written(partial)


def _check_replaceable(folder: Path, partial: Path, previous: Path) -> None:
    """Refuse, before anything is written, a video folder that is a link or a file, or a rewrite cut off half-way."""
    for path in (folder, partial):
        if path.is_symlink():
            raise FileExistsError(
                f"{path}: a symbolic link; predictions are never written through links: remove it or write to "
                "another folder"
            )
        if path.exists() and not path.is_dir():
            raise FileExistsError(f"{path}: a file where a prediction folder goes; move it away or write elsewhere")
    if os.path.lexists(previous):
        raise FileExistsError(
            f"{previous}: left by a rewrite of {folder} that was cut off, with the files kept from the previous "
            f"folder; move what you want from it into {folder}, delete it, then write again"
        )


def _is_frame_png(path: Path) -> bool:
    """A file this writer writes in an object folder, ``<digits>.png`` (a link so named is removed, not followed)."""
    numbered = path.name.endswith(".png") and is_number_name(path.name[: -len(".png")])
    return numbered and (path.is_symlink() or path.is_file())


def _written_and_kept(folder: Path) -> tuple[list[Path], list[Path]]:
    """``(frame PNGs this writer writes, paths relative to folder of everything else)`` in a video folder."""
    written, kept = [], []
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink() or not entry.is_dir():
            kept.append(Path(entry.name))
            continue
        for item in sorted(entry.iterdir()):
            if _is_frame_png(item):
                written.append(item)
            else:
                kept.append(Path(entry.name, item.name))
    return written, kept


def _swap_in(partial: Path, folder: Path, previous: Path) -> None:
    """Make the complete ``partial`` the video's folder, moving the files a user kept in the old one across."""
    if not folder.exists():
        partial.rename(folder)
        return
    _, kept = _written_and_kept(folder)
    clashes = [path for path in kept if os.path.lexists(partial / path)]
    if clashes:
        raise FileExistsError(
            f"{folder / clashes[0]}: not a frame PNG, where this writer puts a prediction; move it away and write again"
        )
    folder.rename(previous)
    partial.rename(folder)
    for path in kept:
        (folder / path).parent.mkdir(exist_ok=True)
        (previous / path).rename(folder / path)
    _remove_written(previous)


def _remove_written(folder: Path) -> None:
    """Delete ``folder`` if it holds only what this writer writes; else stop, naming what it holds besides."""
    if not folder.exists():
        return
    written, kept = _written_and_kept(folder)
    for path in written:
        path.unlink()
    holding_kept = {path.parts[0] for path in kept}
    for obj in folder.iterdir():
        if obj.name not in holding_kept:
            obj.rmdir()
    if kept:
        raise FileExistsError(f"{folder / kept[0]}: not written by this writer, left in {folder}; move it away")
    folder.rmdir()


def _empty_png(frame_size: tuple[int, int]) -> bytes:
    """The 0/255 PNG of an empty mask, encoded once and copied to every frame that needs it."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros(frame_size, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
