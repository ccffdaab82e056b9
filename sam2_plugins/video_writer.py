"""H.264 mp4 writing, one frame at a time (FiftyOne's App plays mp4; SA-V train videos are mp4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import av
import numpy as np

FPS = 24
"""SA-V videos are 24 fps."""
NEAR_LOSSLESS = {"crf": "1", "preset": "ultrafast"}


def write_mp4(
    frames: Iterable[np.ndarray], path: str | Path, fps: int = FPS, options: Mapping[str, str] | None = None
) -> None:
    """Encode (H, W, 3) uint8 RGB frames as near-lossless H.264 (libx264 ``options`` override the defaults).

    Odd sizes get an edge row/column repeated, as H.264's 4:2:0 sampling needs even sizes.
    """
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.pix_fmt = "yuv420p"
        stream.options = {**NEAR_LOSSLESS, **(options or {})}
        for position, frame in enumerate(frames):
            frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
            if position == 0:
                stream.height, stream.width = frame.shape[:2]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
