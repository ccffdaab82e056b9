"""Mask I/O: COCO run-length encoding (validated, decoded with pycocotools), PNG masks (binary and palette), bounds."""

from __future__ import annotations

import functools
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

from .bounded_files import max_image_bytes, open_image, open_regular_file
from .png_decoder import decode_png


class MaskFormatError(ValueError):
    """A mask file or RLE is malformed; the message names where and how to fix it."""


def rle_counts(rle: dict, where: str) -> list[int]:
    """The run lengths of a COCO RLE (compressed string or list form), checked to cover ``height * width``."""
    try:
        height, width = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as error:
        raise MaskFormatError(f"{where}: not a COCO RLE (needs 'size': [h, w] and 'counts'): {error}") from error
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    runs = _parse_compressed_counts(counts, where) if isinstance(counts, str) else [int(c) for c in counts]
    if any(run < 0 for run in runs) or sum(runs) != height * width:
        raise MaskFormatError(
            f"{where}: RLE runs cover {sum(runs)} pixels, not {height}x{width}={height * width}; "
            "the RLE is truncated or corrupt: re-export the annotation"
        )
    return runs


def _parse_compressed_counts(text: str, where: str) -> list[int]:
    """Run lengths from COCO's compressed string: 5-bit little-endian groups (offset 48, bit 6 = more, bit 5 of
    the last group = sign), each run after the second stored as a difference to the run two before."""
    runs: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            if position == len(text):
                raise MaskFormatError(f"{where}: RLE counts string ends mid-number; it is truncated: re-export it")
            group = ord(text[position]) - 48
            if not 0 <= group < 64:
                raise MaskFormatError(f"{where}: RLE counts hold the invalid character {text[position]!r}")
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            position += 1
            shift += 5
            if not more and group & 0x10:
                value -= 1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def decode_rle(rle: dict, where: str = "RLE") -> np.ndarray:
    """A COCO RLE as an ``(H, W)`` bool mask, validated first (a truncated RLE is an error, not garbage)."""
    rle_counts(rle, where)
    counts = rle["counts"]
    encoded = {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    if not isinstance(counts, (str, bytes)):
        encoded = coco_mask.frPyObjects(encoded, *encoded["size"])
    return coco_mask.decode(encoded).astype(bool)


def encode_rle(mask: np.ndarray) -> dict:
    """An ``(H, W)`` mask as a COCO RLE with a compressed ``str`` counts (the SA-V JSON form)."""
    rle = coco_mask.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def mask_bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` of the smallest box (end-exclusive) holding every foreground pixel, None when empty."""
    columns = np.flatnonzero(mask.any(axis=0))
    if columns.size == 0:
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1


def read_mask_png(path: str | os.PathLike) -> np.ndarray:
    """A mask PNG as its stored 2-D array (gray levels or palette indices); 8-bit grey and palette PNGs are decoded
    by :func:`decode_png`, anything else by Pillow. Only a regular file within the image limits is read
    (:mod:`.bounded_files`): a FIFO, a device or a huge header is an error naming the file."""
    with open_regular_file(path, "mask", MaskFormatError, max_image_bytes()) as file:
        try:
            data = file.read()
            array = decode_png(data)
            if array is None:
                with open_image(io.BytesIO(data), path, "mask", MaskFormatError) as image:
                    array = np.array(image)
        except (OSError, SyntaxError) as error:
            raise MaskFormatError(f"{path}: unreadable PNG ({error}); re-export this mask") from error
    if array.ndim != 2:
        raise MaskFormatError(
            f"{path}: mask has shape {array.shape} (RGB/RGBA); masks must be single-channel PNGs: "
            "0/255 gray per object (SA-V) or palette indices (DAVIS)"
        )
    return array


def read_png_palette(path: str | os.PathLike) -> bytes | None:
    """The RGB palette of a palette PNG (its header only is decoded), None for a gray or colour PNG."""
    with open_regular_file(path, "mask", MaskFormatError, max_image_bytes()) as file:
        try:
            with open_image(file, path, "mask", MaskFormatError) as image:
                palette = image.getpalette() if image.mode == "P" else None
        except (OSError, SyntaxError) as error:
            raise MaskFormatError(f"{path}: unreadable PNG ({error}); re-export this mask") from error
    return None if palette is None else bytes(palette)


def read_binary_mask_png(path: str | os.PathLike) -> np.ndarray:
    """A one-object mask PNG (SA-V layout) as bool, ``> 0``; see :func:`check_one_object_mask`."""
    array = read_mask_png(path)
    check_one_object_mask(array, path)
    return array > 0


def check_one_object_mask(array: np.ndarray, path: str | os.PathLike) -> None:
    """Raise when a one-object mask read from ``path`` holds more than two distinct values (the official rule)."""
    if array.size == 0 or array.dtype == bool:
        return
    low, high = array.min(), array.max()
    if array.dtype.kind == "u":  # shifted by low + 1 with wrap-around, only values between stay below high - low - 1
        span = int(high) - int(low)
        between = span >= 2 and int((array - array.dtype.type(int(low) + 1)).min()) < span - 1
    else:
        between = np.count_nonzero((array > low) & (array < high)) > 0
    if between:
        raise MaskFormatError(
            f"{path}: values {np.unique(array).tolist()[:6]} in a one-object mask; the SA-V layout holds one object "
            "per PNG (two values, e.g. 0/255): split the objects into folders, or use the DAVIS layout"
        )


def write_binary_png(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write a mask as a gray PNG with 0 for background and 255 for the object (the SA-V layout)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise MaskFormatError(f"{path}: cannot write a mask of shape {mask.shape}; pass an (H, W) array")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(mask > 0, 255, 0).astype(np.uint8)).save(path)


@functools.cache
def davis_palette() -> bytes:
    """The DAVIS/PASCAL VOC colour map (built once): label i's RGB from its bits spread over the channels' high bits."""
    palette = []
    for label in range(256):
        rgb = [0, 0, 0]
        bits = label
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((bits >> channel) & 1) << shift
            bits >>= 3
        palette.extend(rgb)
    return bytes(palette)


def write_palette_png(path: str | os.PathLike, labels: np.ndarray, palette: bytes | None = None) -> None:
    """Write an ``(H, W)`` label map (0 = background, 1..255 = objects) as a palette PNG, with ``palette`` (RGB
    triples, e.g. a ground-truth PNG's, :func:`read_png_palette`) or the DAVIS palette."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or (labels.size and (labels.min() < 0 or labels.max() > 255)):
        raise MaskFormatError(f"{path}: a palette PNG needs an (H, W) label map with values 0..255")
    image = Image.fromarray(labels.astype(np.uint8))
    image.putpalette(palette or davis_palette())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
