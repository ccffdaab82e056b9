"""Write-then-rename: a file is written under a temporary name beside its target and moved into place only
once complete, so a failure leaves the previous version (or nothing) and never a half-written one."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that go by it still work) to write a file
    at; on success it replaces ``path``, on error it goes."""
    path = Path(path)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    _remove(partial)
    try:
        yield partial
        os.replace(partial, path)
    finally:
        _remove(partial)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


_FIXES = {
    errno.ENOSPC: "the disk is full: free space on it, or write elsewhere",
    errno.EDQUOT: "the disk quota is used up: free space, or write elsewhere",
    errno.EACCES: "make the folder writable, or write elsewhere",
    errno.EPERM: "make the folder writable, or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EISDIR: "it is a folder: pass a file path, e.g. a name inside that folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder: pick another path",
}


def write_error(path: str | os.PathLike, error: OSError) -> OSError:
    """``error`` met writing ``path`` as an OSError whose message names ``path`` (not a temporary file beside it),
    says whether a previous ``path`` is still there, and gives the fix."""
    path = Path(path)
    kept = f"; the previous {path.name} is left as it was" if path.is_file() else ""
    fix = _FIXES.get(error.errno, "check the path and the disk")
    written = OSError(f"cannot write {path}: {error.strerror or error}{kept}; {fix}")
    written.errno = error.errno  # set after construction, so str() is the message alone, without "[Errno n]"
    return written


def check_writable(path: str | os.PathLike) -> None:
    """Raise :func:`write_error`'s error for what can be told before writing ``path``: it is a folder, a part of its
    folder is a file, or the nearest existing folder is read-only. For checks before long work."""
    path = Path(path)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if path.is_dir():
        code = errno.EISDIR
    elif not folder.is_dir():
        code = errno.ENOTDIR
    elif os.statvfs(folder).f_flag & os.ST_RDONLY:
        code = errno.EROFS
    elif not os.access(folder, os.W_OK | os.X_OK):
        code = errno.EACCES
    else:
        return
    raise write_error(path, OSError(code, os.strerror(code)))


def write_text(path: str | os.PathLike, text: str) -> None:
    """``text`` written beside ``path`` and renamed into place, missing folders created; on failure the previous
    ``path`` is left as it was and the error is :func:`write_error`'s."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as partial:
            partial.write_text(text)
    except OSError as error:
        raise write_error(path, error) from error
