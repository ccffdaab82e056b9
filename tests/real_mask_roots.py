"""DAVIS 2017 and YouTube-VOS roots made from the real DAVIS-format masks of ``../shared/fixtures/davis_real``.

OSVOS's published masks (real DAVIS palette PNGs) are the ground truth of the first ``NUM_FRAMES`` frames of each
sequence, with object 1 of bike-packing removed from its first ``LATE_FRAMES`` frames: an object that appears after
the first frame, as lab-coat's in DAVIS 2017 val (the first frame still holds object 2, so DAVIS scores both).
The JPEG frames are made here (the fixture has none): a grey texture with each object a shade of its own, the
masks' content. RVOS's masks (labels above the sequence's objects set to 0, as the official evaluator requires)
are the predictions.

The YouTube-VOS root is bike-packing as a ``valid`` video: JPEGs named every 5th frame (``00000``, ``00005``...),
a PNG only where an object first appears (object 2 on frame 0, object 1 alone on frame 3) and ``meta.json``
listing each object's frames from there on, as YouTube-VOS's valid split has them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

SEQUENCES = ("bike-packing", "blackswan")
NUM_FRAMES = 8
LATE_OBJECT = ("bike-packing", 1)
LATE_FRAMES = 3
"""Object 1 of bike-packing is absent from frames 0..2 of the ground truth."""
RESOLUTION = "480p"


def _labels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _save_like(source: Path, labels: np.ndarray, path: Path) -> None:
    """``labels`` as a palette PNG with ``source``'s palette."""
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(Image.open(source).getpalette())
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def ground_truth(fixtures: Path, sequence: str, frame: int) -> np.ndarray:
    """The ground-truth label map of ``frame`` (OSVOS's, with the late object removed from the first frames)."""
    labels = _labels(fixtures / "davis_real" / "osvos" / sequence / f"{frame:05d}.png").copy()
    if (sequence, frame < LATE_FRAMES) == (LATE_OBJECT[0], True):
        labels[labels == LATE_OBJECT[1]] = 0
    return labels


def prediction(fixtures: Path, sequence: str, frame: int) -> np.ndarray:
    """RVOS's label map of ``frame`` with labels above the sequence's object count set to 0."""
    labels = _labels(fixtures / "davis_real" / "rvos" / sequence / f"{frame:05d}.png").copy()
    labels[labels > ground_truth(fixtures, sequence, 0).max()] = 0
    return labels


def write_davis_root(fixtures: Path, root: Path) -> Path:
    """``root`` as DAVIS 2017 (JPEGImages/480p, Annotations/480p, ImageSets/2017/val.txt); returns it."""
    rng = np.random.default_rng(0)
    for sequence in SEQUENCES:
        for frame in range(NUM_FRAMES):
            source = fixtures / "davis_real" / "osvos" / sequence / f"{frame:05d}.png"
            labels = ground_truth(fixtures, sequence, frame)
            _save_like(source, labels, root / "Annotations" / RESOLUTION / sequence / f"{frame:05d}.png")
            shade = 90 + 60 * labels.astype(np.int16) + rng.integers(0, 20, labels.shape)
            rgb = np.repeat(np.clip(shade, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
            jpeg = root / "JPEGImages" / RESOLUTION / sequence / f"{frame:05d}.jpg"
            jpeg.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(jpeg, quality=95)
    sets = root / "ImageSets" / "2017"
    sets.mkdir(parents=True)
    (sets / "val.txt").write_text("".join(f"{sequence}\n" for sequence in SEQUENCES))
    return root


def write_predictions(fixtures: Path, folder: Path) -> Path:
    """RVOS's masks as DAVIS results: ``folder/<sequence>/<frame>.png``; returns ``folder``."""
    for sequence in SEQUENCES:
        for frame in range(NUM_FRAMES):
            source = fixtures / "davis_real" / "rvos" / sequence / f"{frame:05d}.png"
            _save_like(source, prediction(fixtures, sequence, frame), folder / sequence / f"{frame:05d}.png")
    return folder


YTVOS_STRIDE = 5
"""YouTube-VOS frames are every 5th frame of the video, named by their number."""


def ytvos_name(frame: int) -> str:
    return f"{YTVOS_STRIDE * frame:05d}"


def write_youtube_vos_root(fixtures: Path, root: Path) -> Path:
    """``root/valid`` as YouTube-VOS (JPEGImages, Annotations, meta.json) holding bike-packing; returns ``root``."""
    sequence = LATE_OBJECT[0]
    split = root / "valid"
    first_frames = {}
    for frame in range(NUM_FRAMES):
        labels = ground_truth(fixtures, sequence, frame)
        for label in np.unique(labels):
            first_frames.setdefault(int(label), frame)
        jpeg = split / "JPEGImages" / sequence / f"{ytvos_name(frame)}.jpg"
        jpeg.parent.mkdir(parents=True, exist_ok=True)
        shade = (90 + 60 * labels.astype(np.int16)).astype(np.uint8)
        Image.fromarray(np.repeat(shade[..., None], 3, axis=2)).save(jpeg, quality=95)
    source = fixtures / "davis_real" / "osvos" / sequence / "00000.png"
    objects = {}
    for label, first in sorted(first_frames.items()):
        if label == 0:
            continue
        png = split / "Annotations" / sequence / f"{ytvos_name(first)}.png"
        existing = np.asarray(Image.open(png)) if png.exists() else 0
        labels = ground_truth(fixtures, sequence, first)
        _save_like(source, np.where(labels == label, label, existing), png)
        objects[str(label)] = {"category": "person", "frames": [ytvos_name(t) for t in range(first, NUM_FRAMES)]}
    (split / "meta.json").write_text(json.dumps({"videos": {sequence: {"objects": objects}}}))
    return root
