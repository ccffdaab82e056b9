"""Frame sources: one random-access, decode-on-demand view over folders, videos, TIFF stacks and arrays.

Every source yields ``(H, W, 3)`` uint8 RGB frames. uint8 data passes through unchanged (grayscale repeated to
three channels, an alpha channel dropped). Other dtypes (12/16-bit cameras, float) go through one intensity
mapping per source, so the whole sequence shares it and does not flicker: per channel, the 0.5th and 99.5th
percentiles of the finite values of up to 16 evenly spaced frames (large frames sampled on a ~512x512 grid) map
to 0 and 255 (clipped). NaN maps to 0, +inf to 255 and -inf to 0. Boolean frames become 0/255.
``raw(index)`` returns the frame as stored.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import av
import numpy as np
import tifffile
from PIL import Image

from .bounded_files import check_regular_file, read_image_file
from .frame_names import frame_name, is_number_name

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
TIFF_SUFFIXES = (".tif", ".tiff")
PERCENTILES = (0.5, 99.5)
PERCENTILE_SAMPLE_FRAMES = 16
PERCENTILE_SAMPLE_PIXELS = 512 * 512
# PIL modes whose samples are 8-bit: these go through Image.convert("RGB") exactly as Meta's sam2 loader does.
_PIL_8BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "La", "RGBa"}


class FrameSourceError(ValueError):
    """A frame source cannot be opened or read; the message names the file and the fix."""


class FrameSource:
    """A sequence of frames decoded on demand; memory does not grow with the number of frames."""

    height: int
    width: int
    frame_names: list[str]
    _intensity_range: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.frame_names)

    def __getitem__(self, index: int) -> np.ndarray:
        """The frame as ``(H, W, 3)`` uint8 RGB, normalized by the source's intensity mapping."""
        index = self._check_index(index)
        return self._to_rgb_uint8(self._read_raw(index), index)

    def _to_rgb_uint8(self, raw: np.ndarray, index: int) -> np.ndarray:
        return _rgb_uint8(channels_last(raw, self._describe(index)), lambda: self.intensity_range)

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            yield self[index]

    def raw(self, index: int) -> np.ndarray:
        """The frame as stored (its dtype and channels)."""
        return self._read_raw(self._check_index(index))

    def close(self) -> None:
        """Release open files; the source is unusable afterwards."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def intensity_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (low, high) values mapped to 0 and 255, computed once from sampled frames."""
        if self._intensity_range is None:
            count = min(len(self), PERCENTILE_SAMPLE_FRAMES)
            indices = np.unique(np.linspace(0, len(self) - 1, count).round().astype(int))
            samples = [channels_last(self.raw(int(i)), self._describe(int(i))) for i in indices]
            self._intensity_range = percentile_range(samples)
        return self._intensity_range

    def _read_raw(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def _describe(self, index: int) -> str:
        return f"frame {index} of {self!r}"

    def _check_index(self, index: int) -> int:
        count = len(self)
        if not -count <= index < count:
            raise IndexError(f"frame index {index} out of range for {count} frames of {self!r}")
        return index % count


def channels_last(frame: np.ndarray, where: str) -> np.ndarray:
    """``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` with C in 1..4 as ``(H, W, C)``."""
    if frame.ndim == 2:
        return frame[:, :, None]
    if frame.ndim == 3 and frame.shape[2] <= 4:
        return frame
    if frame.ndim == 3 and frame.shape[0] <= 4:
        return np.moveaxis(frame, 0, -1)
    raise FrameSourceError(
        f"{where}: frame shape {frame.shape} is not an image; a frame must be (H, W), (H, W, C) or (C, H, W) "
        "with 1 to 4 channels. Pick the sequence axis with axis=... or select channels first."
    )


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """An ``(H, W, C)`` uint8 frame as ``(H, W, 3)``: grayscale repeated, alpha dropped."""
    channels = frame.shape[2]
    if channels in (1, 2):
        return np.ascontiguousarray(np.repeat(frame[:, :, :1], 3, axis=2))
    return np.ascontiguousarray(frame[:, :, :3])


def percentile_range(frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel 0.5th/99.5th percentiles of the finite values of ``(H, W, C)`` frames.

    Large frames are sampled on a regular grid of about 512 x 512 pixels, which bounds memory and time.
    """
    channels = frames[0].shape[2]
    step = max(1, int(np.ceil(np.sqrt(frames[0].shape[0] * frames[0].shape[1] / PERCENTILE_SAMPLE_PIXELS))))
    low = np.zeros(channels, dtype=np.float64)
    high = np.ones(channels, dtype=np.float64)
    for c in range(channels):
        values = np.concatenate([np.asarray(f[::step, ::step, c], dtype=np.float64).ravel() for f in frames])
        values = values[np.isfinite(values)]
        if values.size:
            low[c], high[c] = np.percentile(values, PERCENTILES)
    return low, high


def normalize_to_uint8(frame: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map ``low`` to 0 and ``high`` to 255 per channel (last axis), clipped; NaN -> 0, +inf -> 255, -inf -> 0.

    Where ``high <= low`` the channel is thresholded: values above ``low`` become 255.
    """
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    span = high - low
    scale = np.where(span > 0, 255.0 / np.where(span > 0, span, 1.0), np.inf)
    with np.errstate(invalid="ignore", over="ignore"):
        shifted = np.asarray(frame, dtype=np.float64) - low
        scaled = np.where(shifted > 0, shifted * scale, 0.0)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _rgb_uint8(frame: np.ndarray, intensity_range: Callable[[], tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """An ``(H, W, C)`` frame as ``(H, W, 3)`` uint8: uint8 as it is, bool as 0/255, else by `intensity_range()`."""
    if frame.dtype == np.uint8:
        return to_rgb(frame)
    if frame.dtype == np.bool_:
        return to_rgb(frame.astype(np.uint8) * np.uint8(255))
    return to_rgb(normalize_to_uint8(frame, *intensity_range()))


def image_to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """One 2D image, ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` of any dtype, as the ``(H, W, 3)`` uint8 RGB the
    model reads, by the frame sources' rule with the image's own percentiles (16-bit, float: 0.5th/99.5th -> 0/255).
    """
    frame = channels_last(np.asarray(image), f"image of shape {np.shape(image)}")
    return _rgb_uint8(frame, lambda: percentile_range([frame]))


class ImageFolderSource(FrameSource):
    """A folder of JPEG/PNG frames, sorted by name (numerically when every name is a number)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        paths = [p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
        if not paths:
            raise FrameSourceError(
                f"{self.folder}: no .jpg/.jpeg/.png frames in this folder; point to the folder that holds the frames"
            )
        if all(is_number_name(p.stem) for p in paths):
            paths.sort(key=lambda p: (int(p.stem), p.name))
        else:
            paths.sort(key=lambda p: p.name)
        self.paths = paths
        self.frame_names = [p.stem for p in paths]
        first = read_image_file(paths[0], "frame", FrameSourceError)
        self.width, self.height = first.size
        self._first_mode = first.mode

    def __repr__(self) -> str:
        return f"ImageFolderSource({str(self.folder)!r})"

    def __getitem__(self, index: int) -> np.ndarray:
        index = self._check_index(index)
        image = self._open(index)
        if image.mode in _PIL_8BIT_MODES:
            return np.asarray(image.convert("RGB"))
        return self._to_rgb_uint8(np.asarray(image), index)

    def _read_raw(self, index: int) -> np.ndarray:
        return np.asarray(self._open(index))

    def _describe(self, index: int) -> str:
        return str(self.paths[index])

    def _open(self, index: int) -> Image.Image:
        """The decoded image, checked to have the first frame's size."""
        image = read_image_file(self.paths[index], "frame", FrameSourceError)
        if image.size != (self.width, self.height):
            path = self.paths[index]
            raise FrameSourceError(
                f"{path}: size {image.size[0]}x{image.size[1]} differs from the first frame's "
                f"{self.width}x{self.height}; every frame of a video must have the same size"
            )
        if (image.mode in _PIL_8BIT_MODES) != (self._first_mode in _PIL_8BIT_MODES):
            raise FrameSourceError(
                f"{self.paths[index]}: {_bit_depth(image.mode)} but the first frame {self.paths[0].name} is "
                f"{_bit_depth(self._first_mode)}; the frames of a sequence share one intensity mapping, so they "
                "need one bit depth: convert them to one format (all 8-bit JPEG/PNG, or all 16-bit PNG)"
            )
        return image


def _bit_depth(mode: str) -> str:
    return f"{'an 8-bit' if mode in _PIL_8BIT_MODES else 'a 16-bit or float'} image (PIL mode {mode})"


class VideoFileSource(FrameSource):
    """An mp4/mov/avi/... video decoded with PyAV: exact random access by seeking, with a small frame cache.

    Sequential access (forward, or backward within the cache) decodes each frame once.
    """

    def __init__(self, path: str | os.PathLike, cache_bytes: int = 256 * 2**20):
        self.path = Path(path)
        check_regular_file(self.path, "video", FrameSourceError)
        try:
            self._container = av.open(str(self.path))
        except av.FFmpegError as error:
            raise FrameSourceError(f"{self.path}: not a readable video ({error}); re-encode it as H.264 mp4") from error
        try:
            self._stream = self._container.streams.video[0]
            self._stream.thread_type = "AUTO"
            self._pts = self._presentation_timestamps()
            if not self._pts:
                raise FrameSourceError(f"{self.path}: the video holds no frames; re-encode it or pick another file")
        except (av.FFmpegError, IndexError) as error:
            self._container.close()
            raise FrameSourceError(
                f"{self.path}: no readable video stream ({error}); re-encode it as H.264 mp4"
            ) from error
        except FrameSourceError:
            self._container.close()
            raise
        self._index_of_pts = {pts: i for i, pts in enumerate(self._pts)}
        self.frame_names = [frame_name(i) for i in range(len(self._pts))]
        self.height = self._stream.codec_context.height
        self.width = self._stream.codec_context.width
        self._cache_frames = max(2, min(256, cache_bytes // max(1, 3 * self.height * self.width)))
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._decoder: Iterator | None = None
        self._next_index = 0

    def __repr__(self) -> str:
        return f"VideoFileSource({str(self.path)!r})"

    def close(self) -> None:
        self._decoder = None
        self._cache.clear()
        self._container.close()

    def _presentation_timestamps(self) -> list[int]:
        """Every frame's pts in display order, from the packets (no decoding)."""
        timestamps = []
        for packet in self._container.demux(self._stream):
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is not None and packet.size:
                timestamps.append(stamp)
        self._container.seek(0, stream=self._stream)
        return sorted(timestamps)

    def _read_raw(self, index: int) -> np.ndarray:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        forward_gap = index - self._next_index
        if self._decoder is None or not 0 <= forward_gap < self._cache_frames:
            self._seek_before(index)
        try:
            for frame in self._decoder:
                decoded = self._index_of_pts.get(frame.pts)
                if decoded is None:
                    continue
                self._next_index = decoded + 1
                self._remember(decoded, frame.to_ndarray(format="rgb24"))
                if decoded >= index:
                    break
            else:
                self._decoder = None
        except av.FFmpegError as error:
            self._decoder = None
            raise FrameSourceError(
                f"{self.path}: frame {index} cannot be decoded ({error}); re-encode the video"
            ) from error
        if index not in self._cache:
            raise FrameSourceError(f"{self.path}: frame {index} could not be decoded; re-encode the video")
        return self._cache[index]

    def _seek_before(self, index: int) -> None:
        self._container.seek(self._pts[index], stream=self._stream, backward=True, any_frame=False)
        self._decoder = self._container.decode(self._stream)
        self._next_index = -1

    def _remember(self, index: int, frame: np.ndarray) -> None:
        self._cache[index] = frame
        self._cache.move_to_end(index)
        while len(self._cache) > self._cache_frames:
            self._cache.popitem(last=False)


class ArraySource(FrameSource):
    """An array (numpy, memory-mapped, or any lazy array with ``shape`` and indexing) along ``axis``.

    ``fixed`` holds an index for each further axis of a 4D+ array (``{z_axis: z}`` propagates along time at one z):
    each frame is read as one slice ``array[..., index, ...]``, so lazy arrays (dask, zarr) are never loaded whole.
    """

    def __init__(self, array: np.ndarray, axis: int = 0, name: str = "array", fixed: Mapping[int, int] | None = None):
        self.array = array
        self.axis = axis % array.ndim
        self.name = name
        self.fixed = {int(a) % array.ndim: int(i) for a, i in (fixed or {}).items()}
        if array.ndim - len(self.fixed) not in (3, 4) or self.axis in self.fixed:
            raise FrameSourceError(
                f"{name}: shape {array.shape} is not a frame sequence along axis {self.axis} with fixed indices "
                f"{self.fixed}; expected (T, H, W) or (T, H, W, C) once the fixed axes are indexed "
                "(pick the sequence axis with axis=... and an index for each other axis with fixed=...)"
            )
        for fixed_axis, index in self.fixed.items():
            if not 0 <= index < array.shape[fixed_axis]:
                raise FrameSourceError(
                    f"{name}: index {index} of axis {fixed_axis} is outside its {array.shape[fixed_axis]} entries"
                )
        self.frame_names = [frame_name(i) for i in range(array.shape[self.axis])]
        if not self.frame_names:
            raise FrameSourceError(f"{name}: the sequence axis {self.axis} of shape {array.shape} is empty")
        self.height, self.width = channels_last(self._read_raw(0), self._describe(0)).shape[:2]

    def __repr__(self) -> str:
        fixed = f", fixed={self.fixed}" if self.fixed else ""
        return f"ArraySource({self.name}, shape={tuple(self.array.shape)}, axis={self.axis}{fixed})"

    def _read_raw(self, index: int) -> np.ndarray:
        selection: list[int | slice] = [slice(None)] * self.array.ndim
        for fixed_axis, fixed_index in self.fixed.items():
            selection[fixed_axis] = fixed_index
        selection[self.axis] = index
        return np.asarray(self.array[tuple(selection)])


class TiffStackSource(ArraySource):
    """A TIFF stack (2D+t or z-stack, grayscale or RGB, any dtype) read without loading the whole stack.

    Uncompressed stacks are memory-mapped; compressed ones are read page by page when the sequence axis runs
    over pages, else decompressed once into a temporary memory-mapped file.
    """

    def __init__(self, path: str | os.PathLike, axis: int = 0):
        self.path = Path(path)
        check_regular_file(self.path, "TIFF stack", FrameSourceError)
        try:
            with _tifffile_warnings() as warnings:
                self._tiff = tifffile.TiffFile(self.path)
                series = self._tiff.series[0]
        except (tifffile.TiffFileError, OSError, IndexError) as error:
            raise FrameSourceError(f"{self.path}: not a readable TIFF ({error}); re-save it as a TIFF stack") from error
        try:
            _check_tiff_complete(self.path, series, warnings)
        except FrameSourceError:
            self._tiff.close()
            raise
        self._temporary = None
        super().__init__(self._lazy_array(series, axis), axis=axis, name=str(self.path))

    def __repr__(self) -> str:
        return f"TiffStackSource({str(self.path)!r}, axis={self.axis})"

    def close(self) -> None:
        self.array = None
        self._tiff.close()
        if self._temporary is not None:
            self._temporary.close()

    def _lazy_array(self, series, axis: int) -> np.ndarray:
        if series.dataoffset is not None:
            return np.memmap(self.path, dtype=series.dtype, mode="r", offset=series.dataoffset, shape=series.shape)
        one_page_per_frame = len(series.shape) == len(series.keyframe.shape) + 1
        if one_page_per_frame and axis % len(series.shape) == 0:
            return _PagedStack(series)
        self._temporary = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        return series.asarray(out=np.memmap(self._temporary, dtype=series.dtype, mode="w+", shape=series.shape))


@contextlib.contextmanager
def _tifffile_warnings() -> Iterator[list[str]]:
    """Collect what tifffile logs meanwhile (it reports a broken page chain as a warning, then reads less)."""
    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def _check_tiff_complete(path: Path, series, warnings: list[str]) -> None:
    """A TIFF cut short (an interrupted copy or download) is an error naming it, not a bare mmap or shape error."""
    size = path.stat().st_size
    if series.dataoffset is not None:
        end = series.dataoffset + int(np.prod(series.shape)) * np.dtype(series.dtype).itemsize
    else:
        extents = (
            o + n for page in series.pages if page is not None for o, n in zip(page.dataoffsets, page.databytecounts)
        )
        end = max(extents, default=0)
    broken = [message for message in warnings if "page offset" in message or "reshape" in message]
    if end > size or broken:
        found = f"its image data ends at byte {end}, the file holds {size}" if end > size else broken[0]
        raise FrameSourceError(
            f"{path}: truncated TIFF ({found}); the file is incomplete, e.g. an interrupted copy or download: "
            "copy it again or re-save it"
        )


class _PagedStack:
    """A compressed TIFF whose first axis runs over pages: ``stack[(i, ...)]`` decodes page i only."""

    def __init__(self, series):
        self.pages = series.pages
        self.shape = tuple(series.shape)
        self.ndim = len(self.shape)
        self.dtype = series.dtype

    def __getitem__(self, selection: tuple) -> np.ndarray:
        return self.pages[selection[0]].asarray()[selection[1:]]


def open_frames(
    source: str | os.PathLike | np.ndarray | FrameSource, *, axis: int = 0, fixed: Mapping[int, int] | None = None
) -> FrameSource:
    """Open a folder of JPEG/PNG frames, a video file, a TIFF stack or an array as a :class:`FrameSource`.

    ``axis`` picks the sequence axis of TIFF stacks and arrays (e.g. the z axis of a z-stack); ``fixed`` gives an
    array of 4D and more an index on each other non-spatial axis (see :class:`ArraySource`).
    """
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder; check the path to the frames or video")
        if path.is_dir():
            return ImageFolderSource(path)
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            return VideoFileSource(path)
        if suffix in TIFF_SUFFIXES:
            return TiffStackSource(path, axis=axis)
        raise FrameSourceError(
            f"{path}: unsupported file type {suffix!r}; use a folder of JPEG/PNG frames, a video "
            f"({', '.join(VIDEO_SUFFIXES)}) or a TIFF stack ({', '.join(TIFF_SUFFIXES)})"
        )
    if hasattr(source, "shape") and hasattr(source, "__getitem__"):
        return ArraySource(source, axis=axis, fixed=fixed)
    raise TypeError(f"open_frames: cannot read frames from {type(source).__name__}; pass a path, array or FrameSource")
