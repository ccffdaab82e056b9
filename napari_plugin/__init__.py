"""napari widgets and sample data for SAM 2."""
