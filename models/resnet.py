"""A ResNet-style network with bottleneck blocks (He et al. 2015), sized for 28x28x1 images.

Design: a stem conv 3x3 - BatchNorm - ReLU, then stages of bottleneck blocks, global average
pooling and one FC layer. A bottleneck is 1x1 reduce - 3x3 - 1x1 expand (x `expansion`), each
conv followed by BatchNorm, ReLU after the first two and after the sum with the shortcut: the
block learns a residual, which is what lets very deep stacks train. The shortcut is the identity
when the shapes match, else a projection (1x1 conv with the block's stride + BatchNorm, the
paper's option B). A stage's first block carries its stride, on the 3x3 conv (torchvision's
"v1.5", which keeps more information than striding the 1x1). The ImageNet stem (7x7 stride 2 +
max-pool) would leave a 7x7 map of a 28x28 image, so it is one 3x3 conv here.
"""

from collections.abc import Sequence

from torch import Tensor, nn

from models.convnets import check_positive, check_sizes, conv_unit, image_shape
from models.layers import Activation


class Bottleneck(nn.Module):
    """1x1 (c_in -> mid) - 3x3 stride `stride` (mid -> mid) - 1x1 (mid -> mid * expansion),
    each with BatchNorm, plus the shortcut, then ReLU."""

    def __init__(self, c_in: int, mid: int, expansion: int, stride: int) -> None:
        super().__init__()
        c_out = mid * expansion
        self.residual = nn.Sequential(
            *conv_unit(c_in, mid, 1, batchnorm=True),
            *conv_unit(mid, mid, 3, pad=1, stride=stride, batchnorm=True),
            *conv_unit(mid, c_out, 1, batchnorm=True, activation=None),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:  # projection: 1x1 conv with the block's stride
            projection = conv_unit(c_in, c_out, 1, stride=stride, batchnorm=True, activation=None)
            self.shortcut = nn.Sequential(*projection)
        self.activation = Activation("relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.residual(x) + self.shortcut(x))


class ResNet(nn.Module):
    """Stem - stages of bottlenecks - global average pool - FC.

    Stage i (from 0) has `stages[i]` blocks of bottleneck width `width * 2**i`, so it outputs
    `width * 2**i * expansion` channels; every stage after the first starts with stride 2. The
    default, [1, 1, 1] blocks of width 16, maps 28x28 -> 28 -> 14 -> 7 with 64, 128, 256
    channels: about 129k parameters. Global average pooling lets any image size through, and a
    3x3 window with pad 1 fits any input, so only the channels depend on `input_shape`.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        output_size: int = 10,
        stem_channels: int = 32,
        width: int = 16,
        stages: Sequence[int] = (1, 1, 1),
        expansion: int = 4,
    ) -> None:
        super().__init__()
        c_in, _ = image_shape(input_shape)
        check_positive("stem_channels", stem_channels)
        check_positive("width", width)
        check_positive("expansion", expansion)
        stages = check_sizes("stages", stages)
        blocks: list[nn.Module] = [*conv_unit(c_in, stem_channels, 3, pad=1, batchnorm=True)]
        c_in = stem_channels
        for i, n_blocks in enumerate(stages):
            mid = width * 2**i
            for j in range(n_blocks):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(Bottleneck(c_in, mid, expansion, stride))
                c_in = mid * expansion
        self.features = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, output_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))
