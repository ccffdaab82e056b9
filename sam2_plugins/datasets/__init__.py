"""VOS dataset layouts, one module each: SA-V train and val/test, DAVIS 2016/2017, MOSE, LVOS, YouTube-VOS.

``detect_layout(root)`` tells which layout a folder holds, ``get_layout(name)`` gives one by name; each
:class:`Layout` lists :class:`VosVideo` objects and writes predictions (and server submissions) in its own form.
"""

from __future__ import annotations

import os
from pathlib import Path

from .davis import Davis2016Layout, DavisLayout
from .layout import Layout, VosVideo
from .lvos import LvosLayout
from .mose import MoseLayout
from .object_folders import ObjectFolderVideo
from .palette_video import PaletteVideo
from .sav_eval import SavEvalLayout
from .sav_train import SavTrainLayout
from .youtube_vos import YoutubeVosLayout

__all__ = [
    "LAYOUTS",
    "Layout",
    "ObjectFolderVideo",
    "PaletteVideo",
    "VosVideo",
    "detect_layout",
    "get_layout",
]

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        SavEvalLayout(),
        SavTrainLayout(),
        Davis2016Layout(),
        DavisLayout(),
        YoutubeVosLayout(),
        LvosLayout(),
        MoseLayout(),
    )
}
"""Every layout by name, in the order :func:`detect_layout` tries them (the most specific folder shapes first)."""


def get_layout(name: str) -> Layout:
    """The layout called ``name``; an error listing the names there are."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown dataset layout {name!r}; the layouts are: {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def detect_layout(root: str | os.PathLike) -> Layout:
    """The layout of the dataset folder ``root`` (the dataset's folder or one split's), from its folder shapes."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; pass the folder of a VOS dataset")
    for layout in LAYOUTS.values():
        if layout.matches(root):
            return layout
    known = "; ".join(f"{layout.name} ({layout.description})" for layout in LAYOUTS.values())
    raise FileNotFoundError(
        f"{root}: not a VOS dataset folder of a layout this project reads; pass the dataset's folder, or name the "
        f"layout. The layouts: {known}"
    )
