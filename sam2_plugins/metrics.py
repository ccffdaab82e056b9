"""Per-frame video object segmentation metrics: region similarity J and boundary F (DAVIS / SA-V definitions).

Values equal the official SA-V evaluator's bit for bit, computed faster by two exact shortcuts:

- work is cropped to the bounding box of both masks grown by one pixel on every side (:func:`active_window`):
  outside it the masks and their boundary maps are zero, and the crop's last row and column are either the
  image's or all zero, so the boundary rule gives the same pixels;
- boundary maps are bit rows (64 pixels a word), so the ``disk(r)`` dilation (``dx**2 + dy**2 <= r**2``) is
  ``r`` vertical ORs and ``2r + 1`` shifted ORs on arrays 64 times smaller than the crop, and the matched
  boundary pixels are a population count.
"""

from __future__ import annotations

import math

import numpy as np

BOUNDARY_TOLERANCE = 0.008
Window = tuple[slice, slice]


def tolerance_radius(shape: tuple[int, ...]) -> float:
    """Boundary match tolerance in pixels: ``ceil(0.008 * image diagonal)``.

    The diagonal is the correctly rounded square root of the exact integer ``H**2 + W**2``, as in the official
    tool, so the ceiling agrees even where ``0.008 * diagonal`` lands next to an integer.
    """
    return float(math.ceil(BOUNDARY_TOLERANCE * math.sqrt(sum(int(n) ** 2 for n in shape))))


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of a binary mask by the DAVIS ``seg2bmap`` rule.

    A pixel is on the boundary where it differs from its right, lower or lower-right neighbour (outside the
    image counts as background); in the last row only the right neighbour counts, in the last column only the
    lower one, and the bottom-right pixel is never on the boundary.
    """
    mask = np.asarray(mask, dtype=bool)
    boundary = np.zeros_like(mask)
    boundary[:-1, :-1] = (
        (mask[:-1, :-1] != mask[:-1, 1:]) | (mask[:-1, :-1] != mask[1:, :-1]) | (mask[:-1, :-1] != mask[1:, 1:])
    )
    boundary[-1, :-1] = mask[-1, :-1] != mask[-1, 1:]
    boundary[:-1, -1] = mask[:-1, -1] != mask[1:, -1]
    return boundary


def jaccard_index(gt: np.ndarray, pred: np.ndarray) -> float:
    """|P ∩ G| / |P ∪ G|, and 1 when both masks are empty."""
    return _jaccard(_packed(gt), _packed(pred))


def boundary_f_measure(gt: np.ndarray, pred: np.ndarray, radius: float) -> float:
    """Boundary F: harmonic mean of boundary precision and recall with match tolerance ``radius`` pixels."""
    return _boundary_f(_packed_boundary(gt), _packed_boundary(pred), radius)


def window_scores(gt: np.ndarray, pred: np.ndarray, radius: float) -> tuple[float, float]:
    """(J, F) of masks (non-zero pixels foreground) cropped to their :func:`active_window`; ``radius`` is the full
    frame's. Each mask is packed into bits once."""
    gt_bits, pred_bits = _packed(gt, extended=True), _packed(pred, extended=True)
    inside = _real_columns(gt.shape[1], gt_bits.shape[1])
    j = _jaccard(gt_bits[:-1] & inside, pred_bits[:-1] & inside)
    return j, _boundary_f(_boundary(gt_bits, inside), _boundary(pred_bits, inside), radius)


# Masks are handled as bit rows: column x of a row is bit x % 64 of its word x // 64, so shifting a row by a few
# columns is a shift of its words, and a disk dilation is a few dozen operations on arrays 64 times smaller.


def _jaccard(gt: np.ndarray, pred: np.ndarray) -> float:
    intersection = _bit_count(gt & pred)
    union = _bit_count(gt) + _bit_count(pred) - intersection
    return 1.0 if union == 0 else intersection / union


def _boundary_f(gt_boundary: np.ndarray, pred_boundary: np.ndarray, radius: float) -> float:
    gt_count, pred_count = _bit_count(gt_boundary), _bit_count(pred_boundary)
    if gt_count == 0 and pred_count == 0:
        return 1.0
    if gt_count == 0 or pred_count == 0:
        return 0.0
    precision = _bit_count(pred_boundary & _dilated(gt_boundary, radius)) / float(pred_count)
    recall = _bit_count(gt_boundary & _dilated(pred_boundary, radius)) / float(gt_count)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _packed(mask: np.ndarray, extended: bool = False) -> np.ndarray:
    """A 2-D mask (non-zero set) as ``(H, words)`` little-endian uint64 bit rows; ``extended`` repeats the last
    row and column once."""
    height, width = mask.shape
    grown = int(extended)
    bits = np.zeros((height + grown, -(-(width + grown) // 64) * 64), bool)
    bits[:height, :width] = mask
    if extended:
        bits[:height, width] = mask[:, -1]
        bits[height] = bits[height - 1]
    return np.packbits(bits, axis=1, bitorder="little").view("<u8")


def _real_columns(width: int, words: int) -> np.ndarray:
    """A bit row with the columns ``< width`` set, ``words`` words long."""
    columns = np.zeros((1, words * 64), bool)
    columns[0, :width] = True
    return np.packbits(columns, axis=1, bitorder="little").view("<u8")


def _boundary(extended: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """:func:`boundary_map` from a mask's extended bit rows: with the last row and column repeated, they differ
    from their missing neighbours nowhere, which is the rule's special case for them."""
    right = _shifted(extended, 1)
    return ((extended[:-1] ^ right[:-1]) | (extended[:-1] ^ extended[1:]) | (extended[:-1] ^ right[1:])) & inside


def _packed_boundary(mask: np.ndarray) -> np.ndarray:
    extended = _packed(mask, extended=True)
    return _boundary(extended, _real_columns(mask.shape[1], extended.shape[1]))


def _shifted(bits: np.ndarray, offset: int) -> np.ndarray:
    """Bit rows whose column x holds column ``x + offset`` of ``bits`` (zero beyond the edges)."""
    words, shift = divmod(abs(offset), 64)
    kept = bits.shape[1] - words
    if offset == 0:
        return bits.copy()
    out = np.zeros_like(bits)
    if kept <= 0:
        return out
    if offset > 0:
        source = bits[:, words:]
        out[:, :kept] = source >> np.uint64(shift)
        if shift:
            out[:, : kept - 1] |= source[:, 1:] << np.uint64(64 - shift)
    else:
        source = bits[:, :kept]
        out[:, words:] = source << np.uint64(shift)
        if shift:
            out[:, words + 1 :] |= source[:, :-1] >> np.uint64(64 - shift)
    return out


def _dilated(bits: np.ndarray, radius: float) -> np.ndarray:
    """Bit rows dilated by ``disk(radius)``: the pixels within Euclidean ``radius`` of a set pixel. Rows are first
    dilated by each half-width of the disk (growing by doubling), then combined over the disk's rows."""
    reach, squared = math.floor(radius), math.floor(radius * radius)
    half_widths = [math.isqrt(squared - dy * dy) for dy in range(reach + 1)]
    by_width, grown, width = {}, bits, 0
    for target in sorted(set(half_widths)):
        while width < target:
            step = min(target - width, 2 * width + 1)  # [-w, w] and its copies shifted by +-step stay contiguous
            grown = grown | _shifted(grown, step) | _shifted(grown, -step)
            width += step
        by_width[target] = grown
    dilated = by_width[half_widths[0]].copy()
    for dy in range(1, reach + 1):
        row_dilated = by_width[half_widths[dy]]
        dilated[dy:] |= row_dilated[:-dy]
        dilated[:-dy] |= row_dilated[dy:]
    return dilated


def _bit_count(bits: np.ndarray) -> int:
    return int(np.bitwise_count(bits).sum())


def frame_scores(gt: np.ndarray, pred: np.ndarray, radius: float | None = None) -> tuple[float, float]:
    """(J, F) of one frame's binary masks of equal shape; ``radius`` defaults to :func:`tolerance_radius`."""
    if radius is None:
        radius = tolerance_radius(gt.shape)
    window = active_window(gt, pred)
    if window is None:
        return 1.0, 1.0
    return window_scores(gt[window], pred[window], radius)


def active_window(gt: np.ndarray, pred: np.ndarray) -> Window | None:
    """Bounding box of the non-zero pixels of both masks grown by one pixel on every side (clipped), or None
    when both are empty. Masks of any dtype."""
    columns = np.flatnonzero(gt.max(axis=0) | pred.max(axis=0)) if gt.size else np.empty(0, np.intp)
    if columns.size == 0:
        return None
    band = slice(max(columns[0] - 1, 0), columns[-1] + 2)
    rows = np.flatnonzero(gt[:, band].max(axis=1) | pred[:, band].max(axis=1))
    return slice(max(rows[0] - 1, 0), rows[-1] + 2), band
