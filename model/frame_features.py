"""Frames to image features: decoded on demand with a small prefetch, encoded once, kept while memory allows."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from .frames import FrameSequence
from .sam2_model import FrameFeatures, Sam2Model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def preprocess_frame(frame: np.ndarray, image_size: int) -> torch.Tensor:
    """An (H, W, 3) uint8 RGB frame as the model's (3, S, S) float32 input, exactly as Meta's JPEG loader does:
    bicubic PIL resize to S x S, scale to [0, 1], normalize by the ImageNet mean and std."""
    resized = np.asarray(Image.fromarray(frame).resize((image_size, image_size), Image.Resampling.BICUBIC))
    image = torch.from_numpy(resized / 255.0).permute(2, 0, 1).float()
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]
    return (image - mean) / std


def _nbytes(features: FrameFeatures) -> int:
    tensors = [*features.high_res, features.vision]
    return sum(t.numel() * t.element_size() for t in tensors)


class FeatureStore(Protocol):
    """Features kept beyond a session (on disk, e.g. `sam2_plugins.feature_store`), on the CPU.

    `get` returns a frame's features (with `vision_pos`), None for a frame it does not hold; `put` receives a
    frame's features (with `vision_pos`) once they are encoded.
    """

    def get(self, frame_idx: int) -> FrameFeatures | None: ...

    def put(self, frame_idx: int, features: FrameFeatures) -> None: ...


class FrameFeatureCache:
    """Image features of a video's frames; the least recently used are dropped beyond `budget_bytes`.

    With a `store`, a frame it holds is read from it instead of being decoded and encoded, and every frame encoded
    is handed to it.
    """

    def __init__(
        self,
        frames: FrameSequence,
        model: Sam2Model,
        run_model: Callable[[], object],
        budget_bytes: int,
        prefetch: int = 2,
        store: FeatureStore | None = None,
    ) -> None:
        self.frames = frames
        self.model = model
        self.run_model = run_model  # context manager factory: inference mode, autocast
        self.budget_bytes = budget_bytes
        self.prefetch = prefetch
        self.store = store
        self._cache: OrderedDict[int, FrameFeatures] = OrderedDict()
        self._cached_bytes = 0
        self._vision_pos: torch.Tensor | None = None  # identical for every frame: stored once
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam2-frames")
        self._loading: dict[int, Future] = {}

    def features(self, frame_idx: int, upcoming: Iterable[int] | None = None) -> FrameFeatures:
        """Features of `frame_idx`; `upcoming` frames (in order) start decoding in the background, replacing the
        previous plan (None leaves it as it is).

        All decoding happens on one loader thread, as frame sources (video files) are not thread-safe.
        """
        wanted = [frame_idx]
        if upcoming is not None:
            wanted += list(upcoming)[: self.prefetch]
            for index in list(self._loading):
                if index not in wanted:
                    self._loading.pop(index).cancel()
        for index in wanted:
            if index not in self._cache and index not in self._loading:
                self._loading[index] = self._loader.submit(self._load, index)
        if frame_idx in self._cache:
            self._cache.move_to_end(frame_idx)
            return self._with_position(self._cache[frame_idx])
        loaded = self._loading.pop(frame_idx).result()
        if isinstance(loaded, FrameFeatures):
            device = self.model.device
            features = FrameFeatures([t.to(device) for t in loaded.high_res], loaded.vision.to(device), None)
            if self._vision_pos is None:
                self._vision_pos = loaded.vision_pos.to(device)
        else:
            with self.run_model():
                features = self.model.encode_image(loaded.to(self.model.device).unsqueeze(0))
            if self.store is not None:
                self.store.put(frame_idx, features)
            if self._vision_pos is None:
                self._vision_pos = features.vision_pos
            features.vision_pos = None
        self._store(frame_idx, features)
        return self._with_position(features)

    def _load(self, frame_idx: int) -> torch.Tensor | FrameFeatures:
        """The frame's stored features when the store holds them, else its model input."""
        stored = None if self.store is None else self.store.get(frame_idx)
        if stored is not None:
            return stored
        return preprocess_frame(self.frames[frame_idx], self.model.image_size)

    def _with_position(self, features: FrameFeatures) -> FrameFeatures:
        return FrameFeatures(features.high_res, features.vision, self._vision_pos)

    def _store(self, frame_idx: int, features: FrameFeatures) -> None:
        size = _nbytes(features)
        while self._cache and self._cached_bytes + size > self.budget_bytes:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= _nbytes(dropped)
        self._cache[frame_idx] = features
        self._cached_bytes += size

    def close(self) -> None:
        """Stop background decoding and release cached features."""
        self._loader.shutdown(wait=True, cancel_futures=True)
        self._loading.clear()
        self._cache.clear()
        self._cached_bytes = 0
