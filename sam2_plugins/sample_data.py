"""Deterministic synthetic VOS data: a few short videos of moving objects with their masklets, in every layout.

``write_sav_train`` writes the SA-V train layout (shards of ``{video_id}.mp4``, ``_manual.json``, ``_auto.json``),
``write_sav_val`` the val/test layout (``sav_val.txt``, 24 fps JPEG frames, 6 fps per-object PNG masks), and
``write_davis``, ``write_mose``, ``write_youtube_vos`` and ``write_lvos`` the same scenes in those benchmarks'
layouts (palette PNGs, object ``i`` as label ``i + 1``; see :mod:`sam2_plugins.datasets`). The
scenes carry what makes SA-V evaluation subtle: an object inside another (a hand on a person), one that first
appears after frame 0, and one hidden on an annotated frame. The same arguments always give the same files.
``synthetic_cells`` is a fluorescent-cell time-lapse (12-bit camera in uint16) with its ground-truth labels.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .datasets.davis import write_davis_label_maps
from .datasets.sav_eval import EVAL_ANNOTATIONS_FOLDER, EVAL_FRAMES_FOLDER, write_sav_object_masks
from .datasets.sav_train import ANNOTATION_STRIDE
from .frame_names import frame_name, object_name
from .masks import encode_rle
from .sav_masklets import sav_masklet_json
from .video_writer import write_mp4

DEFAULT_SIZE = (96, 128)
DEFAULT_NUM_FRAMES = 17
ENVIRONMENTS = ("Indoor", "Outdoor")
CAMERA_OFFSET = 100
"""Dark level of the synthetic cells' 12-bit camera."""
CAMERA_MAX = 4095


@dataclass(frozen=True)
class SyntheticVideo:
    """Frames ``(T, H, W, 3)`` uint8 and object masks ``(N, T, H, W)`` bool, as drawn."""

    video_id: str
    frames: np.ndarray
    masks: np.ndarray
    environment: str

    @property
    def annotated_frames(self) -> list[int]:
        return list(range(0, len(self.frames), ANNOTATION_STRIDE))


def ellipse(
    height: int, width: int, center: Sequence[float] | np.ndarray, radii: Sequence[float] | np.ndarray
) -> np.ndarray:
    """An ``(H, W)`` bool mask of the filled ellipse with ``center`` (row, column) and ``radii`` (rows, columns)."""
    rows, columns = np.ogrid[:height, :width]
    return ((rows - center[0]) / radii[0]) ** 2 + ((columns - center[1]) / radii[1]) ** 2 <= 1.0


def _smooth_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Low-frequency colour noise in [0, 1], (H, W, 3)."""
    coarse = rng.random((height // 16 + 2, width // 16 + 2, 3))
    image = Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
    return np.asarray(image, np.float32) / 255.0


def synthetic_video(
    video_id: str, seed: int, num_frames: int = DEFAULT_NUM_FRAMES, size: tuple[int, int] = DEFAULT_SIZE
) -> SyntheticVideo:
    """One scene: a 'person' with a 'hand' on it, an object entering at frame 5, one hidden on frame 8."""
    rng = np.random.default_rng(seed)
    height, width = size
    start = rng.uniform(0.3, 0.7, size=(3, 2)) * (height, width)
    velocity = rng.uniform(-1.2, 1.2, size=(3, 2))
    scale = min(height, width)
    person_radii = (0.22 * scale, 0.15 * scale)
    masks = np.zeros((4, num_frames, height, width), bool)
    for ti in range(num_frames):
        person_center = start[0] + velocity[0] * ti
        masks[0, ti] = ellipse(height, width, person_center, person_radii)
        hand_center = person_center + (0.12 * scale, 0.1 * scale)
        masks[1, ti] = ellipse(height, width, hand_center, (0.06 * scale, 0.06 * scale))
        if ti >= 5:
            entering = start[1] + velocity[1] * ti
            masks[2, ti] = ellipse(height, width, entering, (0.12 * scale, 0.18 * scale))
        if not 7 <= ti <= 9:
            masks[3, ti] = ellipse(height, width, start[2] + velocity[2] * ti, (0.1 * scale, 0.1 * scale))
    colours = rng.uniform(0.1, 0.95, size=(4, 3))
    background = _smooth_texture(rng, height, width)
    texture = _smooth_texture(rng, height, width)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for ti in range(num_frames):
        image = background.copy()
        for obj in range(len(masks)):
            image[masks[obj, ti]] = 0.8 * colours[obj] + 0.2 * texture[masks[obj, ti]]
        frames[ti] = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    return SyntheticVideo(video_id, frames, masks, ENVIRONMENTS[seed % 2])


def masklet_json(
    video_id: str,
    annotated_masks: Iterable[Sequence[np.ndarray]],
    masklet_type: str,
    num_frames: int,
    environment: str = ENVIRONMENTS[0],
) -> dict:
    """A ``{video_id}_{manual,auto}.json`` in the layout of Meta's SA-V files (:func:`sav_masklet_json`).

    ``annotated_masks[k][i]`` is masklet ``i`` on annotated frame ``k`` (video frame ``4 * k``), encoded one frame at
    a time. An auto file's stability scores differ for every frame and masklet, so a test can tell them apart.
    """
    rles = [[encode_rle(mask) for mask in frame_masks] for frame_masks in annotated_masks]
    count = len(rles[0])
    scores = [[round(1.0 - (k * count + i) / 100_000, 6) for i in range(count)] for k in range(len(rles))]
    return sav_masklet_json(
        video_id, rles, masklet_type, num_frames, scores if masklet_type == "auto" else None, environment
    )


def _annotated(video: SyntheticVideo, masks: np.ndarray) -> np.ndarray:
    """``(K, N, H, W)``: the masks ``(N, T, H, W)`` on the annotated frames, frame first as SA-V nests them."""
    return np.moveaxis(masks[:, video.annotated_frames], 1, 0)


def _auto_masks(video: SyntheticVideo) -> np.ndarray:
    """Automatic masklets: a static background patch and the person, present from frame 0 as SA-V's are."""
    num_frames, height, width = video.frames.shape[:3]
    patch = np.zeros((num_frames, height, width), bool)
    patch[:, : height // 4, : width // 4] = True
    return np.stack([patch, video.masks[0]])


def _video_ids(prefix_number: int, num_videos: int) -> list[str]:
    return [f"sav_{prefix_number + i:06d}" for i in range(num_videos)]


def write_sav_train(
    root: str | Path,
    num_videos: int = 3,
    num_frames: int = DEFAULT_NUM_FRAMES,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
    videos_per_shard: int = 2,
) -> list[SyntheticVideo]:
    """SA-V train layout under ``root``: ``sav_000/``, ``sav_001/`` ... each with mp4, manual and auto JSON."""
    root = Path(root)
    videos = [synthetic_video(vid, seed + i, num_frames, size) for i, vid in enumerate(_video_ids(1, num_videos))]
    for i, video in enumerate(videos):
        shard = root / f"sav_{i // videos_per_shard:03d}"
        shard.mkdir(parents=True, exist_ok=True)
        write_mp4(video.frames, shard / f"{video.video_id}.mp4")
        manual = masklet_json(video.video_id, _annotated(video, video.masks), "manual", num_frames, video.environment)
        (shard / f"{video.video_id}_manual.json").write_text(json.dumps(manual))
        if i % 3 != 2:  # as in SA-V, most but not all videos have automatic masklets
            auto_masks = _annotated(video, _auto_masks(video))
            auto = masklet_json(video.video_id, auto_masks, "auto", num_frames, video.environment)
            (shard / f"{video.video_id}_auto.json").write_text(json.dumps(auto))
    return videos


def write_sav_val(
    root: str | Path,
    num_videos: int = 2,
    num_frames: int = DEFAULT_NUM_FRAMES,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 100,
    split: str = "val",
) -> list[SyntheticVideo]:
    """SA-V val/test layout under ``root``: ``sav_{split}.txt``, ``JPEGImages_24fps``, ``Annotations_6fps``."""
    root = Path(root)
    videos = [synthetic_video(vid, seed + i, num_frames, size) for i, vid in enumerate(_video_ids(900001, num_videos))]
    root.mkdir(parents=True, exist_ok=True)
    (root / f"sav_{split}.txt").write_text("".join(f"{v.video_id}\n" for v in videos))
    for video in videos:
        frame_dir = root / EVAL_FRAMES_FOLDER / video.video_id
        frame_dir.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(video.frames):
            Image.fromarray(frame).save(frame_dir / f"{frame_name(t)}.jpg", quality=95)
        for obj, masks in enumerate(video.masks):
            annotations = {frame_name(t): masks[t] for t in video.annotated_frames}
            write_sav_object_masks(root / EVAL_ANNOTATIONS_FOLDER, video.video_id, object_name(obj), annotations)
    return videos


def label_map(video: SyntheticVideo, t: int, objects: Iterable[int] | None = None) -> np.ndarray:
    """Frame ``t``'s ``(H, W)`` uint8 label map (object ``i`` is label ``i + 1``), painted in drawing order so a
    label shows where its object is on top in the frame (the hand over the person); only ``objects`` when given."""
    labels = np.zeros(video.masks.shape[2:], np.uint8)
    for obj in range(len(video.masks)) if objects is None else objects:
        labels[video.masks[obj, t]] = obj + 1
    return labels


def write_davis(
    root: str | Path,
    num_videos: int = 2,
    num_frames: int = DEFAULT_NUM_FRAMES,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 200,
    split: str = "val",
) -> list[SyntheticVideo]:
    """DAVIS 2017 layout under ``root``: ``JPEGImages/480p``, ``Annotations/480p`` (every frame) and
    ``ImageSets/2017/{split}.txt``."""
    root = Path(root)
    videos = [synthetic_video(f"davis-{i + 1}", seed + i, num_frames, size) for i in range(num_videos)]
    for video in videos:
        frames = range(num_frames)
        _write_palette_video(root / "JPEGImages" / "480p", root / "Annotations" / "480p", video, frames, frames)
    (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2017" / f"{split}.txt").write_text("".join(f"{v.video_id}\n" for v in videos))
    return videos


def write_mose(
    root: str | Path,
    num_videos: int = 2,
    num_frames: int = DEFAULT_NUM_FRAMES,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 300,
    split: str = "valid",
) -> list[SyntheticVideo]:
    """MOSE layout under ``root/split``: ``JPEGImages``, ``Annotations`` on every frame (train) or on the first
    frame only (valid, test)."""
    folder = Path(root) / split
    videos = [synthetic_video(f"mose{i + 1:04d}", seed + i, num_frames, size) for i in range(num_videos)]
    annotated = range(num_frames) if split == "train" else [0]
    for video in videos:
        _write_palette_video(folder / "JPEGImages", folder / "Annotations", video, range(num_frames), annotated)
    return videos


def write_youtube_vos(
    root: str | Path,
    num_videos: int = 2,
    num_frames: int = DEFAULT_NUM_FRAMES,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 400,
    split: str = "valid",
) -> list[SyntheticVideo]:
    """YouTube-VOS layout under ``root/split``: frames named as every 5th frame of a 30 fps video (``00000``,
    ``00005``, ...), ``meta.json`` and ``Annotations``: train annotates every frame and lists each object's frames
    where it is visible; valid and test have a PNG only where an object first appears (holding the objects that
    appear there) and list each object's frames from its first appearance to the end."""
    folder = Path(root) / split
    videos = [synthetic_video(f"{seed + i:010x}", seed + i, num_frames, size) for i in range(num_videos)]
    meta: dict[str, dict] = {"videos": {}}
    for video in videos:
        names = [f"{5 * t:05d}" for t in range(num_frames)]
        visible = [np.flatnonzero(masks.any(axis=(1, 2))) for masks in video.masks]
        if split == "train":
            objects = {
                str(i + 1): {"category": "thing", "frames": [names[t] for t in ts]} for i, ts in enumerate(visible)
            }
            annotations = {t: None for t in range(num_frames)}
        else:
            objects = {str(i + 1): {"frames": names[ts[0] :]} for i, ts in enumerate(visible)}
            annotations = {}
            for i, ts in enumerate(visible):
                annotations.setdefault(int(ts[0]), []).append(i)
        meta["videos"][video.video_id] = {"objects": objects}
        _write_palette_video(
            folder / "JPEGImages", folder / "Annotations", video, range(num_frames), annotations, names
        )
    (folder / "meta.json").write_text(json.dumps(meta))
    return videos


def write_lvos(
    root: str | Path,
    num_videos: int = 2,
    num_frames: int = DEFAULT_NUM_FRAMES,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 500,
    split: str = "val",
) -> list[SyntheticVideo]:
    """LVOS layout under ``root/split``: frames numbered from 1 (``00000001``), ``Annotations`` on every frame and
    ``{split}_meta.json`` giving each object's frame_range (its first and last visible frame)."""
    folder = Path(root) / split
    videos = [synthetic_video(f"lvos{i + 1:04d}", seed + i, num_frames, size) for i in range(num_videos)]
    meta: dict[str, dict] = {"videos": {}}
    for video in videos:
        names = [f"{t + 1:08d}" for t in range(num_frames)]
        objects = {}
        for i, masks in enumerate(video.masks):
            ts = np.flatnonzero(masks.any(axis=(1, 2)))
            objects[str(i + 1)] = {"frame_range": {"start": names[ts[0]], "end": names[ts[-1]], "frame_nums": len(ts)}}
        meta["videos"][video.video_id] = {"objects": objects}
        frames = range(num_frames)
        _write_palette_video(folder / "JPEGImages", folder / "Annotations", video, frames, frames, names)
    (folder / f"{split}_meta.json").write_text(json.dumps(meta))
    return videos


def _write_palette_video(
    frames_root: Path,
    annotations_root: Path,
    video: SyntheticVideo,
    frames: Iterable[int],
    annotated: Iterable[int] | Mapping[int, Iterable[int] | None],
    names: Sequence[str] | None = None,
) -> None:
    """``frames_root/<video>/<name>.jpg`` for ``frames`` and a DAVIS palette PNG per ``annotated`` frame (a mapping
    gives the objects each holds, None for all)."""
    names = names or [frame_name(t) for t in range(len(video.frames))]
    (frames_root / video.video_id).mkdir(parents=True, exist_ok=True)
    for t in frames:
        Image.fromarray(video.frames[t]).save(frames_root / video.video_id / f"{names[t]}.jpg", quality=95)
    objects = annotated if isinstance(annotated, Mapping) else dict.fromkeys(annotated)
    label_maps = {names[t]: label_map(video, t, held) for t, held in objects.items()}
    write_davis_label_maps(annotations_root, video.video_id, label_maps)


def synthetic_cells(
    n_frames: int = 24, size: int = 256, n_cells: int = 6, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A ``(T, size, size)`` uint16 time-lapse of drifting, breathing elliptical cells and its ``(T, size, size)``
    uint16 labels (cell k is label k + 1).

    Cells start on a jittered grid and drift slowly enough that they never touch; intensities follow a 12-bit
    camera (offset 100, Poisson shot noise, read noise, photobleaching), so the data are dark when mapped over
    the full uint16 range.
    """
    if n_cells < 1 or n_frames < 1 or size < 32:
        raise ValueError(
            f"synthetic_cells: need n_frames >= 1, n_cells >= 1 and size >= 32, got {n_frames}, {n_cells}, {size}"
        )
    rng = np.random.default_rng(seed)
    grid = int(np.ceil(np.sqrt(n_cells)))
    cell_pitch = size / grid
    slots = rng.permutation(grid * grid)[:n_cells]
    centres = np.stack([(slots // grid + 0.5) * cell_pitch, (slots % grid + 0.5) * cell_pitch], axis=1)
    radii = rng.uniform(0.22, 0.32, size=(n_cells, 2)) * cell_pitch
    angles = rng.uniform(0, np.pi, size=n_cells)
    brightness = rng.uniform(1200, 2600, size=n_cells)
    drift_amplitude = 0.12 * cell_pitch
    phases = rng.uniform(0, 2 * np.pi, size=(n_cells, 2))

    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    image = np.empty((n_frames, size, size), dtype=np.uint16)
    labels = np.zeros((n_frames, size, size), dtype=np.uint16)
    for t in range(n_frames):
        phase = 2 * np.pi * t / max(n_frames, 2)
        signal = np.zeros((size, size))
        for k in range(n_cells):
            centre = centres[k] + drift_amplitude * np.sin(phase + phases[k])
            breathing = 1.0 + 0.08 * np.sin(2 * phase + phases[k, 0])
            distance = _elliptical_distance(rows, cols, centre, radii[k] * breathing, angles[k] + 0.3 * phase)
            inside = distance <= 1.0
            labels[t][inside] = k + 1
            signal += brightness[k] * np.exp(-1.5 * distance**2) * (distance <= 1.15)
        bleaching = np.exp(-0.01 * t)
        photons = rng.poisson(signal * bleaching)
        read_noise = rng.normal(0, 6, size=(size, size))
        image[t] = np.clip(CAMERA_OFFSET + photons + read_noise, 0, CAMERA_MAX).astype(np.uint16)
    return image, labels


def _elliptical_distance(
    rows: np.ndarray, cols: np.ndarray, centre: np.ndarray, radii: np.ndarray, angle: float
) -> np.ndarray:
    """Distance to ``centre`` in units of the rotated ellipse's radii (1 on its outline)."""
    dy, dx = rows - centre[0], cols - centre[1]
    along = dx * np.cos(angle) + dy * np.sin(angle)
    across = -dx * np.sin(angle) + dy * np.cos(angle)
    return np.sqrt((along / radii[1]) ** 2 + (across / radii[0]) ** 2)
