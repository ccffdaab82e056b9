"""SAM 2 for FiftyOne and napari: the library both front-ends share (frame sources, SA-V I/O, J&F, prompts).

`open_frames` loads on first use, so importing `sam2_plugins.model` does not load the frame readers.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["open_frames"]


def __getattr__(name: str) -> Any:
    if name == "open_frames":
        from .frames import open_frames

        return open_frames
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
