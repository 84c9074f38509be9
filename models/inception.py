"""An Inception-style network (Szegedy et al. 2014, GoogLeNet), sized for 28x28x1 images.

Design: a stem conv 3x3 - ReLU, then Inception blocks with a max-pool 2 between them, global
average pooling and one FC layer (GoogLeNet's head, which replaced the big FC layers). A block
runs four branches on the same input and concatenates them on channels, so the net chooses per
block how much to look at 1x1, 3x3 and 5x5 neighbourhoods: 1x1; 1x1 reduce - 3x3 (pad 1);
1x1 reduce - 5x5 (pad 2); 3x3 max-pool (stride 1, pad 1) - 1x1 projection. The 1x1 reductions
are what make the 3x3 and 5x5 branches affordable. `batchnorm` adds BatchNorm after every
conv (the BN-Inception variant).
"""

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from models.convnets import check_positive, check_sizes, conv_unit, image_shape, window_out

# Per block: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection), GoogLeNet's column order.
BLOCK_WIDTHS = 6
DEFAULT_BLOCKS = (
    (32, 32, 48, 8, 16, 16),
    (48, 48, 64, 12, 24, 24),
    (64, 64, 96, 16, 32, 32),
)


class InceptionBlock(nn.Module):
    """Four branches on one input, concatenated on channels; every conv followed by
    [BatchNorm] and ReLU. Its output has c1 + c3 + c5 + pool_proj channels."""

    def __init__(self, c_in: int, widths: Sequence[int], batchnorm: bool) -> None:
        super().__init__()
        c1, r3, c3, r5, c5, pool_proj = widths
        self.branch1 = nn.Sequential(*conv_unit(c_in, c1, 1, batchnorm=batchnorm))
        self.branch3 = nn.Sequential(
            *conv_unit(c_in, r3, 1, batchnorm=batchnorm),
            *conv_unit(r3, c3, 3, pad=1, batchnorm=batchnorm),
        )
        self.branch5 = nn.Sequential(
            *conv_unit(c_in, r5, 1, batchnorm=batchnorm),
            *conv_unit(r5, c5, 5, pad=2, batchnorm=batchnorm),
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1),
            *conv_unit(c_in, pool_proj, 1, batchnorm=batchnorm),
        )

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.branch1, self.branch3, self.branch5, self.branch_pool)
        return torch.cat([branch(x) for branch in branches], dim=1)


class Inception(nn.Module):
    """Stem - Inception blocks (max-pool 2 between them) - global average pool - FC.

    `blocks` lists each block's six branch widths (see BLOCK_WIDTHS). The default three
    blocks output 112, 160 and 224 channels at 28x28, 14x14 and 7x7: about 169k parameters.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        output_size: int = 10,
        stem_channels: int = 32,
        blocks: Sequence[Sequence[int]] = DEFAULT_BLOCKS,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        c_in, side = image_shape(input_shape)
        check_positive("stem_channels", stem_channels)
        if not blocks:
            raise ValueError("blocks=[] must list at least one block")
        layers: list[nn.Module] = [*conv_unit(c_in, stem_channels, 3, pad=1, batchnorm=batchnorm)]
        c_in = stem_channels
        for i, block in enumerate(blocks):
            widths = check_sizes(f"blocks[{i}]", block)
            if len(widths) != BLOCK_WIDTHS:
                raise ValueError(
                    f"blocks[{i}]={widths} must have {BLOCK_WIDTHS} widths: 1x1, 3x3 reduce, "
                    "3x3, 5x5 reduce, 5x5, pool projection"
                )
            if i:
                what = f"pool before block {i + 1} (input_shape={list(input_shape)})"
                side = window_out(side, 2, 2, 0, what)
                layers.append(nn.MaxPool2d(2))
            layers.append(InceptionBlock(c_in, widths, batchnorm))
            c_in = widths[0] + widths[2] + widths[4] + widths[5]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, output_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))
