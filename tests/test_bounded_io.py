"""Mask and frame readers refuse what is not a regular file of plausible size, by name, instead of hanging.

A FIFO or a symlink to /dev/zero used to hang the evaluator while its memory grew: every case that could hang runs
in a subprocess with a timeout, so a regression fails the test instead of blocking the suite.
"""

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2_plugins.bounded_files import max_image_bytes
from sam2_plugins.datasets.sav_eval import write_sav_object_masks
from sam2_plugins.frames import FrameSourceError, open_frames
from sam2_plugins.masks import MaskFormatError, read_mask_png, write_binary_png

SAM2_PLUGINS = Path(sys.executable).parent / "sam2-plugins"
HANG_TIMEOUT_S = 60


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_header(width: int, height: int, colour: int = 0) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` 8-bit pixels, with one row of image data."""
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    data = zlib.compress(bytes(1 + width * (3 if colour == 2 else 1)))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


READ_FRAMES = """
import sys
from sam2_plugins.frames import FrameSourceError, open_frames
try:
    frames = open_frames(sys.argv[1])
    for index in sys.argv[2:]:
        print(frames[int(index)].shape)
except FrameSourceError as error:
    print(error)
"""


def read_frames(source: Path, *indices: int) -> subprocess.CompletedProcess:
    """Open ``source`` and print the shapes of its frames at ``indices`` in a subprocess, stopping at (and printing)
    the first FrameSourceError; a reader that hangs fails the test at the timeout."""
    command = [sys.executable, "-c", READ_FRAMES, str(source), *map(str, indices)]
    return subprocess.run(command, capture_output=True, text=True, timeout=HANG_TIMEOUT_S)


@pytest.fixture
def sav_pair(tmp_path):
    """Ground truth and identical predictions of one object over three annotated frames (SA-V layout)."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    mask = np.zeros((40, 60), bool)
    mask[5:20, 10:30] = True
    masks = {"00000": mask, "00004": mask, "00008": mask}
    write_sav_object_masks(gt, "v", "000", masks)
    write_sav_object_masks(pred, "v", "000", masks)
    return gt, pred


def evaluate(gt: Path, pred: Path) -> subprocess.CompletedProcess:
    command = [str(SAM2_PLUGINS), "evaluate", "--gt_root", str(gt), "--pred_root", str(pred), "-q"]
    return subprocess.run(command, capture_output=True, text=True, timeout=HANG_TIMEOUT_S)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-symlink"])
def test_evaluate_refuses_a_prediction_that_is_not_a_regular_file(sav_pair, kind):
    gt, pred = sav_pair
    hostile = pred / "v" / "000" / "00004.png"
    hostile.unlink()
    if kind == "fifo":
        os.mkfifo(hostile)
    else:
        hostile.symlink_to("/dev/zero")
    result = evaluate(gt, pred)
    assert result.returncode == 1 and result.stdout == ""
    described = "a FIFO (named pipe)" if kind == "fifo" else "a character device (a symlink to /dev/zero)"
    assert f"{hostile}: is {described}, not a mask file" in result.stderr
    assert "replace it with the mask file itself" in result.stderr and "Traceback" not in result.stderr
    assert not (pred / "results.csv").exists()


def test_a_folder_or_a_missing_file_is_named_as_such(tmp_path):
    folder = tmp_path / "00000.png"
    folder.mkdir()
    with pytest.raises(MaskFormatError, match=r"00000.png: is a folder, not a mask file"):
        read_mask_png(folder)
    with pytest.raises(FileNotFoundError, match=r"00001.png: mask not found"):
        read_mask_png(tmp_path / "00001.png")


def test_evaluate_refuses_a_huge_png_header_before_decoding(sav_pair):
    gt, pred = sav_pair
    bomb = pred / "v" / "000" / "00004.png"
    bomb.write_bytes(png_with_header(200_000, 200_000))
    result = evaluate(gt, pred)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    limit = Image.MAX_IMAGE_PIXELS
    assert f"{bomb}: its header declares over {2 * limit} pixels, more than the limit of {limit}" in result.stderr
    assert "raise PIL.Image.MAX_IMAGE_PIXELS" in result.stderr


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, before ours refuses
@pytest.mark.parametrize("colour", [0, 2], ids=["grey-fast-decoder", "rgb-pillow"])
def test_mask_pixel_limit_follows_pillows_setting(tmp_path, monkeypatch, colour):
    path = tmp_path / "mask.png"
    path.write_bytes(png_with_header(30, 1, colour))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)
    with pytest.raises(MaskFormatError, match=r"mask.png: its header declares 30x1 = 30 pixels, more than .* 20;"):
        read_mask_png(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 30)
    if colour == 0:
        assert read_mask_png(path).shape == (1, 30)
    else:
        with pytest.raises(MaskFormatError, match="RGB"):  # read, then refused for being RGB as before
            read_mask_png(path)


def test_mask_file_larger_than_any_image_within_the_limit_is_not_read(tmp_path, monkeypatch):
    path = tmp_path / "mask.png"
    write_binary_png(path, np.eye(8, dtype=bool))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64)
    assert read_mask_png(path).shape == (8, 8)
    with path.open("ab") as file:
        file.truncate(max_image_bytes() + 1)  # padding after IEND: still a decodable PNG, but too large
    with pytest.raises(MaskFormatError, match=rf"mask.png: {max_image_bytes() + 1} bytes, more than any mask image"):
        read_mask_png(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert read_mask_png(path).shape == (8, 8)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-symlink"])
def test_frame_folder_refuses_a_frame_that_is_not_a_regular_file(tmp_path, kind):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(3):
        Image.new("RGB", (16, 8), (index, 0, 0)).save(folder / f"{index:05d}.jpg")
    hostile = folder / "00001.jpg"
    hostile.unlink()
    os.mkfifo(hostile) if kind == "fifo" else hostile.symlink_to("/dev/zero")
    result = read_frames(folder, 0, 2, 1)
    assert result.returncode == 0, result.stderr
    *shapes, message = result.stdout.splitlines()
    assert shapes == ["(8, 16, 3)", "(8, 16, 3)"]
    assert message.startswith(f"{hostile}: is a ") and "not a frame file" in message


@pytest.mark.parametrize("name", ["video.mp4", "stack.tif"])
def test_a_fifo_named_as_a_video_or_tiff_is_refused(tmp_path, name):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    result = read_frames(fifo)
    assert result.returncode == 0, result.stderr
    what = "video" if name.endswith(".mp4") else "TIFF stack"
    assert result.stdout.strip().startswith(f"{fifo}: is a FIFO (named pipe), not a {what} file")


def test_frame_with_a_huge_header_is_refused_before_decoding(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.new("RGB", (16, 8)).save(folder / "00000.png")
    (folder / "00001.png").write_bytes(png_with_header(100_000, 100_000, colour=2))
    frames = open_frames(folder)
    with pytest.raises(FrameSourceError, match=r"00001.png: its header declares over \d+ pixels.*MAX_IMAGE_PIXELS"):
        frames[1]


@pytest.mark.parametrize("content", [b"", b"not an image"], ids=["empty", "text"])
def test_a_file_that_is_no_image_is_named_without_pillows_file_object(tmp_path, content):
    """Pillow's own message names the open file object ("<_io.BufferedReader name=3>"), not the file."""
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.new("RGB", (16, 8)).save(folder / "00000.jpg")
    frame = folder / "00001.jpg"
    frame.write_bytes(content)
    mask = tmp_path / "00000.png"
    mask.write_bytes(content)
    unreadable = "unreadable image (empty, or in no image format Pillow knows); re-export or remove this"
    with pytest.raises(FrameSourceError) as raised:
        open_frames(folder)[1]
    assert str(raised.value) == f"{frame}: {unreadable} frame"
    with pytest.raises(MaskFormatError) as raised:
        read_mask_png(mask)
    assert str(raised.value) == f"{mask}: {unreadable} mask"
