"""Write-then-rename: a file is written under a temporary name beside its target and moved into place only
once complete, so a failure leaves the previous version (or nothing) and never a half-written one."""

from __future__ import annotations

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
