"""Cell Tracking Challenge (CTC) sequences on disk: 16-bit label TIFFs, one per frame, and the lineage beside them.

A result folder (``01_RES``) holds ``mask000.tif``... and ``res_track.txt``; a ground-truth folder (``01_GT``) holds
``TRA/man_track000.tif``... with ``TRA/man_track.txt`` and, for some frames, ``SEG/man_seg000.tif``...; the images are
``01/t000.tif``.... Frame numbers have three digits, four from 1000 frames on. Label ``L`` is on every frame of its
track's ``B..E`` range and on no other (see :mod:`sam2_plugins.lineage`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .lineage import MAX_TRACK_ID, Lineage, LineageError, Track

RESULT_TRACK_FILE = "res_track.txt"
GROUND_TRUTH_TRACK_FILE = "man_track.txt"
RESULT_MASK_PREFIX = "mask"
TRACKING_MASK_PREFIX = "man_track"
SEGMENTATION_MASK_PREFIX = "man_seg"
IMAGE_PREFIX = "t"


class CtcFormatError(ValueError):
    """A CTC folder or label image that breaks the format; the message names the file and the fix."""


@dataclass(frozen=True)
class CtcSequence:
    """One sequence of a CTC dataset folder: its images (``01``), ground truth (``01_GT``) and result (``01_RES``),
    the last two None when absent."""

    name: str
    images: Path
    ground_truth: Path | None
    result: Path | None

    def image_paths(self) -> list[Path]:
        """The ``tTTT.tif`` images in frame order; a missing number is an error naming it."""
        return mask_paths(self.images, IMAGE_PREFIX)

    def images_array(self) -> TiffFiles:
        """The images as one ``(T, H, W)`` (or ``(T, Z, H, W)``) array read one file at a time."""
        return TiffFiles(self.image_paths())


class TiffFiles:
    """TIFF files of one shape as a ``(T, ...)`` array that reads a file only when indexed (what
    :class:`sam2_plugins.frames.ArraySource` takes); a file of another shape is an error naming it."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        first = read_tiff(self.paths[0])
        self.shape = (len(self.paths), *first.shape)
        self.ndim = len(self.shape)
        self.dtype = first.dtype

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, selection: int | tuple) -> np.ndarray:
        index, *rest = selection if isinstance(selection, tuple) else (selection,)
        array = read_tiff(self.paths[index])
        if array.shape != self.shape[1:]:
            raise CtcFormatError(
                f"{self.paths[index]}: shape {array.shape} but {self.paths[0].name} has shape {self.shape[1:]}; "
                "every image of a sequence has one size"
            )
        return array[tuple(rest)]


def find_ctc_sequences(root: str | os.PathLike) -> list[CtcSequence]:
    """The sequences of a CTC dataset folder (``Fluo-N2DH-SIM+``: ``01``, ``01_GT``, ``01_RES``, ``02``...), in order.

    A folder without a numbered image folder is an error saying what it should hold.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; pass a CTC dataset folder holding 01, 01_GT, ...")
    sequences = []
    for images in sorted(path for path in root.iterdir() if path.is_dir() and re.fullmatch("[0-9]+", path.name)):
        ground_truth = root / f"{images.name}_GT"
        result = root / f"{images.name}_RES"
        sequences.append(
            CtcSequence(
                images.name,
                images,
                ground_truth if (ground_truth / "TRA" / GROUND_TRUTH_TRACK_FILE).is_file() else None,
                result if (result / RESULT_TRACK_FILE).is_file() else None,
            )
        )
    if not sequences:
        raise CtcFormatError(
            f"{root}: no sequence folder (01, 02, ... holding t000.tif ...); pass a CTC dataset folder such as "
            "Fluo-N2DH-SIM+ that holds 01 and 01_GT"
        )
    return sequences


def frame_file_name(prefix: str, frame: int, num_frames: int) -> str:
    """``<prefix><frame>.tif`` with three digits, or four (or more) when the sequence is that long."""
    digits = max(3, len(str(max(num_frames - 1, 0))))
    return f"{prefix}{frame:0{digits}d}.tif"


def write_ctc(
    folder: str | os.PathLike,
    label_frames: Sequence[np.ndarray],
    lineage: Lineage,
    ground_truth: bool = False,
) -> Path:
    """Write a tracking result (``mask%03d.tif`` + ``res_track.txt``) or, with ``ground_truth``, a TRA folder
    (``man_track%03d.tif`` + ``man_track.txt``) to ``folder``; the labels must agree with ``lineage``.

    Every file is written beside its place and renamed into it; the track file comes last, so a folder with a track
    file is complete. Mask files of a longer earlier sequence in ``folder`` are an error (they would join the new one).
    """
    from .atomic import write_error

    folder = Path(folder)
    prefix, track_file = _names(ground_truth)
    frames = [_as_labels(frame, f"label frame {index}") for index, frame in enumerate(label_frames)]
    check_labels(frames, lineage, source=str(folder))
    num_frames = len(frames)
    names = [frame_file_name(prefix, index, num_frames) for index in range(num_frames)]
    if folder.is_dir():
        stale = sorted(set(_numbered_files(folder, prefix).values()) - set(names))
        if stale:
            raise CtcFormatError(
                f"{folder}: holds {', '.join(stale[:5])}{' ...' if len(stale) > 5 else ''} from another sequence; "
                "they would be read as part of this one: write to an empty folder or remove them"
            )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(folder, error) from error
    for name, frame in zip(names, frames):
        write_label_image(folder / name, frame)
    lineage.write(folder / track_file)
    return folder


def write_ctc_result(
    folder: str | os.PathLike, label_frames: Sequence[np.ndarray], parents: Mapping[int, int] | None = None
) -> Path:
    """Write label frames as a CTC result: each label's track runs from its first to its last frame, a label lost
    for some frames continues as a child track (:func:`split_gaps`), and ``parents`` (label -> parent label) gives
    the divisions. Returns ``folder``."""
    frames, parents = split_gaps(label_frames, parents)
    return write_ctc(folder, frames, lineage_from_labels(frames, parents))


def read_ctc(folder: str | os.PathLike) -> tuple[list[np.ndarray], Lineage]:
    """The label frames and lineage of a CTC result folder (``mask*.tif`` + ``res_track.txt``), a TRA folder
    (``man_track*.tif`` + ``man_track.txt``) or a ground-truth folder holding ``TRA``; they must agree."""
    paths, lineage, folder = ctc_tracking_files(folder)
    frames = [read_label_image(path) for path in paths]
    check_labels(frames, lineage, source=str(folder))
    return frames, lineage


def ctc_tracking_files(folder: str | os.PathLike) -> tuple[list[Path], Lineage, Path]:
    """What :func:`read_ctc` reads, for reading one frame at a time: the label images in frame order, the lineage
    and the folder holding them. Check the labels against the lineage with :func:`check_present_labels`."""
    folder = _tracking_folder(Path(folder))
    prefix, track_file = _names((folder / GROUND_TRUTH_TRACK_FILE).is_file())
    return mask_paths(folder, prefix), Lineage.read(folder / track_file), folder


def read_ctc_segmentation(folder: str | os.PathLike) -> dict[int, np.ndarray]:
    """The ground-truth segmentation of a ``SEG`` folder (or a ground-truth folder holding one): frame -> labels
    (for 3D ground truth given as slices, the slices stacked)."""
    folder = Path(folder)
    if (folder / "SEG").is_dir():
        folder = folder / "SEG"
    return {frame: segmentation.read()[0] for frame, segmentation in segmentation_paths(folder).items()}


@dataclass(frozen=True)
class SegmentationFrame:
    """The SEG ground truth of one frame: a label image (``man_segTTT.tif``) or, for 3D data, some z-slices of it
    (``man_seg_TTT_ZZZ.tif``: z -> file)."""

    path: Path | None = None
    slices: Mapping[int, Path] | None = None

    @property
    def name(self) -> Path:
        """A file of it, for messages."""
        return self.path if self.path is not None else next(iter(self.slices.values()))

    def read(self) -> tuple[np.ndarray, list[int] | None]:
        """The labels, and the z indices of the slices they are (None for a whole label image)."""
        if self.path is not None:
            return read_label_image(self.path), None
        depths = sorted(self.slices)
        return np.stack([read_label_image(self.slices[z]) for z in depths]), depths


def segmentation_paths(folder: Path) -> dict[int, SegmentationFrame]:
    """Frame -> its SEG ground truth files in a ``SEG`` folder, in frame order (none when it is not there)."""
    frames = {
        frame: SegmentationFrame(path=folder / name)
        for frame, name in _numbered_files(folder, SEGMENTATION_MASK_PREFIX).items()
    }
    slices: dict[int, dict[int, Path]] = {}
    pattern = re.compile(rf"{SEGMENTATION_MASK_PREFIX}_([0-9]+)_([0-9]+)\.tif")
    for path in folder.iterdir() if folder.is_dir() else ():
        matched = pattern.fullmatch(path.name)
        if matched:
            slices.setdefault(int(matched.group(1)), {})[int(matched.group(2))] = path
    both = sorted(set(frames) & set(slices))
    if both:
        raise CtcFormatError(f"{folder}: frame {both[0]} has both a whole SEG image and slices; keep one")
    frames.update({frame: SegmentationFrame(slices=depths) for frame, depths in slices.items()})
    return dict(sorted(frames.items()))


def write_ctc_segmentation(folder: str | os.PathLike, label_frames: Mapping[int, np.ndarray], num_frames: int) -> Path:
    """Write the ground-truth segmentation of some frames as ``SEG/man_segTTT.tif`` files into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for frame, labels in sorted(label_frames.items()):
        write_label_image(
            folder / frame_file_name(SEGMENTATION_MASK_PREFIX, frame, num_frames),
            _as_labels(labels, f"segmentation of frame {frame}"),
        )
    return folder


def write_ctc_images(folder: str | os.PathLike, images: Sequence[np.ndarray]) -> Path:
    """Write a sequence's images as ``tTTT.tif`` files into ``folder`` (``01``, beside ``01_GT``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        write_label_image(folder / frame_file_name(IMAGE_PREFIX, index, len(images)), np.asarray(image))
    return folder


def write_ctc_ground_truth(
    root: str | os.PathLike,
    sequence: str,
    images: Sequence[np.ndarray],
    label_frames: Sequence[np.ndarray],
    lineage: Lineage,
    segmentation_frames: Iterable[int],
) -> Path:
    """Write a CTC sequence with its ground truth: ``root/<sequence>/tTTT.tif`` images, ``<sequence>_GT/TRA`` (every
    frame's labels and ``man_track.txt``) and ``<sequence>_GT/SEG`` (``segmentation_frames``' labels). Returns the
    ``<sequence>_GT`` folder."""
    from .safe_names import safe_component

    root = Path(root)
    sequence = safe_component(sequence, "CTC sequence name")
    ground_truth = root / f"{sequence}_GT"
    write_ctc(ground_truth / "TRA", label_frames, lineage, ground_truth=True)
    write_ctc_segmentation(
        ground_truth / "SEG", {frame: label_frames[frame] for frame in segmentation_frames}, len(label_frames)
    )
    write_ctc_images(root / sequence, images)
    return ground_truth


def mask_paths(folder: Path, prefix: str) -> list[Path]:
    """The ``<prefix>TTT.tif`` files of ``folder`` in frame order; a gap in the numbers is an error naming it."""
    numbered = _numbered_files(folder, prefix)
    if not numbered:
        raise CtcFormatError(f"{folder}: no {prefix}000.tif ... label images; a CTC folder holds one per frame")
    missing = sorted(set(range(max(numbered) + 1)) - set(numbered))
    if missing:
        name = frame_file_name(prefix, missing[0], max(numbered) + 1)
        raise CtcFormatError(
            f"{folder}: {name} is missing ({len(missing)} frame(s) in all); every frame from 0 needs a label image"
        )
    return [folder / numbered[frame] for frame in range(len(numbered))]


def labels_present(label_frames: Iterable[np.ndarray]) -> list[np.ndarray]:
    """The non-zero labels of each frame, sorted."""
    present = []
    for frame in label_frames:
        labels = np.unique(frame)
        present.append(labels[labels != 0])
    return present


def check_labels(label_frames: Sequence[np.ndarray], lineage: Lineage, source: str = "the sequence") -> None:
    """The CTC validator's rules: each track's label is on every frame of its range and on no other frame, and the
    lineage does not reach past the last frame. Errors name ``source``, the track and the frame."""
    check_present_labels(labels_present(label_frames), lineage, source)


def check_present_labels(present: Sequence[np.ndarray], lineage: Lineage, source: str = "the sequence") -> None:
    """:func:`check_labels` given each frame's non-zero labels (sorted) rather than the label images."""
    if not lineage:
        raise CtcFormatError(f"{source}: the lineage has no tracks; a CTC result needs at least one")
    if lineage.num_frames > len(present):
        track = max(lineage, key=lambda item: item.last)
        raise CtcFormatError(
            f"{source}: track {track.track_id} ends on frame {track.last} but there are {len(present)} frames"
        )
    for frame, labels in enumerate(present):
        expected = lineage.on_frame(frame)
        extra = np.setdiff1d(labels, expected)
        if extra.size:
            raise CtcFormatError(
                f"{source}: frame {frame} holds label {int(extra[0])}, which the lineage does not place on that "
                f"frame{_track_range(lineage, int(extra[0]))}; a track's label is on frames B..E of its line only"
            )
        missing = np.setdiff1d(expected, labels)
        if missing.size:
            track = lineage[int(missing[0])]
            raise CtcFormatError(
                f"{source}: track {track.track_id} runs from frame {track.first} to {track.last} but its label is "
                f"not on frame {frame}; a cell lost for some frames continues as a new track with it as parent"
            )


def lineage_from_labels(label_frames: Sequence[np.ndarray], parents: Mapping[int, int] | None = None) -> Lineage:
    """The lineage of label frames: each label's first and last frame, with its parent from ``parents`` (default
    none). A label missing from a frame inside its range is an error (CTC tracks have no gaps)."""
    parents = parents or {}
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for frame, labels in enumerate(labels_present(label_frames)):
        for label in labels.tolist():
            if label in last and last[label] != frame - 1:
                raise CtcFormatError(
                    f"label {label} is on frame {last[label]}, missing after it and back on frame {frame}; give the "
                    "part after the gap a new label with this one as its parent"
                )
            first.setdefault(label, frame)
            last[label] = frame
    try:
        return Lineage(Track(label, first[label], last[label], parents.get(label, 0)) for label in sorted(first))
    except LineageError as error:
        raise CtcFormatError(str(error)) from None


def split_gaps(
    label_frames: Sequence[np.ndarray], parents: Mapping[int, int] | None = None
) -> tuple[list[np.ndarray], dict[int, int]]:
    """Label frames where a label missing for some frames and back again continues under a new label (the next
    unused one) whose parent is the part before the gap, as CTC tracks must; and ``parents`` extended to the new
    labels, without links to or from labels on no frame. Frames without a change are returned as given. Pass the
    result to :func:`lineage_from_labels`."""
    present = labels_present(label_frames)
    next_label = max((int(labels[-1]) for labels in present if labels.size), default=0) + 1
    original_parents = dict(parents or {})
    parents = dict(original_parents)
    current: dict[int, int] = {}  # label in the input -> label it is written as now
    last_seen: dict[int, int] = {}
    frames = []
    for frame, (labels, image) in enumerate(zip(present, label_frames)):
        for label in labels.tolist():
            if label in last_seen and last_seen[label] < frame - 1:
                if next_label > MAX_TRACK_ID:
                    raise CtcFormatError(f"frame {frame}: no 16-bit label left to continue label {label} after a gap")
                parents[next_label] = current[label]
                current[label] = next_label
                next_label += 1
            current.setdefault(label, label)
            last_seen[label] = frame
        renamed = {label: current[label] for label in labels.tolist() if current[label] != label}
        if renamed:
            image = np.array(image, dtype=np.uint16)
            lookup = np.arange(int(labels[-1]) + 1, dtype=np.uint16)
            lookup[list(renamed)] = list(renamed.values())
            image = lookup[image]
        frames.append(image)
    gap_parents = {label: parent for label, parent in parents.items() if label not in original_parents}
    # a daughter's parent is the last part of its mother; links to or from a label on no frame go
    parents = {
        label: current[parent] for label, parent in original_parents.items() if label in current and parent in current
    }
    parents.update(gap_parents)
    return frames, parents


def read_tiff(path: Path) -> np.ndarray:
    """The array of a TIFF file (an image, a label image or a volume); errors name the file."""
    import tifffile

    try:
        return tifffile.imread(path)
    except (OSError, ValueError, tifffile.TiffFileError) as error:
        raise CtcFormatError(f"{path}: not a readable TIFF ({error}); rewrite it as a TIFF image") from None


def read_label_image(path: Path) -> np.ndarray:
    """An integer label image (labels 0..65535) from a TIFF file; errors name the file."""
    labels = read_tiff(path)
    if not np.issubdtype(labels.dtype, np.integer):
        raise CtcFormatError(f"{path}: holds {labels.dtype} values, not integer labels; save it as a 16-bit TIFF")
    if labels.size and (labels.min() < 0 or labels.max() > MAX_TRACK_ID):
        raise CtcFormatError(
            f"{path}: holds labels {int(labels.min())}..{int(labels.max())}; CTC labels are 0..{MAX_TRACK_ID} (16-bit)"
        )
    return labels


def write_label_image(path: Path, labels: np.ndarray) -> None:
    """Write ``labels`` (2D, or a 3D volume) to ``path`` as an uncompressed grey TIFF, beside its place and renamed
    into it."""
    import tifffile

    from .atomic import atomic_write, write_error

    try:
        with atomic_write(path) as partial:
            tifffile.imwrite(partial, labels, photometric="minisblack")  # a (Z, H, W) volume, not RGB planes
    except OSError as error:
        raise write_error(path, error) from error


def _as_labels(frame: np.ndarray, what: str) -> np.ndarray:
    frame = np.asarray(frame)
    if not np.issubdtype(frame.dtype, np.integer) and frame.dtype != bool:
        raise CtcFormatError(f"{what}: holds {frame.dtype} values; labels are integers 0..{MAX_TRACK_ID}")
    if frame.ndim not in (2, 3):
        raise CtcFormatError(f"{what}: has shape {frame.shape}; a label frame is 2D (H, W) or 3D (Z, H, W)")
    if frame.size and (frame.min() < 0 or frame.max() > MAX_TRACK_ID):
        raise CtcFormatError(
            f"{what}: holds labels {int(frame.min())}..{int(frame.max())}; CTC labels are 0..{MAX_TRACK_ID} (16-bit)"
        )
    return frame.astype(np.uint16, copy=False)


def _names(ground_truth: bool) -> tuple[str, str]:
    if ground_truth:
        return TRACKING_MASK_PREFIX, GROUND_TRUTH_TRACK_FILE
    return RESULT_MASK_PREFIX, RESULT_TRACK_FILE


def _tracking_folder(folder: Path) -> Path:
    if (folder / RESULT_TRACK_FILE).is_file() or (folder / GROUND_TRUTH_TRACK_FILE).is_file():
        return folder
    if (folder / "TRA" / GROUND_TRUTH_TRACK_FILE).is_file():
        return folder / "TRA"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    raise CtcFormatError(
        f"{folder}: no {RESULT_TRACK_FILE}, {GROUND_TRUTH_TRACK_FILE} or TRA/{GROUND_TRUTH_TRACK_FILE}; pass a CTC "
        "result folder (01_RES), a ground-truth folder (01_GT) or its TRA folder"
    )


def _numbered_files(folder: Path, prefix: str) -> dict[int, str]:
    """Frame number -> file name of the ``<prefix><digits>.tif`` files in ``folder``."""
    pattern = re.compile(rf"{re.escape(prefix)}([0-9]+)\.tif")
    numbered: dict[int, str] = {}
    for path in folder.iterdir() if folder.is_dir() else ():
        matched = pattern.fullmatch(path.name)
        if matched:
            frame = int(matched.group(1))
            if frame in numbered:
                raise CtcFormatError(f"{folder}: {numbered[frame]} and {path.name} are both frame {frame}; keep one")
            numbered[frame] = path.name
    return numbered


def _track_range(lineage: Lineage, label: int) -> str:
    if label not in lineage:
        return " (it has no line in the track file)"
    track = lineage[label]
    return f" (its line: {track.ctc_line()})"
