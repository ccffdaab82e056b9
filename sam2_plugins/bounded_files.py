"""Reading the files a dataset names: regular files only, of a plausible size, so that a FIFO, a device, a symlink to
either or a huge file fails at once with a message naming it instead of hanging the reader or filling memory.

The size limits follow Pillow's decompression-bomb limit ``PIL.Image.MAX_IMAGE_PIXELS``, the one setting a user
raises (or sets to None) for genuinely huge images: an image may hold at most that many pixels, and its file at most
:data:`MAX_BYTES_PER_PIXEL` bytes per allowed pixel.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

MAX_BYTES_PER_PIXEL = 9
"""16-bit RGBA (8 bytes, the widest PNG sample) plus one for PNG's row filter bytes and deflate's framing: no PNG or
JPEG within the pixel limit is larger."""

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def max_image_pixels() -> int | None:
    """The most pixels an image may hold: Pillow's ``Image.MAX_IMAGE_PIXELS`` (None: no limit)."""
    return Image.MAX_IMAGE_PIXELS


def max_image_bytes() -> int | None:
    """The largest image file read: :data:`MAX_BYTES_PER_PIXEL` per pixel of the pixel limit (None: no limit)."""
    pixels = max_image_pixels()
    return None if pixels is None else MAX_BYTES_PER_PIXEL * pixels


def _raise_limit() -> str:
    return f"if it is genuine, raise PIL.Image.MAX_IMAGE_PIXELS (now {max_image_pixels()}; None lifts the limit)"


def check_regular_file(path: str | os.PathLike, what: str, error: type[Exception]) -> os.stat_result:
    """``path``'s status (symlinks followed); ``error`` naming it unless it is a regular file.

    A missing file raises FileNotFoundError naming it.
    """
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    _check_kind(path, status, what, error)
    return status


def _check_kind(path: str | os.PathLike, status: os.stat_result, what: str, error: type[Exception]) -> None:
    if stat.S_ISREG(status.st_mode):
        return
    kind = next((name for test, name in _KINDS if test(status.st_mode)), "not a regular file")
    target = f" (a symlink to {os.path.realpath(path)})" if Path(path).is_symlink() else ""
    raise error(
        f"{path}: is {kind}{target}, not a {what} file; reading it could block or never end: "
        f"replace it with the {what} file itself"
    )


def open_regular_file(
    path: str | os.PathLike, what: str, error: type[Exception], max_bytes: int | None = None
) -> BinaryIO:
    """``path`` opened for binary reading once it is known to be a regular file of at most ``max_bytes`` bytes.

    ``what`` names the file in messages ("mask", "frame"); problems raise ``error`` (FileNotFoundError when missing).
    The file is checked before opening (so a device is never opened) and again once open, without blocking (so a
    file swapped for a FIFO in between is caught too).
    """
    check_regular_file(path, what, error)
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except OSError as problem:
        raise error(f"{path}: cannot open this {what} ({problem.strerror}); check its permissions") from problem
    file = os.fdopen(descriptor, "rb")
    try:
        status = os.fstat(descriptor)
        _check_kind(path, status, what, error)
        if max_bytes is not None and status.st_size > max_bytes:
            raise error(
                f"{path}: {status.st_size} bytes, more than any {what} image within the pixel limit holds "
                f"({max_bytes} bytes); it is not a {what} image: replace it, or {_raise_limit()}"
            )
    except BaseException:
        file.close()
        raise
    return file


def open_image(file: BinaryIO, path: str | os.PathLike, what: str, error: type[Exception]) -> Image.Image:
    """Pillow's image of the open ``file`` (read from ``path``), its header checked against the pixel limit before
    anything is decoded: ``error`` naming ``path`` and the fix when it is larger or not an image at all. Pillow's
    OSError for an image it cannot decode passes through, for the caller to name."""
    limit = max_image_pixels()
    try:
        image = Image.open(file)
    except Image.DecompressionBombError:  # Pillow itself refuses twice the limit, before saying the size
        declared = f"over {2 * limit} pixels"
    except UnidentifiedImageError:  # Pillow's message names the file object ("<_io.BufferedReader name=3>")
        raise error(
            f"{path}: unreadable image (empty, or in no image format Pillow knows); re-export or remove this {what}"
        ) from None
    else:
        width, height = image.size
        if limit is None or width * height <= limit:
            return image
        image.close()
        declared = f"{width}x{height} = {width * height} pixels"
    raise error(
        f"{path}: its header declares {declared}, more than the limit of {limit} pixels; the file is corrupt or "
        f"not a {what}: re-export it, or {_raise_limit()}"
    )


def read_image_file(path: str | os.PathLike, what: str, error: type[Exception]) -> Image.Image:
    """The decoded image of the PNG/JPEG file ``path``, a regular file within the byte and pixel limits; ``error``
    naming it and the fix otherwise."""
    with open_regular_file(path, what, error, max_image_bytes()) as file:
        try:
            with open_image(file, path, what, error) as image:
                image.load()
        except (OSError, SyntaxError) as problem:
            raise error(f"{path}: unreadable image ({problem}); re-export or remove this {what}") from problem
    return image
