"""Image features cached on disk per (source file, model, image size), so reopening a large stack skips encoding.

One folder per video under a cache root (default ``~/.cache/sam2-plugins/features``, or under ``$XDG_CACHE_HOME``),
named by a hash of its key: the source file's resolved path, size and modification time, the model's key (e.g.
:func:`checkpoint_key`), the image size and how frames are read from the file (sequence axis, fixed indices). A
file that changes gets a new key, and the folders of its earlier versions are removed when it is opened. All
folders share one size bound: beyond it the least recently used frames are removed. Files are written by
``torch.save`` on a background thread (atomically) and read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from .atomic import atomic_write
from .model.sam2_model import FrameFeatures

DEFAULT_MAX_BYTES = 8 * 2**30
KEY_FILE = "key.json"
POSITION_FILE = "position.pt"
_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam2-feature-store")
"""One background writer for every store (the interpreter finishes its writes at exit)."""


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/sam2-plugins/features``, by default ``~/.cache/sam2-plugins/features``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sam2-plugins" / "features"


def checkpoint_key(checkpoint: str | os.PathLike, config: str | None = None, precision: str | None = None) -> str:
    """A model's identity for the cache: an official name as it is, a checkpoint file by path, size and time."""
    path = Path(checkpoint)
    described = str(checkpoint)
    if path.is_file():
        stat = path.stat()
        described = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return f"{described}|config={config}|precision={precision}"


class DiskFeatureStore:
    """The features of one video's frames on disk (see the module docstring); the model's ``FeatureStore``.

    ``reading`` names how frames come out of ``source`` (``"axis=2"``, ``"axis=0 z=3"``): different readings of a
    file are different videos.
    """

    def __init__(
        self,
        source: str | os.PathLike,
        model_key: str,
        image_size: int,
        reading: str = "",
        root: str | os.PathLike | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        source = Path(source)
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such file or folder; features are cached for files only")
        self.root = Path(root) if root is not None else default_cache_root()
        self.max_bytes = max_bytes
        stat = source.stat()
        self.key = {
            "source": str(source.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "model": model_key,
            "image_size": int(image_size),
            "reading": reading,
        }
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:32]
        self.folder = self.root / digest
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OSError(
                f"{self.folder}: cannot create the feature cache ({error}); pick another cache folder"
            ) from error
        (self.folder / KEY_FILE).write_text(json.dumps(self.key, indent=1))
        self._remove_earlier_versions()
        self._position: torch.Tensor | None = None
        self._pending: dict[int, tuple[FrameFeatures, Future]] = {}

    def __repr__(self) -> str:
        return f"DiskFeatureStore({self.key['source']!r}, folder={str(self.folder)!r})"

    def get(self, frame_idx: int) -> FrameFeatures | None:
        """The frame's features on the CPU, or None when they are not cached (or their file is unreadable)."""
        pending = self._pending.get(frame_idx)
        if pending is not None:
            return pending[0]
        path = self._frame_path(frame_idx)
        if not path.is_file():
            return None
        try:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
            position = self._stored_position()
            features = FrameFeatures(list(tensors["high_res"]), tensors["vision"], position)
        except (OSError, RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as error:
            warnings.warn(
                f"{path}: unreadable cached features ({error}); removed, the frame is encoded again", stacklevel=3
            )
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # recently used: evicted last
        return features

    def put(self, frame_idx: int, features: FrameFeatures) -> None:
        """Copy a frame's features to the CPU and write them in the background."""
        cpu = FrameFeatures([t.detach().cpu() for t in features.high_res], features.vision.detach().cpu(), None)
        if self._position is None and not (self.folder / POSITION_FILE).is_file():
            self._position = features.vision_pos.detach().cpu()
            _save_atomic({"vision_pos": self._position}, self.folder / POSITION_FILE)
        cpu.vision_pos = self._position if self._position is not None else self._stored_position()
        self._pending[frame_idx] = (cpu, _WRITER.submit(self._write, frame_idx, cpu))

    def flush(self) -> None:
        """Wait until every frame handed to :meth:`put` is on disk."""
        for _, future in list(self._pending.values()):
            future.result()

    def cached_frames(self) -> list[int]:
        """Indices of the frames whose features are on disk."""
        return sorted(int(path.stem) for path in self.folder.glob("[0-9]*.pt"))

    def _write(self, frame_idx: int, features: FrameFeatures) -> None:
        try:
            _save_atomic({"high_res": features.high_res, "vision": features.vision}, self._frame_path(frame_idx))
            _evict_least_recent(self.root, self.max_bytes, keep=self._frame_path(frame_idx))
        finally:
            self._pending.pop(frame_idx, None)

    def _frame_path(self, frame_idx: int) -> Path:
        return self.folder / f"{frame_idx:06d}.pt"

    def _stored_position(self) -> torch.Tensor:
        if self._position is None:
            self._position = torch.load(self.folder / POSITION_FILE, map_location="cpu", weights_only=True)[
                "vision_pos"
            ]
        return self._position

    def _remove_earlier_versions(self) -> None:
        """Remove the folders of this source read the same way by the same model, written before it changed."""
        same = {name: self.key[name] for name in ("source", "model", "image_size", "reading")}
        for key_file in self.root.glob(f"*/{KEY_FILE}"):
            if key_file.parent == self.folder:
                continue
            try:
                other = json.loads(key_file.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if all(other.get(name) == value for name, value in same.items()):
                shutil.rmtree(key_file.parent, ignore_errors=True)


def _save_atomic(tensors: dict, path: Path) -> None:
    with atomic_write(path) as partial:
        torch.save(tensors, partial)


def _evict_least_recent(root: Path, max_bytes: int, keep: Path) -> None:
    """Remove the least recently used frame files under ``root`` until they total at most ``max_bytes``."""
    files = []
    for path in root.glob("*/[0-9]*.pt"):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        files.append((stat.st_mtime_ns, stat.st_size, path))
    total = sum(size for _, size, _ in files)
    for _, size, path in sorted(files):
        if total <= max_bytes:
            break
        if path != keep:
            path.unlink(missing_ok=True)
            total -= size
