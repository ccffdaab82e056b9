"""SAM 2 video segmentation for FiftyOne and napari."""

__version__ = "0.1.0"
