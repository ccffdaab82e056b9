"""Axial 2D rotary position encoding (RoPE) for attention over a grid of feature tokens.

Tokens are numbered row by row over a `width` x `height` grid. Each attention head's channels are read as
consecutive (even, odd) pairs; the first half of the pairs turn with the token's x position, the second half with
its y position, at frequencies ``theta ** (-4 i / head_dim)``.
"""

from __future__ import annotations

import torch


def axial_rope_angles(head_dim: int, width: int, height: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotation angles, shape (width * height, head_dim // 2), of every grid token for every channel pair."""
    if head_dim % 4:
        raise ValueError(f"axial RoPE needs a head dimension divisible by 4, got {head_dim}")
    inverse_frequencies = 1.0 / theta ** (torch.arange(0, head_dim, 4, dtype=torch.float32) / head_dim)
    token = torch.arange(width * height, dtype=torch.float32)
    column = token % width
    row = torch.div(token, width, rounding_mode="floor")
    return torch.cat([torch.outer(column, inverse_frequencies), torch.outer(row, inverse_frequencies)], dim=-1)


def rotate_pairs(x: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Rotate the channel pairs of `x` (..., N, D) by unit complex numbers `rotations` (N, D // 2), in float32.

    Pairs are multiplied as complex numbers: one kernel, several times faster on CPU than real sin/cos arithmetic.
    """
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * rotations).flatten(-2).to(x.dtype)


class AxialRope:
    """Rotation tables (complex, from `axial_rope_angles`), built once per grid size and device."""

    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        self.head_dim = head_dim
        self.theta = theta
        self._tables: dict[tuple[int, int, torch.device], torch.Tensor] = {}

    def rotations(self, width: int, height: int, device: torch.device) -> torch.Tensor:
        """Unit complex rotations, (width * height, head_dim // 2) complex64 on `device`."""
        key = (width, height, device)
        if key not in self._tables:
            angles = axial_rope_angles(self.head_dim, width, height, self.theta)
            self._tables[key] = torch.polar(torch.ones_like(angles), angles).to(device)
        return self._tables[key]

    def rotate_queries_and_keys(
        self, q: torch.Tensor, k: torch.Tensor, grid: tuple[int, int], num_k_exclude: int = 0, repeat_k: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate q (B, heads, N, D) by its grid positions and k's leading tokens the same way.

        The last `num_k_exclude` key tokens (object pointers) are left as they are. With `repeat_k`, the rotated keys
        are several stacked grids (one per memory frame), each rotated like the queries.
        """
        rotations = self.rotations(*grid, device=q.device)
        num_queries = q.shape[-2]
        num_k_rotated = k.shape[-2] - num_k_exclude
        if num_k_rotated != num_queries and not (repeat_k and num_k_rotated % num_queries == 0):
            raise ValueError(
                f"RoPE keys ({num_k_rotated} tokens) must {'be a multiple of' if repeat_k else 'equal'} "
                f"the {num_queries} query tokens; set rope_k_repeat=True for attention to several memory frames"
            )
        q = rotate_pairs(q, rotations)
        k_grid, k_rest = k.split([num_k_rotated, num_k_exclude], dim=-2)
        k_grid = rotate_pairs(k_grid.unflatten(-2, (-1, num_queries)), rotations).flatten(-3, -2)
        return q, torch.cat([k_grid, k_rest], dim=-2)
