"""Cell Tracking Challenge sequences as FiftyOne video samples, and back.

A sequence becomes one video sample: an mp4 of its images for the App (16-bit images mapped to 8 bits as the frame
sources map them, by the sequence's percentiles), each frame keeping its TIFF in ``filepath``; frame fields
``ground_truth`` (from ``01_GT/TRA``) and ``ctc_result`` (from ``01_RES``) hold one Detection per cell, labelled
``cell``, whose ``index`` is the CTC track id, with a pixel-exact instance mask. The lineage goes on the sample as
``<field>_lineage``: one ``{track_id, first_frame, last_frame, parent}`` per track, in FiftyOne frame numbers
(CTC frame + 1). Exporting paints each frame's masks with their track ids; each track's range comes from the masks
and its parent from ``<field>_lineage``, so a video whose labels were edited still writes a valid CTC result.
"""

from __future__ import annotations

from pathlib import Path

import fiftyone as fo
import numpy as np

from sam2_plugins.atomic import atomic_write
from sam2_plugins.ctc import (
    CtcFormatError,
    CtcSequence,
    check_present_labels,
    ctc_tracking_files,
    labels_present,
    read_label_image,
    write_ctc_result,
)
from sam2_plugins.frames import ArraySource
from sam2_plugins.lineage import MAX_TRACK_ID, Lineage, Track
from sam2_plugins.safe_names import safe_component
from sam2_plugins.video_writer import write_mp4

from .masks import detection_to_mask, mask_to_detection
from .tracks import frame_size, video_name

GT_FIELD = "ground_truth"
RESULT_FIELD = "ctc_result"
CELL_LABEL = "cell"
TIME_LAPSE_FPS = 10
"""Frame rate of the App's mp4 of a time-lapse."""


def lineage_field(label_field: str) -> str:
    """The sample field holding the lineage of the tracks in frame field ``label_field``."""
    return f"{label_field}_lineage"


def lineage_to_field(lineage: Lineage) -> list[dict]:
    """The lineage as stored on a sample, in FiftyOne frame numbers."""
    return [
        {"track_id": t.track_id, "first_frame": t.first + 1, "last_frame": t.last + 1, "parent": t.parent}
        for t in lineage
    ]


def lineage_from_field(stored: list[dict] | None, where: str) -> Lineage:
    """The lineage stored by :func:`lineage_to_field`; errors name ``where``."""
    try:
        return Lineage(
            Track(
                int(track["track_id"]),
                int(track["first_frame"]) - 1,
                int(track["last_frame"]) - 1,
                int(track["parent"]),
            )
            for track in stored or []
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{where}: not a lineage of {{track_id, first_frame, last_frame, parent}} ({error})") from None


def detections_of_labels(labels: np.ndarray) -> fo.Detections:
    """One Detection per cell of a label image: label ``cell``, ``index`` = its track id, its exact mask."""
    detections = []
    for track_id in labels_present([labels])[0].tolist():
        detections.append(mask_to_detection(labels == track_id, label=CELL_LABEL, index=track_id))
    return fo.Detections(detections=detections)


def labels_of_detections(detections: fo.Detections | None, size: tuple[int, int], where: str) -> np.ndarray:
    """The uint16 label image of a frame's Detections, each painted with its ``index`` (later ones on top)."""
    labels = np.zeros((size[1], size[0]), np.uint16)
    for detection in detections.detections if detections is not None else []:
        if detection.index is None or not 1 <= detection.index <= MAX_TRACK_ID:
            raise ValueError(
                f"{where}: detection {detection.id} has index {detection.index!r}; CTC needs a track id 1.."
                f"{MAX_TRACK_ID} in each Detection's index (the object tracking id)"
            )
        if detection.mask is None and detection.get_field("mask_path") is None:
            raise ValueError(f"{where}: detection {detection.id} has no instance mask; CTC labels are masks")
        labels[detection_to_mask(detection, size)] = detection.index
    return labels


def ctc_video_sample(sequence: CtcSequence, dataset_folder: str, mp4_path: Path) -> fo.Sample:
    """The video sample of one CTC sequence (see the module docstring); writes its mp4 to ``mp4_path``. Images and
    label images are read one frame at a time."""
    images = sequence.images_array()
    if images.ndim != 3:
        raise CtcFormatError(
            f"{sequence.images}: images of shape {images.shape[1:]}; a video sample needs 2D images (3D sequences "
            "are not supported in FiftyOne)"
        )
    labelled = {}
    for field, folder in ((GT_FIELD, sequence.ground_truth), (RESULT_FIELD, sequence.result)):
        if folder is not None:
            paths, lineage, folder = ctc_tracking_files(folder)
            if len(paths) != len(images):
                raise CtcFormatError(
                    f"{folder}: {len(paths)} label images for {len(images)} images in {sequence.images}; they do not "
                    "belong together"
                )
            labelled[field] = (paths, lineage, folder)
    mp4_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(mp4_path) as partial:  # the App's video, by the frame sources' 16-bit mapping
        write_mp4(iter(ArraySource(images, name=str(sequence.images))), partial, fps=TIME_LAPSE_FPS)
    height, width = images.shape[1:]
    sample = fo.Sample(
        filepath=str(mp4_path),
        metadata=fo.VideoMetadata(
            frame_width=width,
            frame_height=height,
            frame_rate=TIME_LAPSE_FPS,
            total_frame_count=len(images),
            duration=len(images) / TIME_LAPSE_FPS,
            mime_type="video/mp4",
            size_bytes=mp4_path.stat().st_size,
        ),
        video_id=f"{dataset_folder}_{sequence.name}",
        ctc_dataset=dataset_folder,
        ctc_sequence=sequence.name,
        **{lineage_field(field): lineage_to_field(lineage) for field, (_, lineage, _) in labelled.items()},
    )
    present: dict[str, list[np.ndarray]] = {field: [] for field in labelled}
    for number, path in enumerate(images.paths, start=1):
        frame = fo.Frame(filepath=str(path))
        for field, (paths, _, _) in labelled.items():
            labels = read_label_image(paths[number - 1])
            if labels.shape != (height, width):
                raise CtcFormatError(
                    f"{paths[number - 1]}: shape {labels.shape} but the images are {height}x{width}; they do not "
                    "belong together"
                )
            frame[field] = detections_of_labels(labels)
            present[field].append(np.array(sorted(d.index for d in frame[field].detections), dtype=np.int64))
        sample.frames[number] = frame
    for field, (_, lineage, folder) in labelled.items():
        check_present_labels(present[field], lineage, source=str(folder))
    return sample


def result_folder(sample: fo.Sample, output_dir: Path) -> Path:
    """Where a video's CTC result goes: ``<output_dir>/<ctc_dataset>/<ctc_sequence>_RES`` for an imported sequence,
    else ``<output_dir>/<video_id>/01_RES``; names checked to stay single folder names."""
    dataset_folder = sample["ctc_dataset"] if sample.has_field("ctc_dataset") else None
    sequence = sample["ctc_sequence"] if sample.has_field("ctc_sequence") else None
    if not dataset_folder or not sequence:
        dataset_folder, sequence = video_name(sample), "01"
    dataset_folder = safe_component(dataset_folder, f"CTC dataset name of sample {sample.id}")
    sequence = safe_component(sequence, f"CTC sequence name of sample {sample.id}")
    return output_dir / dataset_folder / f"{sequence}_RES"


def write_sample_ctc(sample: fo.Sample, label_field: str, folder: Path) -> Path:
    """Write the Detections of ``label_field`` on every frame of a video sample as a CTC result in ``folder``."""
    size = frame_size(sample)
    name = video_name(sample)
    detections = {number: frame[label_field] for number, frame in sample.frames.items() if frame.has_field(label_field)}
    frames = [
        labels_of_detections(detections.get(number), size, f"video {name}, frame {number}")
        for number in range(1, sample.metadata.total_frame_count + 1)
    ]
    stored = sample[lineage_field(label_field)] if sample.has_field(lineage_field(label_field)) else None
    parents = {track.track_id: track.parent for track in lineage_from_field(stored, f"video {name}") if track.parent}
    try:
        return write_ctc_result(folder, frames, parents)
    except CtcFormatError as error:
        raise CtcFormatError(f"video {name}, field {label_field}: {error}") from None
