"""Fast exact decoding of mask PNGs (8-bit grey or palette, not interlaced): the array Pillow would give.

Mask PNGs are almost all zero bytes, so decoding time is inflating and unfiltering, not reading: libdeflate
inflates about ten times faster than zlib, and the PNG row filters are undone with numpy on whole blocks of rows
(None, Sub, Up) or with a scalar pass only over the few columns where a row's predictor depends on its left
neighbour (Paeth at the previous row's value changes; Average, rare in masks, per pixel). Any other PNG (other bit
depths or colour types, interlaced, malformed) gives None, for Pillow to decode or to report.
"""

from __future__ import annotations

import struct

import deflate
import numpy as np

from .bounded_files import max_image_pixels

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GREY, PALETTE = 0, 3
NONE, SUB, UP, AVERAGE, PAETH = range(5)
_MAX_AVERAGE_ROWS = 8  # beyond this, Pillow's C loop is faster than ours


def decode_png(data: bytes) -> np.ndarray | None:
    """The ``(H, W)`` uint8 samples (grey levels or palette indices) of an 8-bit grey/palette PNG, else None."""
    header = _read_header_and_pixels(data)
    if header is None:
        return None
    height, width, compressed = header
    try:
        inflated = deflate.zlib_decompress(compressed, height * (width + 1))
    except deflate.DeflateError:
        return None
    if len(inflated) != height * (width + 1):
        return None
    rows = np.frombuffer(inflated, np.uint8).reshape(height, width + 1)
    filters = rows[:, 0].copy()
    if filters.max(initial=0) > PAETH:
        return None
    rows[:, 0] = 0
    return _unfilter(filters, rows[:, 1:], _content_rows(inflated, width + 1))


def _read_header_and_pixels(data: bytes) -> tuple[int, int, bytes] | None:
    """(height, width, concatenated IDAT data) of a PNG this module decodes, else None."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 33:
        return None
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if depth != 8 or colour not in (GREY, PALETTE) or (compression, filtering, interlace) != (0, 0, 0):
        return None
    limit = max_image_pixels()  # larger headers go to Pillow, where readers refuse them by name
    if width * height == 0 or (limit is not None and width * height > limit):
        return None
    parts, position = [], 8
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        if kind == b"IDAT":
            parts.append(data[position + 8 : position + 8 + length])
        elif kind == b"IEND":
            return height, width, b"".join(parts)
        position += 12 + length
    return None


def _content_rows(buffer: bytearray, stride: int) -> tuple[int, int] | None:
    """First and last row holding a non-zero byte (found 8 bytes at a time), or None when all bytes are zero."""
    words = np.frombuffer(buffer, np.uint64, count=len(buffer) // 8) != 0
    tail = np.frombuffer(buffer, np.uint8, offset=words.size * 8)
    if tail.any():
        last = len(buffer) - 1
    elif words.any():
        last = (words.size - 1 - int(np.argmax(words[::-1]))) * 8 + 7
    else:
        return None
    first = int(np.argmax(words)) * 8 if words.any() else words.size * 8
    return first // stride, min(last // stride, len(buffer) // stride - 1)


def _unfilter(filters: np.ndarray, filtered: np.ndarray, content: tuple[int, int] | None) -> np.ndarray | None:
    """Reconstruct the samples from the per-row filter types, the filtered bytes (one per pixel) and the first and
    last rows with non-zero bytes."""
    height, width = filtered.shape
    image = np.zeros((height, width), np.uint8)
    if content is None:
        return image  # every filter maps zero bytes over a zero row to a zero row
    start, last = content
    # Rows past the last non-zero one copy or average their predecessor until a None/Sub row resets to zero.
    after = filters[last + 1 :]
    resets = np.flatnonzero(after <= SUB)
    end = last + 1 + int(resets[0] if resets.size else after.size)
    span = filters[start:end]
    if np.count_nonzero(span == AVERAGE) > _MAX_AVERAGE_ROWS:
        return None
    absolute = np.flatnonzero(span <= SUB) + start
    image[absolute] = filtered[absolute]
    sub = absolute[filters[absolute] == SUB]
    if sub.size:
        image[sub] = _row_sums(filtered[sub])
    # Up rows, and Paeth rows of zero bytes (they copy the row above), in runs: running sums down the run, starting
    # from the row above it. Other Paeth rows and Average rows one by one, in order.
    dependent = np.flatnonzero(span >= UP) + start
    row_by_row = filters[dependent] == AVERAGE
    paeth = dependent[filters[dependent] == PAETH]
    row_by_row[filters[dependent] == PAETH] = filtered[paeth].any(axis=1)
    breaks = np.flatnonzero(row_by_row[1:] | row_by_row[:-1] | (np.diff(dependent) != 1)) + 1
    for run in np.split(np.arange(dependent.size), breaks):
        if run.size == 0:
            continue
        first, stop = int(dependent[run[0]]), int(dependent[run[-1]]) + 1
        above = image[first - 1] if first else np.zeros(width, np.uint8)
        if row_by_row[run[0]]:
            rebuild = _paeth_row if filters[first] == PAETH else _average_row
            image[first] = rebuild(filtered[first], above)
            continue
        block = filtered[first:stop].copy()
        block[0] += above
        image[first:stop] = _column_sums(block)
    return image


def _column_sums(block: np.ndarray) -> np.ndarray:
    """Running sums (mod 256) down the rows of a uint8 block, in place, by log2(rows) whole-block additions."""
    step = 1
    while step < len(block):
        block[step:] += block[:-step]
        step *= 2
    return block


def _row_sums(block: np.ndarray) -> np.ndarray:
    """Running sums (mod 256) along the rows of a uint8 block, by log2(columns) whole-block additions."""
    block = block.copy()
    step = 1
    while step < block.shape[1]:
        block[:, step:] += block[:, :-step]
        step *= 2
    return block


def _paeth_row(filtered: np.ndarray, above: np.ndarray) -> np.ndarray:
    """A Paeth-filtered row. Where the row above repeats its left value, the predictor is the left pixel, so the
    row is a running sum there; only the columns where the row above changes need the full predictor."""
    sums = np.cumsum(filtered, dtype=np.uint8)
    changes = (np.flatnonzero(above[1:] != above[:-1]) + 1).tolist()
    row, up, running = filtered.tobytes(), above.tobytes(), sums.tobytes()
    # Column 0 has left and upper-left 0: its predictor is the pixel above.
    value = (row[0] + up[0]) & 255
    offsets = [(value - running[0]) & 255]  # per run of columns: pixel = offset + running sum
    for column in changes:
        left = (offsets[-1] + running[column - 1]) & 255
        value = (row[column] + _paeth(left, up[column], up[column - 1])) & 255
        offsets.append((value - running[column]) & 255)
    lengths = np.diff([0, *changes, len(row)])
    return np.repeat(np.frombuffer(bytes(offsets), np.uint8), lengths) + sums


def _paeth(left: int, above: int, upper_left: int) -> int:
    estimate = left + above - upper_left
    distance_left, distance_above = abs(estimate - left), abs(estimate - above)
    distance_upper_left = abs(estimate - upper_left)
    if distance_left <= distance_above and distance_left <= distance_upper_left:
        return left
    return above if distance_above <= distance_upper_left else upper_left


def _average_row(filtered: np.ndarray, above: np.ndarray) -> np.ndarray:
    """An Average-filtered row, pixel by pixel (each depends on its reconstructed left neighbour)."""
    left, out = 0, []
    for value, upper in zip(filtered.tolist(), above.tolist()):
        left = (value + ((left + upper) >> 1)) & 255
        out.append(left)
    return np.array(out, np.uint8)
