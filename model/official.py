"""The official SAM 2 / 2.1 checkpoints, the default one and the device choices: names only, no torch.

Front-ends import this to build their forms without loading torch (`sam2_plugins.model` loads lazily).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OfficialCheckpoint:
    """Where Meta publishes one checkpoint and the config it was trained with."""

    repo_id: str
    filename: str
    config: str

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo_id}/resolve/main/{self.filename}"


_SIZES = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}

OFFICIAL_CHECKPOINTS: dict[str, OfficialCheckpoint] = {
    f"{version}_hiera_{size}": OfficialCheckpoint(
        repo_id=f"facebook/{version}-hiera-{size.replace('_', '-')}",
        filename=f"{version}_hiera_{size}.pt",
        config=f"{version}_hiera_{letter}",
    )
    for version in ("sam2.1", "sam2")
    for size, letter in _SIZES.items()
}

DEFAULT_CHECKPOINT = "sam2.1_hiera_tiny"
"""The checkpoint every front-end offers first: the smallest SAM 2.1 model."""

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
"""What the front-ends offer; "auto" picks the best available (`pick_device`)."""
