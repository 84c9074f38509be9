"""The convolutional networks of the textbook ("Deep Learning from Scratch", ch. 7-8), of
Nielsen's "Neural Networks and Deep Learning" (network3, ch. 6) and of the PyTorch course, and
the building helpers the other convolutional families (`models.classic`, `models.resnet`,
`models.inception`) share.

Every network is a plain module over torch's Conv2d / Linear / pooling and our own Activation,
BatchNorm and Dropout (`models.layers`), whose state is parameters and buffers only, so a
population stacks any of them with `torch.func` (no in-place op on activations, no
data-dependent control flow). The fully connected sizes are derived from `input_shape` with
`conv_out`, so a config for 28x28 MNIST also builds for, say, 3x32x32 images; a window that does
not fit raises a ValueError naming the config value at fault.
"""

from collections.abc import Sequence

from torch import Tensor, nn

from models.layers import Activation, BatchNorm, Dropout, conv_out

Side = tuple[int, int]  # (height, width) of a feature map


def image_shape(input_shape: Sequence[int]) -> tuple[int, Side]:
    """(channels, (height, width)) of `input_shape`, which must be 3 positive sizes."""
    shape = [int(s) for s in input_shape]
    if len(shape) != 3 or min(shape) <= 0:
        raise ValueError(
            f"input_shape={list(input_shape)} must be 3 positive sizes (channels, height, width)"
        )
    return shape[0], (shape[1], shape[2])


def check_positive(name: str, value: int) -> None:
    if value <= 0:
        raise ValueError(f"{name}={value} must be positive")


def check_sizes(name: str, values: Sequence[int], allow_empty: bool = False) -> list[int]:
    """`values` as a list of positive ints; a ValueError naming `name` otherwise."""
    sizes = [int(v) for v in values]
    if (not sizes and not allow_empty) or (sizes and min(sizes) <= 0):
        what = "a list of positive sizes" if allow_empty else "a non-empty list of positive sizes"
        raise ValueError(f"{name}={list(values)} must be {what}")
    return sizes


def check_ratio(dropout: float) -> None:
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout={dropout} must be in [0, 1)")


def window_out(side: Side, kernel: int, stride: int, pad: int, what: str) -> Side:
    """Output side of a conv or pooling window over a `side` feature map; a ValueError naming
    `what` (the layer and its config value) when the window does not fit."""
    out = (0, 0)  # a non-positive kernel or stride, or a negative pad, fits nothing
    if kernel > 0 and stride > 0 and pad >= 0:
        out = (conv_out(side[0], kernel, stride, pad), conv_out(side[1], kernel, stride, pad))
    if min(out) < 1:
        raise ValueError(
            f"{what}: a {kernel}x{kernel} window (stride {stride}, pad {pad}) does not fit the "
            f"{side[0]}x{side[1]} feature map it gets"
        )
    return out


def conv_unit(
    c_in: int,
    c_out: int,
    kernel: int,
    pad: int = 0,
    stride: int = 1,
    batchnorm: bool = False,
    activation: str | None = "relu",
) -> list[nn.Module]:
    """Conv2d -> [BatchNorm] -> [activation].

    BatchNorm sits between the convolution and the activation, as the textbook places it (6.3);
    the convolution then has no bias, which BatchNorm's beta would make redundant.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=pad, bias=not batchnorm)
    ]
    if batchnorm:
        layers.append(BatchNorm(c_out))
    if activation is not None:
        layers.append(Activation(activation))
    return layers


def dense_stack(
    in_features: int,
    hidden_sizes: Sequence[int],
    output_size: int,
    activation: str = "relu",
    dropout: float = 0.0,
) -> list[nn.Module]:
    """Linear -> activation -> [Dropout] per hidden size, then the output Linear: the
    textbook's order for its fully connected layers."""
    layers: list[nn.Module] = []
    sizes = [in_features, *hidden_sizes]
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), Activation(activation)]
        if dropout:
            layers.append(Dropout(dropout))
    layers.append(nn.Linear(sizes[-1], output_size))
    return layers


class SimpleConvNet(nn.Module):
    """The textbook's SimpleConvNet (ch. 7.5): conv - ReLU - max-pool 2x2 - FC - ReLU - FC.

    The defaults are the textbook's `conv_param` (30 filters 5x5, pad 0, stride 1) and
    hidden_size 100; it trains it with Adam lr 0.001, batch 100, weights N(0, 0.01^2). On 28x28
    it has 780 + 30*12*12*100 + 100 + 1010 = 433890 parameters.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        output_size: int = 10,
        filters: int = 30,
        kernel_size: int = 5,
        pad: int = 0,
        stride: int = 1,
        hidden_size: int = 100,
    ) -> None:
        super().__init__()
        c_in, side = image_shape(input_shape)
        check_positive("filters", filters)
        check_positive("hidden_size", hidden_size)
        what = f"conv (kernel_size={kernel_size}, stride={stride}, pad={pad})"
        side = window_out(side, kernel_size, stride, pad, what)
        side = window_out(side, 2, 2, 0, f"pool after the conv (input_shape={list(input_shape)})")
        self.layers = nn.Sequential(
            *conv_unit(c_in, filters, kernel_size, pad, stride),
            nn.MaxPool2d(2),
            nn.Flatten(),
            *dense_stack(filters * side[0] * side[1], [hidden_size], output_size),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class DeepConvNet(nn.Module):
    """The textbook's DeepConvNet (ch. 8.1): six 3x3 convs with ReLU, a max-pool 2x2 after every
    second one, then FC 50 - ReLU - Dropout - FC 10 - Dropout.

    The defaults are the textbook's: channels 16, 16, 32, 32, 64, 64 with pads 1, 1, 1, 2, 1, 1
    (the pad 2 of the fourth conv makes 14 -> 16, so the feature map is 64x4x4 = 1024 after the
    last pool on 28x28) and dropout 0.5 after both affine layers, the output one included, as
    the textbook has it. It trains with He init and Adam lr 0.001. `batchnorm` adds BatchNorm
    after each conv (not in the textbook's net: an ablation).
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        output_size: int = 10,
        channels: Sequence[int] = (16, 16, 32, 32, 64, 64),
        pads: Sequence[int] = (1, 1, 1, 2, 1, 1),
        kernel_size: int = 3,
        hidden_size: int = 50,
        dropout: float = 0.5,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        c_in, side = image_shape(input_shape)
        channels = check_sizes("channels", channels)
        check_positive("hidden_size", hidden_size)
        check_ratio(dropout)
        if len(pads) != len(channels) or len(channels) % 2:
            raise ValueError(
                f"channels={list(channels)} and pads={list(pads)} must have the same even "
                "length (a pool follows every second conv)"
            )
        layers: list[nn.Module] = []
        for i, (c_out, pad) in enumerate(zip(channels, pads, strict=True)):
            what = f"conv {i + 1} (kernel_size={kernel_size}, pad={pad})"
            side = window_out(side, kernel_size, 1, pad, what)
            layers += conv_unit(c_in, c_out, kernel_size, pad, batchnorm=batchnorm)
            if i % 2:
                side = window_out(side, 2, 2, 0, f"pool after conv {i + 1}")
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        layers.append(nn.Flatten())
        layers += dense_stack(c_in * side[0] * side[1], [hidden_size], output_size, "relu", dropout)
        if dropout:
            layers.append(Dropout(dropout))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class Network3ConvNet(nn.Module):
    """Nielsen's network3 convolutional nets (ch. 6): ConvPoolLayers (valid conv, max-pool,
    activation), FullyConnectedLayers, then a SoftmaxLayer (here its logits).

    `channels` [20] is the book's first conv net (conv 20 5x5 - pool 2 - FC 100 - softmax 10,
    2880*100 + 100 in its FC), [20, 40] its second (40*4*4 = 640 inputs to the FC 100). As in
    network3, the activation follows the pooling (the same result as before it, the activations
    being monotone, on a quarter of the units) and dropout, when set, drops the *inputs* of
    every fully connected and softmax layer (its `p_dropout`); `hidden_sizes` [1000, 1000] with
    dropout 0.5 is the book's final net. Nielsen used sigmoid first, then ReLU, which is the
    default here; the book trains with SGD lr 0.03-0.1 and L2 0.1, batch 10.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        output_size: int = 10,
        channels: Sequence[int] = (20,),
        kernel_size: int = 5,
        pool_size: int = 2,
        hidden_sizes: Sequence[int] = (100,),
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        c_in, side = image_shape(input_shape)
        channels = check_sizes("channels", channels)
        hidden_sizes = check_sizes("hidden_sizes", hidden_sizes, allow_empty=True)
        check_ratio(dropout)
        layers: list[nn.Module] = []
        for i, c_out in enumerate(channels):
            side = window_out(side, kernel_size, 1, 0, f"conv {i + 1} (kernel_size={kernel_size})")
            what = f"pool after conv {i + 1} (pool_size={pool_size})"
            side = window_out(side, pool_size, pool_size, 0, what)
            layers += [
                nn.Conv2d(c_in, c_out, kernel_size),
                nn.MaxPool2d(pool_size),
                Activation(activation),
            ]
            c_in = c_out
        layers.append(nn.Flatten())
        sizes = [c_in * side[0] * side[1], *hidden_sizes, output_size]
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            if dropout:
                layers.append(Dropout(dropout))
            layers.append(nn.Linear(n_in, n_out))
            if i < len(hidden_sizes):
                layers.append(Activation(activation))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class CourseCNN(nn.Module):
    """The PyTorch course's CNN: convs each followed by max-pool 2 and ReLU (pool first, as the
    course writes `relu(max_pool2d(conv(x), 2))`), flatten, fully connected layers with ReLU,
    output layer.

    Defaults are the course's MNIST net: conv 10 5x5 - pool - ReLU - conv 20 5x5 - pool - ReLU
    - flatten 20*4*4 = 320 - FC 10, trained with SGD lr 0.01 momentum 0.5, batch 64.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        output_size: int = 10,
        channels: Sequence[int] = (10, 20),
        pads: Sequence[int] = (0, 0),
        kernel_size: int = 5,
        hidden_sizes: Sequence[int] = (),
    ) -> None:
        super().__init__()
        c_in, side = image_shape(input_shape)
        channels = check_sizes("channels", channels)
        hidden_sizes = check_sizes("hidden_sizes", hidden_sizes, allow_empty=True)
        if len(pads) != len(channels):
            raise ValueError(
                f"pads={list(pads)} must give one pad per conv of channels={list(channels)}"
            )
        layers: list[nn.Module] = []
        for i, (c_out, pad) in enumerate(zip(channels, pads, strict=True)):
            what = f"conv {i + 1} (kernel_size={kernel_size}, pad={pad})"
            side = window_out(side, kernel_size, 1, pad, what)
            side = window_out(side, 2, 2, 0, f"pool after conv {i + 1}")
            layers += [nn.Conv2d(c_in, c_out, kernel_size, padding=pad), nn.MaxPool2d(2)]
            layers.append(Activation("relu"))
            c_in = c_out
        layers.append(nn.Flatten())
        layers += dense_stack(c_in * side[0] * side[1], hidden_sizes, output_size)
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class CourseCNN3(CourseCNN):
    """The course's three-conv variant: 3x3 convs 10 (pad 0), 20 (pad 1), 30 (pad 0), each
    followed by max-pool 2 and ReLU (28 -> 13 -> 6 -> 2: flatten 30*2*2 = 120), then FC 120 -
    ReLU - 60 - ReLU - 30 - ReLU - 10. Only the defaults differ from `CourseCNN`."""

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        output_size: int = 10,
        channels: Sequence[int] = (10, 20, 30),
        pads: Sequence[int] = (0, 1, 0),
        kernel_size: int = 3,
        hidden_sizes: Sequence[int] = (120, 60, 30),
    ) -> None:
        super().__init__(input_shape, output_size, channels, pads, kernel_size, hidden_sizes)
