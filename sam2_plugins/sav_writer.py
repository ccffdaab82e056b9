"""Prediction folders of one video, as benchmark tools read them: per object (SA-V,
``root/<video>/<object>/<frame>.png``, 0/255 gray or 0/1 with a palette as Meta's ``vos_inference.py`` writes them)
or as label maps (DAVIS, MOSE, LVOS, YouTube-VOS: ``root/<video>/<frame>.png`` palette PNGs, 0 = background,
label = object id). Every object (every label map) has a PNG on every frame of the video.

A video is written under a temporary name and swapped in when complete. Rewriting it deletes only what this writer
writes, the frame PNGs ``<digits>.png`` (in object folders, or in the video folder for label maps; objects no longer
predicted go with theirs); any other file a user keeps in the video folder stays, and nothing is written through a
symbolic link.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from .frame_names import frame_name, is_number_name
from .masks import MaskFormatError, write_binary_png, write_palette_png
from .safe_names import safe_component


class SavPredictionWriter:
    """One video's per-object prediction folder being written; see :func:`write_sav_predictions`."""

    def __init__(
        self,
        folder: Path,
        frame_names: Sequence[str],
        frame_size: tuple[int, int],
        objects: Iterable[str] = (),
        palette: bytes | None = None,
    ):
        self.folder = folder
        self.num_frames = len(frame_names)
        self.frame_size = tuple(frame_size)
        self.frame_names = frame_names
        self.palette = palette
        self._frames_written: dict[str, set[int]] = {}
        for obj in objects:
            self._object_frames(obj)

    def add(self, frame: int, obj: str, mask: np.ndarray) -> None:
        """Write object ``obj``'s ``(H, W)`` mask on frame ``frame`` (0-based); a second mask replaces the first."""
        folder = self.folder / safe_component(obj, "object name")
        path = _frame_path(folder, self.frame_names, frame)
        _check_mask_size(path, mask, self.frame_size)
        if self.palette is None:
            write_binary_png(path, mask)
        else:
            write_palette_png(path, np.asarray(mask) > 0, self.palette)
        self._object_frames(obj).add(frame)

    def fill_empty_frames(self) -> None:
        """Give every object an empty PNG on each frame it has no mask on."""
        empty = _empty_png(self.frame_size, self.palette)
        for obj, frames in self._frames_written.items():
            (self.folder / obj).mkdir(exist_ok=True)
            for frame in sorted(set(range(self.num_frames)) - frames):
                (self.folder / obj / f"{self.frame_names[frame]}.png").write_bytes(empty)

    def _object_frames(self, obj: str) -> set[int]:
        if obj not in self._frames_written:
            self._frames_written[safe_component(obj, "object name")] = set()
        return self._frames_written[obj]


class LabelMapWriter:
    """One video's label-map prediction folder being written; see :func:`write_palette_predictions`."""

    def __init__(self, folder: Path, frame_names: Sequence[str], frame_size: tuple[int, int], palette: bytes):
        self.folder = folder
        self.frame_names = frame_names
        self.frame_size = tuple(frame_size)
        self.palette = palette
        self._frames_written: set[int] = set()

    def add_frame(self, frame: int, masks: Mapping[str, np.ndarray]) -> None:
        """Write frame ``frame``'s label map from object id -> ``(H, W)`` mask; where objects overlap the smaller
        id wins (as Meta's ``vos_inference.py`` composes them)."""
        path = _frame_path(self.folder, self.frame_names, frame)
        labels = np.zeros(self.frame_size, np.uint8)
        for label, mask in sorted(((_label(obj, path), mask) for obj, mask in masks.items()), reverse=True):
            _check_mask_size(path, mask, self.frame_size)
            labels[np.asarray(mask) > 0] = label
        write_palette_png(path, labels, self.palette)
        self._frames_written.add(frame)

    def fill_empty_frames(self) -> None:
        """An all-background PNG on each frame without a label map."""
        empty = _empty_png(self.frame_size, self.palette)
        for frame in sorted(set(range(len(self.frame_names))) - self._frames_written):
            (self.folder / f"{self.frame_names[frame]}.png").write_bytes(empty)


def _frame_file_names(num_frames: int, frame_names: Sequence[str] | None, folder: Path) -> list[str]:
    """The PNG stem of each frame: ``frame_names`` (checked: numbers, as benchmark tools sort them), else 00000..."""
    if frame_names is None:
        return [frame_name(index) for index in range(num_frames)]
    if len(frame_names) != num_frames:
        raise ValueError(f"{folder}: {len(frame_names)} frame names for {num_frames} frames; pass one name per frame")
    for name in frame_names:
        if not is_number_name(name):
            raise ValueError(
                f"{folder}: frame name {name!r} is not a number; prediction PNGs are named by frame number "
                "(00000.png, ...) as benchmark tools sort them: rename the video's frames"
            )
    return list(frame_names)


def _frame_path(folder: Path, frame_names: Sequence[str], frame: int) -> Path:
    if not 0 <= frame < len(frame_names):
        where = folder / f"{frame_name(frame)}.png"
        raise IndexError(f"{where}: frame {frame} is outside the video's {len(frame_names)} frames")
    return folder / f"{frame_names[frame]}.png"


def _check_mask_size(path: Path, mask: np.ndarray, frame_size: tuple[int, ...]) -> None:
    if np.shape(mask) != frame_size:
        raise MaskFormatError(
            f"{path}: mask of shape {np.shape(mask)} for frames of (height, width) {frame_size}; "
            "pass masks at the video's size"
        )


def _label(obj: str, path: Path) -> int:
    """The label of object ``obj`` in a label map: its id, a number 1..255."""
    if not (is_number_name(obj) and 1 <= int(obj) <= 255):
        raise MaskFormatError(
            f"{path}: object {obj!r} cannot be a label of a palette PNG (a number 1..255); write per-object "
            "folders (the SA-V layout) for objects with other ids"
        )
    return int(obj)


@contextmanager
def write_sav_predictions(
    root: str | os.PathLike,
    video: str,
    num_frames: int,
    frame_size: tuple[int, int],
    objects: Iterable[str] = (),
    frame_names: Sequence[str] | None = None,
    palette: bytes | None = None,
) -> Iterator[SavPredictionWriter]:
    """Write ``root/video`` in the SA-V prediction layout: ``add`` masks in the ``with`` block, in any order.

    ``frame_size`` is (height, width); ``objects`` get their folder even when no mask is added. PNGs are named by
    ``frame_names`` (numbers; default 00000, 00001, ...) and hold 0/255 gray, or 0/1 with ``palette`` as Meta's
    ``vos_inference.py --per_obj_png_file`` writes them. On leaving the block every object gets an empty PNG on each
    frame it has no mask on, and the new frame PNGs replace those of any previous ``root/video`` (other files there
    stay). ``video`` and the object names must be single folder names (:func:`~sam2_plugins.safe_names.safe_component`).
    An error leaves the previous folder as it was. The writer's ``destination`` is ``root/video``.
    """
    names = _frame_file_names(num_frames, frame_names, Path(root) / video)
    with _video_folder(root, video, label_maps=False) as (partial, destination):
        writer = SavPredictionWriter(partial, names, frame_size, objects, palette)
        writer.destination = destination
        yield writer
        writer.fill_empty_frames()


@contextmanager
def write_palette_predictions(
    root: str | os.PathLike, video: str, frame_names: Sequence[str], frame_size: tuple[int, int], palette: bytes
) -> Iterator[LabelMapWriter]:
    """Write ``root/video/<frame>.png`` label maps (palette PNGs, DAVIS / YouTube-VOS / MOSE / LVOS predictions):
    ``add_frame`` in the ``with`` block; frames given none are all background. Atomic and keeping other files as
    :func:`write_sav_predictions`. The writer's ``destination`` is ``root/video``."""
    names = _frame_file_names(len(frame_names), frame_names, Path(root) / video)
    with _video_folder(root, video, label_maps=True) as (partial, destination):
        writer = LabelMapWriter(partial, names, frame_size, palette)
        writer.destination = destination
        yield writer
        writer.fill_empty_frames()


@contextmanager
def _video_folder(root: str | os.PathLike, video: str, label_maps: bool) -> Iterator[tuple[Path, Path]]:
    """``(temporary folder, root/video)``: what is written in the temporary folder replaces the video's frame PNGs
    when the block completes."""
    root = Path(root)
    folder = root / safe_component(video, "video name")
    partial, previous = root / f".{video}.partial", root / f".{video}.previous"
    _check_replaceable(folder, partial, previous)
    root.mkdir(parents=True, exist_ok=True)
    _remove_written(partial, label_maps)  # left by a run that was cut off
    partial.mkdir()
    try:
        yield partial, folder
        _swap_in(partial, folder, previous, label_maps)
    finally:
        _remove_written(partial, label_maps)


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


def _written_and_kept(folder: Path, label_maps: bool) -> tuple[list[Path], list[Path]]:
    """``(frame PNGs this writer writes, paths relative to folder of everything else)`` in a video folder."""
    written, kept = [], []
    for entry in sorted(folder.iterdir()):
        if label_maps and _is_frame_png(entry):
            written.append(entry)
        elif entry.is_symlink() or not entry.is_dir():
            kept.append(Path(entry.name))
            continue
        for item in sorted(entry.iterdir()):
            if _is_frame_png(item):
                written.append(item)
            else:
                kept.append(Path(entry.name, item.name))
    return written, kept


def _swap_in(partial: Path, folder: Path, previous: Path, label_maps: bool) -> None:
    """Make the complete ``partial`` the video's folder, moving the files a user kept in the old one across."""
    if not folder.exists():
        partial.rename(folder)
        return
    _, kept = _written_and_kept(folder, label_maps)
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
    _remove_written(previous, label_maps)


def _remove_written(folder: Path, label_maps: bool) -> None:
    """Delete ``folder`` if it holds only what this writer writes; else stop, naming what it holds besides."""
    if not folder.exists():
        return
    written, kept = _written_and_kept(folder, label_maps)
    for path in written:
        path.unlink()
    holding_kept = {path.parts[0] for path in kept}
    for obj in folder.iterdir():
        if obj.name not in holding_kept:
            obj.rmdir()
    if kept:
        raise FileExistsError(f"{folder / kept[0]}: not written by this writer, left in {folder}; move it away")
    folder.rmdir()


def _empty_png(frame_size: tuple[int, int], palette: bytes | None) -> bytes:
    """The PNG of an empty mask (gray, or with ``palette``), encoded once and copied to every frame that needs it."""
    buffer = io.BytesIO()
    image = Image.fromarray(np.zeros(frame_size, np.uint8))
    if palette is not None:
        image.putpalette(palette)
    image.save(buffer, format="PNG")
    return buffer.getvalue()
