"""`train.augment=true`: Nielsen's data expansion, done on the device as batches are drawn.

Each member sees its own small random shift (whole pixels, up to `train.augment_shift` each way)
and, optionally, rotation (up to `train.augment_rotate` degrees) of every training image. The
draws come from the member's counter-based stream (`models.counter_rng`, keyed by its seed and
the step), so a member augments the same way alone or in a population. One `affine_grid` +
`grid_sample` moves every image of every member at once; whole-pixel shifts land exactly on
pixels, so a shift moves pixels without blurring them.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from models.counter_rng import uniform

AUGMENT_STREAM = 1 << 20  # apart from the batch stream (0) and the dropout layers' (1, 2, ...)


def augment(x: Tensor, keys: Tensor, step: Tensor, shift: int, rotate: float) -> Tensor:
    """(K, B, C, H, W) images, each moved by its member's draw for this step."""
    k, b, c, h, w = x.shape
    u = uniform(keys, step, AUGMENT_STREAM, (b, 3)).view(k * b, 3)
    dx = torch.floor(u[:, 0] * (2 * shift + 1)) - shift
    dy = torch.floor(u[:, 1] * (2 * shift + 1)) - shift
    angle = (u[:, 2] * 2 - 1) * math.radians(rotate)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # affine_grid maps output to input coordinates in [-1, 1]: a shift of d pixels is 2d/size.
    theta = torch.stack(
        [
            torch.stack([cos, -sin * h / w, -2 * dx / w], dim=1),
            torch.stack([sin * w / h, cos, -2 * dy / h], dim=1),
        ],
        dim=1,
    )
    flat = x.reshape(k * b, c, h, w)
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    moved = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return moved.view(k, b, c, h, w)
