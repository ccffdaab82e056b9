"""npe2 sample data: the synthetic fluorescent-cell time-lapse (:func:`sam2_plugins.sample_data.synthetic_cells`)
and the synthetic dividing cells with their lineage (:func:`sam2_plugins.sample_cells.dividing_cells`)."""

from __future__ import annotations

from sam2_plugins.sample_cells import dividing_cells
from sam2_plugins.sample_data import CAMERA_OFFSET, synthetic_cells

from .io import ctc_layers


def fluorescent_cells_sample() -> list[tuple]:
    """npe2 sample-data provider: the time-lapse as an Image layer and its ground truth as a Labels layer."""
    image, labels = synthetic_cells()
    axes = {"axis_labels": ("t", "y", "x")}  # the widget offers the frame axis by name: "t (24 frames)"
    return [
        (
            image,
            {
                "name": "cells (16-bit)",
                "colormap": "gray",
                "contrast_limits": (CAMERA_OFFSET, int(image.max())),
                **axes,
            },
            "image",
        ),
        (labels, {"name": "cells ground truth", "opacity": 0.4, "visible": False, **axes}, "labels"),
    ]


def dividing_cells_sample() -> list[tuple]:
    """npe2 sample-data provider: dividing cells as an Image layer, their ground truth as a Labels layer and their
    lineage as a Tracks layer (napari's graph of parents), as a CTC ground-truth folder opens."""
    cells = dividing_cells()
    image = (
        cells.images,
        {
            "name": "dividing cells (16-bit)",
            "colormap": "gray",
            "contrast_limits": (CAMERA_OFFSET, int(cells.images.max())),
            "axis_labels": ("t", "y", "x"),
        },
        "image",
    )
    return [image, *ctc_layers(cells.labels, cells.lineage, "dividing cells ground truth", opacity=0.4, visible=False)]
