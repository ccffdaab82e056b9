"""Semi-supervised VOS inference over a benchmark, as Meta's ``tools/vos_inference.py`` runs it, with every object of a
video batched in one session.

Inputs are Meta's: ``base_video_dir/<video>/<frame>.jpg`` and ground-truth masks in ``input_mask_dir/<video>/``,
either palette PNGs ``<frame>.png`` (DAVIS, MOSE, LVOS, YouTube-VOS) or per-object folders ``<object>/<frame>.png``
(SA-V). Outputs are Meta's files: palette PNGs with the input palette (the DAVIS palette when the input has none), or
per-object folders ``%03d/<frame>.png`` holding 0/1 palette PNGs.

The protocol is Meta's. By default every object is prompted with its mask on the video's first annotated frame
(with ``use_all_masks``, on every annotated frame too) and tracked forward from there; the output masks of a palette
run do not overlap (each pixel goes to the object with the highest logit, as Meta's ``non_overlap_masks``). With
``track_later_objects`` each object starts on its first non-empty mask and is tracked from there alone, as Meta
does by resetting and re-propagating the video once per object; here the objects still share one pass through the
video, joining it on their first frame, so each frame is encoded once. Post-processing (hole filling, the multimask
fallback) is the predictor's choice: off in Meta's benchmark runs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .bounded_files import read_image_file
from .frame_names import is_number_name, object_name
from .frames import FrameSource, open_frames
from .masks import MaskFormatError, davis_palette
from .safe_names import safe_component

ABSENT_LOGIT = -1024.0
"""The score of an object on a frame before it starts (Meta's fill value)."""
OVERLAP_SUPPRESSED_LOGIT = -10.0
"""Where another object scores higher, an object's logit is lowered to at most this (Meta's non-overlap rule)."""
FRAME_SUFFIXES = (".jpg", ".jpeg")
LATER_OBJECTS_FLAG = "--track_object_appearing_later_in_video"


@dataclass(frozen=True)
class VosOptions:
    """Meta's switches: the logit threshold, prompts on every annotated frame, objects that appear later."""

    score_thresh: float = 0.0
    use_all_masks: bool = False
    track_later_objects: bool = False


class VosInputError(ValueError):
    """A video's frames or masks do not fit the protocol; the message names the files and the fix."""


# ---------------------------------------------------------------------------------------------------- inputs


class AnnotatedVideo:
    """One video of Meta's input layout: a JPEG folder and its annotation folder (palette PNGs or per-object
    folders), frames in the order of their numeric names."""

    def __init__(self, video_id: str, frames_folder: Path, annotations_folder: Path, per_object: bool) -> None:
        self.video_id = safe_component(video_id, "video name")
        self.frames_folder = Path(frames_folder)
        self.annotations_folder = Path(annotations_folder)
        self.per_object = per_object
        if not self.frames_folder.is_dir():
            raise FileNotFoundError(f"{self.frames_folder}: no frames folder for video {video_id}")
        if not self.annotations_folder.is_dir():
            raise FileNotFoundError(
                f"{self.annotations_folder}: no annotation folder for video {video_id}; the input masks of each video "
                "go in <input_mask_dir>/<video>/"
            )
        names = [p.stem for p in self.frames_folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES]
        if not names:
            raise VosInputError(f"{self.frames_folder}: no .jpg frames; point --base_video_dir at the JPEG folders")
        unnumbered = [name for name in names if not is_number_name(name)]
        if unnumbered:
            raise VosInputError(
                f"{self.frames_folder}: frame {unnumbered[0]!r} is not named by a number; VOS benchmarks name "
                "frames 00000.jpg, 00001.jpg, ... (their order is the numbers' order)"
            )
        self.frame_names = sorted(names, key=int)
        self._palette: list[int] | None = None

    @property
    def object_names(self) -> list[str]:
        """Per-object layout: the object folders (each named by a number)."""
        names = sorted(p.name for p in self.annotations_folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        for name in names:
            if not is_number_name(name):
                raise VosInputError(
                    f"{self.annotations_folder / name}: object folders are named by the object's number (000, 001, "
                    "...); rename it"
                )
        return names

    def annotated_frames(self) -> list[int]:
        """Indices of the frames with a ground-truth PNG (of any object)."""
        if self.per_object:
            stems = {p.stem for name in self.object_names for p in (self.annotations_folder / name).glob("*.png")}
        else:
            stems = {p.stem for p in self.annotations_folder.glob("*.png")}
        return [index for index, name in enumerate(self.frame_names) if name in stems]

    def masks(self, frame: int) -> dict[int, np.ndarray]:
        """Object id -> bool mask on an annotated frame (palette: the objects present; per-object: the objects
        with a PNG there, empty or not)."""
        name = self.frame_names[frame]
        if not self.per_object:
            labels = self._read(self.annotations_folder / f"{name}.png")
            return {int(label): labels == label for label in np.unique(labels) if label != 0}
        found = {}
        for obj in self.object_names:
            path = self.annotations_folder / obj / f"{name}.png"
            if path.is_file():
                found[int(obj)] = self._read(path) > 0
        return found

    @property
    def palette(self) -> list[int] | bytes:
        """The input masks' palette (of the first one read), else the DAVIS palette, as Meta writes."""
        return self._palette or davis_palette()

    def frames(self) -> FrameSource:
        return open_frames(self.frames_folder)

    def _read(self, path: Path) -> np.ndarray:
        image = read_image_file(path, "mask", MaskFormatError)
        if image.mode not in ("P", "L", "1"):
            raise MaskFormatError(
                f"{path}: a {image.mode} image; input masks are single-channel PNGs (palette indices, or 0/255 per "
                "object)"
            )
        if self._palette is None and image.mode == "P":
            self._palette = image.getpalette()
        return np.asarray(image)


def list_videos(
    base_video_dir: str | os.PathLike,
    input_mask_dir: str | os.PathLike,
    video_list_file: str | os.PathLike | None = None,
    per_object: bool | None = None,
) -> list[AnnotatedVideo]:
    """The videos to run: those of ``video_list_file`` (one name a line, in its order) or every folder of
    ``base_video_dir`` (sorted). ``per_object`` None tells the annotation layout from each video's folder."""
    base, masks = Path(base_video_dir), Path(input_mask_dir)
    for folder, option in ((base, "--base_video_dir"), (masks, "--input_mask_dir")):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder ({option})")
    if video_list_file is not None:
        lines = Path(video_list_file).read_text().splitlines()
        names = list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    else:
        names = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise VosInputError(f"{video_list_file or base}: no videos listed")
    return [
        AnnotatedVideo(name, base / name, masks / name, _is_per_object(masks / name) if per_object is None else per_object)
        for name in names
    ]


def _is_per_object(annotations: Path) -> bool:
    """Whether an annotation folder holds per-object folders (SA-V) rather than palette PNGs (DAVIS)."""
    if not annotations.is_dir():
        return False  # reported by AnnotatedVideo
    has_pngs = any(annotations.glob("*.png"))
    has_folders = any(p.is_dir() and not p.name.startswith(".") for p in annotations.iterdir())
    if has_pngs and has_folders:
        raise VosInputError(
            f"{annotations}: holds both PNG masks and folders; keep either palette PNGs (<frame>.png) or per-object "
            "folders (<object>/<frame>.png), or pass --per_obj_png_file to read the folders"
        )
    return has_folders


# ---------------------------------------------------------------------------------------------------- protocol


def input_masks(video: AnnotatedVideo, options: VosOptions) -> dict[int, dict[int, np.ndarray]]:
    """Object id -> {frame index: mask} of the prompts the protocol gives the model, objects in id order."""
    annotated = video.annotated_frames()
    if not annotated:
        raise VosInputError(f"{video.annotations_folder}: no input masks (<frame>.png named like the frames)")
    prompts: dict[int, dict[int, np.ndarray]] = {}
    if options.track_later_objects:
        for frame in annotated:
            for obj, mask in video.masks(frame).items():
                if mask.any() and (obj not in prompts or options.use_all_masks):
                    prompts.setdefault(obj, {})[frame] = mask
        if not prompts:
            raise VosInputError(f"{video.annotations_folder}: every input mask is empty; nothing to track")
        return dict(sorted(prompts.items()))
    first = annotated[0]
    for frame in annotated:
        for obj, mask in video.masks(frame).items():
            if frame == first or (obj in prompts and options.use_all_masks):
                prompts.setdefault(obj, {})[frame] = mask
            elif obj not in prompts and mask.any():
                raise VosInputError(
                    f"{video.annotations_folder}: object {obj} first appears on frame {video.frame_names[frame]}, "
                    f"after the first annotated frame {video.frame_names[first]}; pass {LATER_OBJECTS_FLAG} to "
                    "track objects from the frame they appear on (LVOS, YouTube-VOS)"
                )
    if not prompts:
        raise VosInputError(
            f"{video.annotations_folder}: no object on the first annotated frame {video.frame_names[first]}; "
            f"pass {LATER_OBJECTS_FLAG} to track objects from the frame they appear on"
        )
    return dict(sorted(prompts.items()))


def exclusive_logits(logits: torch.Tensor) -> torch.Tensor:
    """(N, H, W) logits with every pixel left to its highest-scoring object (first one on ties): the others' logits
    there are lowered to at most OVERLAP_SUPPRESSED_LOGIT, so thresholds above it give masks that do not overlap."""
    if logits.shape[0] < 2:
        return logits
    winner = logits.argmax(dim=0, keepdim=True)
    owns = winner == torch.arange(logits.shape[0], device=logits.device)[:, None, None]
    return torch.where(owns, logits, logits.clamp(max=OVERLAP_SUPPRESSED_LOGIT))


def predict_video(
    predictor, video: AnnotatedVideo, options: VosOptions = VosOptions()
) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
    """(frame index, {object id: bool mask}) of every output frame, in order: from the first prompted frame on
    (with ``track_later_objects``: every frame, objects empty before they start). ``predictor`` is a
    :class:`~sam2_plugins.model.Sam2VideoPredictor`."""
    prompts = input_masks(video, options)
    objects = list(prompts)
    starts = {obj: min(frames) for obj, frames in prompts.items()}
    segments = sorted(set(starts.values()))
    frames = video.frames()
    session = predictor.init_video(frames)
    try:
        for obj, masks in prompts.items():
            for frame, mask in sorted(masks.items()):
                session.add_mask(frame, obj, mask)
        size = (session.video_height, session.video_width)
        if options.track_later_objects:
            empty = np.zeros(size, bool)
            for frame in range(segments[0]):
                yield frame, dict.fromkeys(objects, empty)
        for k, start in enumerate(segments):
            end = segments[k + 1] - 1 if k + 1 < len(segments) else session.num_frames - 1
            running = [obj for obj in objects if starts[obj] <= start]
            for frame, obj_ids, logits in session.propagate(start_frame=start, max_frames=end - start, obj_ids=running):
                scores = torch.full((len(objects), *size), ABSENT_LOGIT, device=logits.device)
                scores[[objects.index(obj) for obj in obj_ids]] = logits.float()
                if not video.per_object:
                    scores = exclusive_logits(scores)
                masks = (scores > options.score_thresh).cpu().numpy()
                yield frame, {obj: masks[i] for i, obj in enumerate(objects)}
    finally:
        session.close()
        frames.close()


# ---------------------------------------------------------------------------------------------------- outputs


def label_map(masks: Mapping[int, np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 labels of per-object masks; where masks overlap the lowest id wins (as Meta packs them)."""
    labels = np.zeros(size, np.uint8)
    for obj in sorted(masks, reverse=True):
        labels[masks[obj]] = obj
    return labels


def _write_png(path: Path, array: np.ndarray, palette: Sequence[int] | bytes) -> None:
    image = Image.fromarray(array)
    image.putpalette(palette)
    image.save(path)


def finished(output_mask_dir: str | os.PathLike, video: AnnotatedVideo) -> bool:
    """Whether the video's output folder is complete (outputs are moved into place only once complete)."""
    return (Path(output_mask_dir) / video.video_id).is_dir()


def write_video_predictions(
    output_mask_dir: str | os.PathLike,
    video: AnnotatedVideo,
    frames: Iterator[tuple[int, dict[int, np.ndarray]]],
) -> Path:
    """Write a video's output masks under ``output_mask_dir/<video>`` as they come, in a hidden partial folder moved
    into place once complete: a run cut off leaves no folder that looks finished. Returns the video's folder."""
    root = Path(output_mask_dir)
    folder = root / video.video_id
    if os.path.lexists(folder):
        raise FileExistsError(f"{folder}: already there; remove it to predict this video again")
    partial = root / f".{video.video_id}.partial"
    _remove_partial(partial)
    partial.mkdir(parents=True)
    palette = None
    for frame, masks in frames:
        palette = palette or video.palette
        name = f"{video.frame_names[frame]}.png"
        if not video.per_object:
            size = next(iter(masks.values())).shape
            _write_png(partial / name, label_map(masks, size), palette)
            continue
        for obj, mask in masks.items():
            (partial / object_name(obj)).mkdir(exist_ok=True)
            _write_png(partial / object_name(obj) / name, mask.astype(np.uint8), palette)
    partial.rename(folder)
    return folder


def _remove_partial(partial: Path) -> None:
    """Delete what a cut-off run left in ``partial`` (PNGs and object folders only, which this module writes)."""
    if not os.path.lexists(partial):
        return
    foreign = [
        path
        for path in partial.rglob("*")
        if path.is_symlink() or not (path.is_dir() or (path.is_file() and path.suffix == ".png"))
    ]
    if partial.is_symlink() or not partial.is_dir() or foreign:
        raise FileExistsError(
            f"{foreign[0] if foreign else partial}: not written by sam2-plugins predict, in its working folder "
            f"{partial}; move it away"
        )
    shutil.rmtree(partial)


# ---------------------------------------------------------------------------------------------------- the run


def shard_of(videos: Sequence[AnnotatedVideo], shard: tuple[int, int] | None) -> list[AnnotatedVideo]:
    """Job ``i`` of ``n`` (``shard=(i, n)``, i from 0) gets videos i, i + n, i + 2n, ...; None: every video."""
    if shard is None:
        return list(videos)
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: the job index must be 0 to {count - 1}")
    return list(videos[index::count])


def predict_videos(
    predictor,
    videos: Sequence[AnnotatedVideo],
    output_mask_dir: str | os.PathLike,
    options: VosOptions = VosOptions(),
    report: Callable[[str], None] = print,
) -> list[Path]:
    """Run and write each video not finished yet (see :func:`finished`), reporting one line per video; returns the
    folders written."""
    written = []
    for number, video in enumerate(videos, start=1):
        prefix = f"{number}/{len(videos)} {video.video_id}"
        if finished(output_mask_dir, video):
            report(f"{prefix}: skipped, {Path(output_mask_dir) / video.video_id} is already there")
            continue
        written.append(write_video_predictions(output_mask_dir, video, predict_video(predictor, video, options)))
        report(f"{prefix}: done")
    return written
