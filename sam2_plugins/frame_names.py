"""Frame file and object folder names of SA-V and DAVIS folders (``00042``, ``007``), without loading the frame
readers."""


def frame_name(index: int) -> str:
    """The name of frame ``index`` in SA-V and DAVIS folders (``00042``), and of unnamed frames of a source."""
    return f"{index:05d}"


def is_number_name(name: str) -> bool:
    """Whether ``name`` is a plain decimal number (``00042``, ``7``) that ``int`` reads: ASCII digits only, as
    ``str.isdigit`` alone also accepts ``²``, which ``int`` refuses."""
    return name.isascii() and name.isdigit()


def object_name(obj_id: int) -> str:
    """The folder name of object ``obj_id`` in SA-V annotation and prediction folders (``007``)."""
    return f"{obj_id:03d}"
