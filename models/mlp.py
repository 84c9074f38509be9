"""Fully connected networks: the textbook's MultiLayerNet(Extend), its two-layer net, Nielsen's
network3 fully connected net and the Keras example's dense net are all this one module.

Hidden layer: Affine -> [BatchNorm] -> activation -> [Dropout], as in the textbook. Images are
flattened on the way in.
"""

from collections.abc import Sequence

from torch import Tensor, nn

from models.layers import Activation, Affine, BatchNorm, Dropout


class MLP(nn.Module):
    def __init__(
        self,
        input_size: int = 784,
        hidden_sizes: Sequence[int] = (100, 100, 100, 100),
        output_size: int = 10,
        activation: str = "relu",
        batchnorm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not hidden_sizes or min(hidden_sizes) <= 0:
            raise ValueError(f"hidden_sizes={list(hidden_sizes)} must be positive sizes")
        layers: list[nn.Module] = [nn.Flatten()]
        sizes = [input_size, *hidden_sizes]
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers.append(Affine(n_in, n_out))
            if batchnorm:
                layers.append(BatchNorm(n_out))
            layers.append(Activation(activation))
            if dropout:
                layers.append(Dropout(dropout))
        layers.append(Affine(sizes[-1], output_size))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
