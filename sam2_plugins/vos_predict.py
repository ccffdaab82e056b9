"""Semi-supervised VOS inference over a benchmark, as Meta's ``tools/vos_inference.py`` runs it, with every object of a
video batched in one session.

Inputs are Meta's, ``base_video_dir/<video>/<frame>.jpg`` and ground-truth masks in ``input_mask_dir/<video>/``,
either palette PNGs ``<frame>.png`` (DAVIS, MOSE, LVOS, YouTube-VOS) or per-object folders ``<object>/<frame>.png``
(SA-V), or the videos of any layout of :mod:`sam2_plugins.datasets`. Outputs are Meta's files: palette PNGs with the
input palette (the DAVIS palette when the input has none), as label maps or per-object folders ``<object>/<frame>.png``
holding 0/1.

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
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .datasets import ObjectFolderVideo, PaletteVideo, VosVideo, get_layout
from .datasets.layout import listed_videos
from .masks import davis_palette
from .prompts import ObjectPrompt, apply_prompts, first_prompt_frames, propagate_prompted
from .sav_writer import write_palette_predictions, write_sav_predictions

if TYPE_CHECKING:
    import torch

    from .model import Sam2VideoPredictor

ABSENT_LOGIT = -1024.0
"""The score of an object on a frame before it starts (Meta's fill value)."""
OVERLAP_SUPPRESSED_LOGIT = -10.0
"""Where another object scores higher, an object's logit is lowered to at most this (Meta's non-overlap rule)."""
LATER_OBJECTS_FLAG = "--track_object_appearing_later_in_video"


@dataclass(frozen=True)
class VosOptions:
    """Meta's switches: the logit threshold, prompts on every annotated frame, objects that appear later."""

    score_thresh: float = 0.0
    use_all_masks: bool = False
    track_later_objects: bool = False


class VosInputError(ValueError):
    """A video's masks do not fit the protocol; the message names the folder and the fix."""


def list_videos(
    base_video_dir: str | os.PathLike,
    input_mask_dir: str | os.PathLike,
    video_list_file: str | os.PathLike | None = None,
    per_object: bool | None = None,
) -> list[VosVideo]:
    """Meta's inputs as videos: those of ``video_list_file`` (one name a line, in its order) or every folder of
    ``base_video_dir`` (sorted), each with its masks in ``input_mask_dir/<video>``: per-object folders when
    ``per_object``, palette PNGs when False, told from each video's folder when None."""
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

    def video(name: str) -> VosVideo:
        annotations = masks / name
        by_object = annotations.is_dir() and _holds_object_folders(annotations) if per_object is None else per_object
        return (ObjectFolderVideo if by_object else PaletteVideo)(name, base / name, annotations)

    return listed_videos(names, Path(video_list_file) if video_list_file is not None else base, video, on_skip=None)


def _holds_object_folders(annotations: Path) -> bool:
    """Whether an annotation folder holds per-object folders (SA-V) rather than palette PNGs (DAVIS)."""
    has_pngs = any(annotations.glob("*.png"))
    has_folders = any(p.is_dir() and not p.name.startswith(".") for p in annotations.iterdir())
    if has_pngs and has_folders:
        raise VosInputError(
            f"{annotations}: holds both PNG masks and folders; keep either palette PNGs (<frame>.png) or per-object "
            "folders (<object>/<frame>.png), or pass --per_obj_png_file to read the folders only"
        )
    return has_folders


def writes_label_maps(video: VosVideo) -> bool:
    """Whether the video's predictions are palette label maps, not per-object folders: as its layout writes them, or
    for Meta's inputs, in the form of its ground truth."""
    if video.layout:
        return not get_layout(video.layout).per_object_predictions
    return not isinstance(video, ObjectFolderVideo)


# ---------------------------------------------------------------------------------------------------- protocol


def input_prompts(video: VosVideo, options: VosOptions) -> list[ObjectPrompt]:
    """The mask prompts the protocol gives the model, objects in the video's order (see the module's docstring)."""
    where = getattr(video, "annotations_folder", f"video {video.video_id}")
    annotated = video.annotated_frames()
    if not annotated:
        raise VosInputError(f"{where}: no input masks (<frame>.png named like the frames)")
    prompted: dict[str, dict[int, np.ndarray]] = {}
    first = annotated[0]
    for frame in annotated:
        for obj, mask in video.masks(frame).items():
            if options.track_later_objects:
                if mask.any() and (obj not in prompted or options.use_all_masks):
                    prompted.setdefault(obj, {})[frame] = mask
            elif frame == first or (obj in prompted and options.use_all_masks):
                prompted.setdefault(obj, {})[frame] = mask
            elif obj not in prompted and mask.any():
                raise VosInputError(
                    f"{where}: object {obj} first appears on frame {video.frame_names[frame]}, "
                    f"after the first annotated frame {video.frame_names[first]}; pass {LATER_OBJECTS_FLAG} to "
                    "track objects from the frame they appear on (LVOS, YouTube-VOS)"
                )
    if not prompted:
        raise VosInputError(
            f"{where}: no object to track on the first annotated frame "
            f"{video.frame_names[first]}"
            + ("" if options.track_later_objects else f"; pass {LATER_OBJECTS_FLAG} to start objects where they appear")
        )
    order = [obj for obj in video.object_ids if obj in prompted]
    return [ObjectPrompt(frame, obj, mask=mask) for obj in order for frame, mask in sorted(prompted[obj].items())]


def exclusive_logits(logits: torch.Tensor) -> torch.Tensor:
    """(N, H, W) logits with every pixel left to its highest-scoring object (first one on ties): the others' logits
    there are lowered to at most OVERLAP_SUPPRESSED_LOGIT, so thresholds above it give masks that do not overlap."""
    import torch

    if logits.shape[0] < 2:
        return logits
    winner = logits.argmax(dim=0, keepdim=True)
    owns = winner == torch.arange(logits.shape[0], device=logits.device)[:, None, None]
    return torch.where(owns, logits, logits.clamp(max=OVERLAP_SUPPRESSED_LOGIT))


def predict_video(
    predictor: Sam2VideoPredictor, video: VosVideo, options: VosOptions = VosOptions()
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(frame index, {object id: bool mask}) of each frame from the first prompted one on, every prompted object on
    every frame (empty before it starts); label-map videos get masks that do not overlap."""
    import torch

    prompts = input_prompts(video, options)
    starts = first_prompt_frames(prompts)
    objects = list(starts)
    with video.frames() as frames:
        session = predictor.init_video(frames)
        try:
            apply_prompts(session, prompts)
            size = (session.video_height, session.video_width)
            for frame, obj_ids, logits in propagate_prompted(session, starts):
                scores = torch.full((len(objects), *size), ABSENT_LOGIT, device=logits.device)
                scores[[objects.index(obj) for obj in obj_ids]] = logits.float()
                if writes_label_maps(video):
                    scores = exclusive_logits(scores)
                masks = (scores > options.score_thresh).cpu().numpy()
                yield frame, {obj: masks[i] for i, obj in enumerate(objects)}
        finally:
            session.close()


def write_video_predictions(
    output_mask_dir: str | os.PathLike, video: VosVideo, frames: Iterator[tuple[int, Mapping[str, np.ndarray]]]
) -> Path:
    """Write a video's masks as they come as ``output_mask_dir/<video>``, in Meta's form: palette PNGs with the input
    palette (the DAVIS one if it has none), per object or as label maps like the input; frames given none are empty.
    The folder is written under a temporary name and moved into place once complete. Returns it."""
    palette = video.palette or davis_palette()
    names = video.frame_names
    if writes_label_maps(video):
        with write_palette_predictions(output_mask_dir, video.video_id, names, video.frame_size, palette) as writer:
            for frame, masks in frames:
                writer.add_frame(frame, masks)
        return writer.destination
    with write_sav_predictions(
        output_mask_dir, video.video_id, len(names), video.frame_size, video.object_ids, names, palette
    ) as writer:
        for frame, masks in frames:
            for obj, mask in masks.items():
                writer.add(frame, obj, mask)
    return writer.destination


# ---------------------------------------------------------------------------------------------------- the run


def shard_of(videos: Sequence[VosVideo], shard: tuple[int, int] | None) -> list[VosVideo]:
    """Job ``i`` of ``n`` (``shard=(i, n)``, i from 0) gets videos i, i + n, i + 2n, ...; None: every video."""
    if shard is None:
        return list(videos)
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: give i/N with N >= 1 jobs and a job index i from 0 to N - 1")
    return list(videos[index::count])


def finished(output_mask_dir: str | os.PathLike, video: VosVideo) -> bool:
    """Whether the video's output folder is there (it is moved into place only once complete)."""
    return (Path(output_mask_dir) / video.video_id).is_dir()


def predict_videos(
    predictor: Sam2VideoPredictor,
    videos: Sequence[VosVideo],
    output_mask_dir: str | os.PathLike,
    options: VosOptions = VosOptions(),
    report: Callable[[str], None] = print,
) -> list[Path]:
    """Predict and write each video whose output is not there yet (a run cut off resumes where it stopped),
    reporting one line per video; returns the folders written."""
    written = []
    for number, video in enumerate(videos, start=1):
        prefix = f"[{number}/{len(videos)}] {video.video_id}"
        if finished(output_mask_dir, video):
            report(f"{prefix}: skipped, {Path(output_mask_dir) / video.video_id} is there from an earlier run")
            continue
        start = time.perf_counter()
        folder = write_video_predictions(output_mask_dir, video, predict_video(predictor, video, options))
        seconds = time.perf_counter() - start
        report(f"{prefix}: {len(video.frame_names)} frames in {seconds:.1f} s -> {folder}")
        written.append(folder)
    return written
