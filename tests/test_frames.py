"""Frame sources: every kind yields the frames it stores, as (H, W, 3) uint8 RGB."""

from pathlib import Path

import av
import numpy as np
import pytest
import tifffile
from PIL import Image

from sam2_plugins.frames import (
    ArraySource,
    FrameSourceError,
    ImageFolderSource,
    TiffStackSource,
    VideoFileSource,
    frame_name,
    normalize_to_uint8,
    open_frames,
)
from sam2_plugins.video_writer import write_mp4

RNG = np.random.default_rng(0)


def smooth_video(frames: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Frames with smooth content that survives lossy compression, each distinct."""
    y, x = np.mgrid[0:height, 0:width]
    video = np.empty((frames, height, width, 3), dtype=np.uint8)
    for t in range(frames):
        video[t, ..., 0] = (x * 4 + t * 9) % 256
        video[t, ..., 1] = (y * 5) % 256
        video[t, ..., 2] = (t * 13) % 256
    return video


def write_mp4_with_b_frames(path: Path, video: np.ndarray, gop: int = 5) -> None:
    """Short GOPs with B-frames: seeking has to land on exact frames."""
    write_mp4(video, path, options={"g": str(gop), "bf": "2", "preset": "medium"})


def test_jpeg_folder_equals_pil_rgb_and_sorts_numerically(tmp_path):
    names = ["2", "10", "1"]
    for name in names:
        gray = (RNG.random((20, 30)) * 255).astype(np.uint8)
        Image.fromarray(gray).save(tmp_path / f"{name}.jpg")
    with open_frames(tmp_path) as source:
        assert isinstance(source, ImageFolderSource)
        assert source.frame_names == ["1", "2", "10"]
        assert (source.height, source.width, len(source)) == (20, 30, 3)
        for i, name in enumerate(source.frame_names):
            expected = np.asarray(Image.open(tmp_path / f"{name}.jpg").convert("RGB"))
            np.testing.assert_array_equal(source[i], expected)
            assert source.raw(i).shape == (20, 30)
        np.testing.assert_array_equal(source[-1], source[2])


def test_png_folder_16bit_is_stretched_not_dark(tmp_path):
    frames = (RNG.random((3, 10, 12)) * 4095).astype(np.uint16)  # 12-bit camera data
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"{frame_name(i)}.png")
    source = open_frames(tmp_path)
    assert source.raw(0).dtype == np.uint16
    out = np.stack([source[i] for i in range(3)])
    assert out.dtype == np.uint8 and out.shape == (3, 10, 12, 3)
    assert out.max() == 255 and out.min() == 0
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_folder_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        open_frames(tmp_path / "missing")
    with pytest.raises(FrameSourceError, match="no .jpg"):
        open_frames(tmp_path)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "00000.png")
    (tmp_path / "00001.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / "00002.png")
    source = open_frames(tmp_path)
    with pytest.raises(FrameSourceError, match="00001.png: unreadable"):
        source[1]
    with pytest.raises(FrameSourceError, match="00002.png: size 8x9 differs"):
        source[2]
    with pytest.raises(IndexError):
        source[3]
    with pytest.raises(FrameSourceError, match="unsupported file type"):
        open_frames(tmp_path / "00000.png")


def test_folder_mixing_8_bit_and_16_bit_frames_names_the_odd_frame(tmp_path):
    rgb = RNG.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    deep = (RNG.random((10, 12)) * 4095).astype(np.uint16)
    Image.fromarray(rgb).save(tmp_path / "00000.jpg")
    Image.fromarray(deep).save(tmp_path / "00001.png")
    source = open_frames(tmp_path)
    assert source[0].shape == (10, 12, 3)
    message = (
        r"00001.png: a 16-bit or float image \(PIL mode I;16\) but the first frame 00000.jpg is an 8-bit image "
        r"\(PIL mode RGB\); .* convert them to one format"
    )
    with pytest.raises(FrameSourceError, match=message):
        source[1]
    (tmp_path / "00000.jpg").rename(tmp_path / "00002.jpg")  # a 16-bit first frame, an 8-bit one after it
    source = open_frames(tmp_path)
    with pytest.raises(FrameSourceError, match=r"00002.jpg: an 8-bit image \(PIL mode RGB\) but the first frame"):
        source[0]  # its intensity mapping samples every frame


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_truncated_tiff_is_a_clear_error(tmp_path, compression):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, (RNG.random((6, 64, 64)) * 4000).astype(np.uint16), compression=compression)
    whole = path.read_bytes()
    for kept in (len(whole) * 2 // 3, len(whole) - 200):  # cut inside the pages, or inside the last one's data
        path.write_bytes(whole[:kept])
        with pytest.raises(FrameSourceError, match=r"cut.tif: truncated TIFF .* copy it again or re-save it"):
            open_frames(path)


def test_mp4_round_trip_random_and_backward_access(tmp_path):
    video = smooth_video(23)
    path = tmp_path / "clip.mp4"
    write_mp4_with_b_frames(path, video)
    with open_frames(path) as source:
        assert isinstance(source, VideoFileSource)
        assert (len(source), source.height, source.width) == (23, 48, 64)
        assert source.frame_names[:2] == ["00000", "00001"]
        order = [0, 1, 2, 17, 3, 22, 21, 20, 9, 8, 7, 6, 5, 4, 12, 13, 0]
        for index in order:
            error = np.abs(source[index].astype(int) - video[index].astype(int)).mean()
            assert error < 4, (index, error)
        random_order = {index: source[index] for index in order}
    with av.open(str(path)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    for index, frame in random_order.items():  # seeking lands exactly on the frame a full decode gives
        np.testing.assert_array_equal(frame, decoded[index])


def test_mp4_small_cache_still_exact(tmp_path):
    video = smooth_video(15)
    path = tmp_path / "clip.mp4"
    write_mp4_with_b_frames(path, video, gop=15)
    with VideoFileSource(path, cache_bytes=1) as source, VideoFileSource(path) as reference:
        for index in [14, 3, 2, 1, 0, 7, 8]:
            np.testing.assert_array_equal(source[index], reference[index])
        assert len(source._cache) <= 2  # memory stays flat whatever the video length


def test_unreadable_video_names_file(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(FrameSourceError, match="broken.mp4"):
        open_frames(path)


def test_tiff_16bit_time_lapse_shares_one_mapping(tmp_path):
    stack = np.zeros((5, 16, 16), dtype=np.uint16)
    for t in range(5):
        stack[t] = 100 * t + np.arange(16)[None, :]  # brightness drifts over time
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, stack)
    with open_frames(path) as source:
        assert isinstance(source, TiffStackSource)
        assert isinstance(source.array, np.memmap)
        assert len(source) == 5 and source.raw(3).dtype == np.uint16
        np.testing.assert_array_equal(source.raw(3), stack[3])
        low, high = source.intensity_range
        expected_low, expected_high = np.percentile(stack.astype(float), [0.5, 99.5])
        assert low[0] == pytest.approx(expected_low) and high[0] == pytest.approx(expected_high)
        first, last = source[0], source[4]
    assert first.mean() < last.mean()  # one mapping: the drift stays visible


def test_compressed_tiff_reads_page_by_page(tmp_path):
    stack = (RNG.random((4, 12, 10)) * 65535).astype(np.uint16)
    path = tmp_path / "compressed.tif"
    tifffile.imwrite(path, stack, compression="zlib", photometric="minisblack")
    with TiffStackSource(path) as source:
        assert not isinstance(source.array, np.ndarray)
        for t in range(4):
            np.testing.assert_array_equal(source.raw(t), stack[t])
    with TiffStackSource(path, axis=2) as columns:  # not along pages: decompressed once to a temporary memmap
        assert isinstance(columns.array, np.memmap)
        np.testing.assert_array_equal(columns.raw(7), stack[:, :, 7])


def test_tiff_float_zstack_axis_and_nonfinite(tmp_path):
    volume = RNG.random((10, 12, 6)).astype(np.float32)  # (Y, X, Z): z is the last axis
    volume[0, 0, 2] = np.nan
    volume[1, 1, 2] = np.inf
    path = tmp_path / "volume.tiff"
    tifffile.imwrite(path, volume)
    with open_frames(path, axis=2) as source:
        assert (len(source), source.height, source.width) == (6, 10, 12)
        np.testing.assert_array_equal(source.raw(2), volume[:, :, 2])
        frame = source[2]
    assert frame[0, 0, 0] == 0 and frame[1, 1, 0] == 255


def test_tiff_rgb_uint8_passes_through(tmp_path):
    stack = (RNG.random((3, 8, 9, 3)) * 255).astype(np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, stack, photometric="rgb")
    with open_frames(path) as source:
        np.testing.assert_array_equal(np.stack(list(source)), stack)


def test_arrays_gray_rgba_channels_first_and_bad_shapes():
    gray = (RNG.random((4, 6, 7)) * 255).astype(np.uint8)
    source = open_frames(gray)
    assert isinstance(source, ArraySource)
    np.testing.assert_array_equal(source[1], np.repeat(gray[1][..., None], 3, axis=2))
    rgba = (RNG.random((2, 6, 7, 4)) * 255).astype(np.uint8)
    np.testing.assert_array_equal(open_frames(rgba)[1], rgba[1, ..., :3])
    channels_first = np.moveaxis(rgba[..., :3], -1, 1)
    np.testing.assert_array_equal(open_frames(channels_first)[0], rgba[0, ..., :3])
    with pytest.raises(FrameSourceError, match=r"shape \(6, 7\)"):
        open_frames(gray[0])
    with pytest.raises(FrameSourceError, match="not an image"):
        open_frames(np.zeros((2, 6, 7, 9), np.uint8))[0]
    with pytest.raises(TypeError):
        open_frames(42)


def test_normalize_to_uint8_rule():
    frame = np.array([[[-5.0, 0.0], [5.0, 10.0], [20.0, np.nan]]])  # (1, 3, 2)
    out = normalize_to_uint8(frame, low=np.array([0.0, 0.0]), high=np.array([10.0, 0.0]))
    np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255])  # clipped, linear, rounded
    np.testing.assert_array_equal(out[0, :, 1], [0, 255, 0])  # zero span thresholds; NaN -> 0


def test_corrupt_video_frame_names_file_and_frame(tmp_path):
    path = tmp_path / "clip.mp4"
    write_mp4_with_b_frames(path, smooth_video(30))
    data = path.read_bytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(data[:2000] + bytes(len(data) - 4000) + data[-2000:])  # index intact, payload zeroed
    with open_frames(damaged) as source, pytest.raises(FrameSourceError, match=r"damaged.mp4: frame \d+ cannot be"):
        for index in range(len(source)):
            source[index]


def test_frames_named_by_a_digit_int_does_not_read_are_sorted_by_name(tmp_path):
    """'²' is a digit to str.isdigit but not to int(): the folder failed to open with int()'s bare ValueError."""
    for name, level in (("00001", 10), ("²", 20), ("00000", 30)):
        Image.fromarray(np.full((4, 6), level, np.uint8)).save(tmp_path / f"{name}.png")
    frames = open_frames(tmp_path)
    assert frames.frame_names == ["00000", "00001", "²"]
    assert [int(frames[i][0, 0, 0]) for i in range(3)] == [30, 10, 20]
