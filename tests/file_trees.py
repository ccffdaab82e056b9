"""What a folder holds, to prove an operation wrote or deleted nothing it should not have."""

from pathlib import Path


def tree(root: Path) -> dict[Path, bytes | str]:
    """Every file and link under ``root``: relative path -> bytes (a link -> its target, not followed)."""
    return {
        path.relative_to(root): f"link to {path.readlink()}" if path.is_symlink() else path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_symlink() or path.is_file()
    }
