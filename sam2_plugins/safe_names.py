"""Names from data (video ids, object and frame names) checked before they become file or folder names.

A name read from a dataset, a list file or a FiftyOne field is joined to a folder the user chose; it must stay one
file name inside that folder, whatever someone put in the data.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

MAX_NAME_BYTES = 255
"""The longest file name (in bytes) of ext4, APFS, NTFS and most other file systems."""


def safe_component(name: str, what: str) -> str:
    """``name`` if it is a single safe path component; else a ValueError naming it, ``what`` it is and the fix.

    Refused: empty, ``.``, ``..``, a ``/`` or ``\\``, control and invisible characters (NUL, newline, zero-width
    space, ...), undecodable bytes, leading or trailing spaces, a leading ``.`` (a hidden name, and the writers'
    temporary files beside a video are named ``.<video>.partial``) and names longer than the file system allows.
    """
    problem = _problem(name)
    if problem is not None:
        raise ValueError(
            f"{what} {name!r} {problem}, so it cannot name a file or folder; rename it to a plain name such as "
            "'sav_000001' or '001'"
        )
    return name


def _problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"is of type {type(name).__name__}, not text"
    if not name:
        return "is empty"
    if name in (".", ".."):
        return "names a folder itself" if name == "." else "names the parent folder"
    if "/" in name or "\\" in name:
        return "holds a path separator"
    for character in name:
        category = unicodedata.category(character)
        if category == "Cs":
            return "holds bytes that are not UTF-8"
        if category.startswith("C"):  # control, format (zero-width space), private use, unassigned
            kind = "control" if category == "Cc" else "invisible"
            return f"holds the {kind} character {character!r}"
    if name != name.strip():
        return "starts or ends with a space (kept by some file systems, dropped by others)"
    if name.startswith("."):
        return "starts with '.' (a hidden name, like the temporary files written beside videos)"
    if len(os.fsencode(name)) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    return None


def path_inside(root: Path, path: Path) -> Path:
    """``path`` if, links followed, it stays inside ``root``; else a ValueError naming both."""
    resolved_root = root.resolve()
    resolved = path.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise ValueError(
            f"{path}: leads to {resolved}, outside {root} (a symbolic link); remove the link or write to another folder"
        )
    return path
