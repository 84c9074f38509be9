"""A user's own network, defined outside the package: `model=custom
model._target_=tests.custom_nets.TinyNet +model.width=8`."""

from torch import Tensor, nn


class TinyNet(nn.Module):
    def __init__(self, width: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
