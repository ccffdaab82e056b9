"""Frame file names of SA-V and DAVIS folders (``00042``), without loading the frame readers."""


def frame_name(index: int) -> str:
    """The name of frame ``index`` in SA-V and DAVIS folders (``00042``), and of unnamed frames of a source."""
    return f"{index:05d}"
