"""The classic architectures the course notes survey, sized for 28x28x1 images: LeNet-5, an
AlexNet-style stack and VGG-style stages.

They are the historical designs scaled down, not copies of the ImageNet networks (224x224x3
inputs, millions of parameters): the layer pattern is kept and the widths are chosen so that
a population of them trains on MNIST-sized data. Built from the helpers of `models.convnets`;
the same conventions hold (BatchNorm between conv and activation, Dropout layers only when
dropout > 0, sizes derived from `input_shape`).
"""

from collections.abc import Sequence

from torch import Tensor, nn

from models.convnets import (
    check_positive,
    check_ratio,
    check_sizes,
    conv_unit,
    dense_stack,
    image_shape,
    window_out,
)

POOLINGS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}
# AlexNet-style layout: (channels at width 1, kernel, pad, max-pool 2 after). Five convs with
# pools after the first, second and last, as AlexNet; 11x11/5x5 kernels and stride 4 shrink to
# 5x5/3x3 and stride 1 for 28x28 inputs.
ALEXNET_CONVS = (
    (32, 5, 2, True),
    (64, 3, 1, True),
    (96, 3, 1, False),
    (96, 3, 1, False),
    (64, 3, 1, True),
)


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998): conv 6 5x5 - pool 2 - conv 16 5x5 - pool 2 - FC 120 - 84 -
    output.

    LeNet-5 read 32x32 images; `pad` 2 on the first conv gives 28x28 inputs the same geometry
    (28 -> 14 -> 10 -> 5: 16*5*5 = 400 features), so on 28x28 it has 156 + 2416 + 48120 +
    10164 + 850 = 61706 parameters ("about 60k"). The modern reading the course uses is the
    default: ReLU and max-pooling; `activation: tanh` / `sigmoid` and `pooling: avg` move
    towards the original (whose subsampling layers also had trainable gains, left out here).
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        output_size: int = 10,
        channels: Sequence[int] = (6, 16),
        kernel_size: int = 5,
        pad: int = 2,
        hidden_sizes: Sequence[int] = (120, 84),
        activation: str = "relu",
        pooling: str = "max",
    ) -> None:
        super().__init__()
        c_in, side = image_shape(input_shape)
        channels = check_sizes("channels", channels)
        hidden_sizes = check_sizes("hidden_sizes", hidden_sizes, allow_empty=True)
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; valid: {', '.join(POOLINGS)}")
        layers: list[nn.Module] = []
        for i, c_out in enumerate(channels):
            conv_pad = pad if i == 0 else 0  # the pad stands in for the 32x32 frame only
            what = f"conv {i + 1} (kernel_size={kernel_size}, pad={conv_pad})"
            side = window_out(side, kernel_size, 1, conv_pad, what)
            side = window_out(side, 2, 2, 0, f"pool after conv {i + 1}")
            layers += conv_unit(c_in, c_out, kernel_size, conv_pad, activation=activation)
            layers.append(POOLINGS[pooling](2))
            c_in = c_out
        layers.append(nn.Flatten())
        layers += dense_stack(c_in * side[0] * side[1], hidden_sizes, output_size, activation)
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class AlexNet(nn.Module):
    """An AlexNet-style net for 28x28x1: conv 32 5x5 - pool - conv 64 3x3 - pool - conv 96,
    96, 64 3x3 - pool (ReLU after every conv) - FC 256 - ReLU - Dropout - FC 256 - ReLU -
    Dropout - FC 10.

    AlexNet's design (large first kernel, five convs, pools after the 1st, 2nd and 5th, two
    wide dropout-regularized FC layers) at MNIST scale: about 429k parameters at width 1
    (28 -> 14 -> 7 -> 3: 64*3*3 = 576 features). `width` scales every conv's channels, for
    capacity sweeps. Local response normalization is left out (later work found it of little
    use); `batchnorm` is the modern stand-in.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        output_size: int = 10,
        width: float = 1.0,
        hidden_size: int = 256,
        dropout: float = 0.5,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        c_in, side = image_shape(input_shape)
        if width <= 0:
            raise ValueError(f"width={width} must be positive")
        check_positive("hidden_size", hidden_size)
        check_ratio(dropout)
        layers: list[nn.Module] = []
        for i, (channels, kernel, pad, pool) in enumerate(ALEXNET_CONVS):
            c_out = max(1, round(channels * width))
            what = f"conv {i + 1} (input_shape={list(input_shape)})"
            side = window_out(side, kernel, 1, pad, what)
            layers += conv_unit(c_in, c_out, kernel, pad, batchnorm=batchnorm)
            if pool:
                side = window_out(side, 2, 2, 0, f"pool after conv {i + 1}")
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        layers.append(nn.Flatten())
        flat = c_in * side[0] * side[1]
        layers += dense_stack(flat, [hidden_size, hidden_size], output_size, "relu", dropout)
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class VGG(nn.Module):
    """VGG-style (Simonyan & Zisserman 2014): stages of 3x3 convs (pad 1, so a stage keeps its
    side) - [BatchNorm] - ReLU, a max-pool 2 closing each stage, then FC - ReLU - Dropout -
    output.

    VGG's point is depth from small kernels: two 3x3 convs see a 5x5 window with fewer
    parameters. The default, [[32, 32], [64, 64], [128, 128]] with FC 256, is three stages
    (28 -> 14 -> 7 -> 3: 128*3*3 = 1152 features, about 584k parameters); the ImageNet nets'
    two FC 4096 layers shrink to one of 256.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        output_size: int = 10,
        stages: Sequence[Sequence[int]] = ((32, 32), (64, 64), (128, 128)),
        hidden_size: int = 256,
        dropout: float = 0.5,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        c_in, side = image_shape(input_shape)
        stages = [check_sizes(f"stages[{i}]", stage) for i, stage in enumerate(stages)]
        if not stages:
            raise ValueError("stages=[] must list at least one stage")
        check_positive("hidden_size", hidden_size)
        check_ratio(dropout)
        layers: list[nn.Module] = []
        for i, stage in enumerate(stages):
            for c_out in stage:
                layers += conv_unit(c_in, c_out, 3, 1, batchnorm=batchnorm)
                c_in = c_out
            side = window_out(side, 2, 2, 0, f"pool closing stage {i + 1} of stages={stages}")
            layers.append(nn.MaxPool2d(2))
        layers.append(nn.Flatten())
        layers += dense_stack(c_in * side[0] * side[1], [hidden_size], output_size, "relu", dropout)
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
