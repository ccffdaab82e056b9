"""Names from data (video ids, layer names) that become one folder or file name inside an output folder."""

import unicodedata

FORBIDDEN_CHARACTERS = "/\\"
"""Path separators on POSIX and Windows: a name holding one would be a path, not a name."""


def safe_component(name: str, what: str) -> str:
    """``name`` when it can be one file or folder name inside an output folder; else a ``ValueError`` naming it
    (as ``what``, e.g. "layer name") and the fix. Refused: empty, ``.``, ``..``, path separators, control
    characters, and leading or trailing spaces (kept by some file systems, dropped by others)."""
    name = str(name)
    if name in ("", ".", ".."):
        reason = "is empty" if not name else "is a relative path (this or the parent folder), not a name"
    elif any(character in FORBIDDEN_CHARACTERS for character in name):
        reason = "holds a path separator (/ or \\)"
    elif any(unicodedata.category(character).startswith("C") for character in name):
        reason = "holds control or invisible characters"
    elif name != name.strip():
        reason = "starts or ends with a space"
    else:
        return name
    raise ValueError(f"{what} {name!r} {reason}: it cannot be a file or folder name; rename it (e.g. 'video_01')")
