"""The fast mask PNG decoder gives exactly Pillow's array for every PNG row filter; other PNGs go to Pillow."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from sam2_plugins.masks import MaskFormatError, read_mask_png
from sam2_plugins.png_decoder import AVERAGE, NONE, PAETH, SUB, UP, decode_png


def _paeth(left: int, above: int, upper_left: int) -> int:
    estimate = left + above - upper_left
    distances = abs(estimate - left), abs(estimate - above), abs(estimate - upper_left)
    return (left, above, upper_left)[distances.index(min(distances))]


def filter_row(kind: int, row: list[int], above: list[int]) -> list[int]:
    """The PNG specification's filter of one row of 8-bit samples, written out pixel by pixel."""
    out = []
    for x, value in enumerate(row):
        left, upper_left = (row[x - 1], above[x - 1]) if x else (0, 0)
        predictor = {NONE: 0, SUB: left, UP: above[x], AVERAGE: (left + above[x]) // 2}.get(kind)
        if predictor is None:
            predictor = _paeth(left, above[x], upper_left)
        out.append((value - predictor) % 256)
    return out


def encode_png(samples: np.ndarray, filters: list[int], palette: bool = False) -> bytes:
    """An 8-bit grey (or palette) PNG of ``samples`` whose row ``y`` uses filter ``filters[y]``."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = samples.shape
    rows, above = b"", [0] * width
    for kind, row in zip(filters, samples.tolist()):
        rows += bytes([kind, *filter_row(kind, row, above)])
        above = row
    header = struct.pack(">IIBBBBB", width, height, 8, 3 if palette else 0, 0, 0, 0)
    colours = chunk(b"PLTE", bytes(range(256)) * 3) if palette else b""
    body = chunk(b"IHDR", header) + colours + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.array(image)


def mask_images(rng: np.random.Generator):
    """Masks with blobs, edges at the borders, salt noise, and noise images; widths below and above 8 bytes."""
    for height, width in [(1, 1), (5, 1), (7, 3), (9, 7), (12, 8), (23, 31), (40, 65)]:
        rows, columns = np.ogrid[:height, :width]
        blob = (rows - height / 2) ** 2 + (columns - width / 3) ** 2 < (max(height, width) / 3) ** 2
        yield np.where(blob, 255, 0).astype(np.uint8)
        yield np.where(blob ^ (rng.random((height, width)) < 0.05), 7, 200).astype(np.uint8)
        yield rng.integers(0, 256, (height, width), dtype=np.uint8)
        corner = np.zeros((height, width), np.uint8)
        corner[-1, -1] = 255
        yield corner
        yield np.zeros((height, width), np.uint8)


@pytest.mark.parametrize("kind", [NONE, SUB, UP, AVERAGE, PAETH, "mixed"])
@pytest.mark.parametrize("palette", [False, True])
def test_every_filter_decodes_as_pillow_does(kind, palette):
    rng = np.random.default_rng(0)
    for samples in mask_images(rng):
        filters = rng.integers(0, 5, len(samples)).tolist() if kind == "mixed" else [kind] * len(samples)
        data = encode_png(samples, filters, palette)
        decoded = decode_png(data)
        expected = pillow(data)
        np.testing.assert_array_equal(expected, samples)  # the test encoder is right
        if decoded is None:  # only images with many Average rows are left to Pillow
            assert filters.count(AVERAGE) > 8
            continue
        assert decoded.dtype == np.uint8
        np.testing.assert_array_equal(decoded, expected)


def test_pillow_written_masks_decode_exactly(tmp_path):
    rng = np.random.default_rng(1)
    for index, samples in enumerate(mask_images(rng)):
        for mode, options in [("L", {}), ("P", {}), ("L", {"optimize": True})]:
            path = tmp_path / f"{index}_{mode}.png"
            Image.fromarray(samples).convert(mode).save(path, **options)
            np.testing.assert_array_equal(read_mask_png(path), pillow(path.read_bytes()))


@pytest.mark.parametrize(
    ("array", "mode"),
    [(np.eye(9, dtype=bool), "1"), (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000, "I;16")],
)
def test_other_bit_depths_are_left_to_pillow(tmp_path, array, mode):
    path = tmp_path / "mask.png"
    Image.fromarray(array).save(path)
    assert Image.open(path).mode == mode
    assert decode_png(path.read_bytes()) is None
    np.testing.assert_array_equal(read_mask_png(path), array)


def test_truncated_png_is_a_clear_error(tmp_path):
    data = encode_png(np.full((30, 30), 255, np.uint8), [NONE] * 30)
    cut = data.index(b"IDAT") + 20
    path = tmp_path / "cut.png"
    path.write_bytes(data[:cut])
    assert decode_png(path.read_bytes()) is None
    with pytest.raises(MaskFormatError, match="cut.png: unreadable PNG"):
        read_mask_png(path)
