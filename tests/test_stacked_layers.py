"""Each layer's member-batched form against the layer itself, member by member, and which
networks are chains of such layers (`sweeps.stacked_layers`)."""

import copy

import pytest
import torch
from torch import Tensor, nn

from models.init import initialize
from models.layers import Activation, Affine, BatchNorm, Dropout
from models.mlp import MLP
from sweeps.stacked_layers import FORMS, chain

K = 3


def members(layer: nn.Module) -> list[nn.Module]:
    """K copies of `layer`, each with its own parameters and buffers (dropout: own key)."""
    copies = []
    for k in range(K):
        member = copy.deepcopy(layer)
        generator = torch.Generator().manual_seed(k)
        with torch.no_grad():
            for p in member.parameters():
                p.copy_(torch.randn(p.shape, generator=generator))
            for name, b in member.named_buffers():
                if name.startswith("running"):
                    b.copy_(torch.rand(b.shape, generator=generator) + 0.5)
        if isinstance(member, Dropout):
            member.key.fill_(1000 + k)
            member.ratio.fill_([0.0, 0.2, 0.5][k])
        copies.append(member)
    return copies


def stacked(copies: list[nn.Module]) -> dict[str, Tensor]:
    """The copies' parameters and buffers stacked per member, as a stack holds them."""
    named = [dict(m.named_parameters()) | dict(m.named_buffers()) for m in copies]
    return {name: torch.stack([n[name].detach() for n in named]) for name in named[0]}


@pytest.mark.parametrize(
    ("layer", "sample"),
    [
        (Affine(6, 4), (6,)),
        (Activation("relu"), (6,)),
        (Activation("sigmoid"), (6,)),
        (Activation("tanh"), (6,)),
        (nn.Flatten(), (2, 3, 3)),
        (nn.Flatten(1, 2), (2, 3, 3)),
        (BatchNorm(4), (4,)),
        (BatchNorm(2), (2, 3, 3)),
        (Dropout(0.3), (6,)),
        (Dropout(0.3), (2, 3, 3)),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else str(v),
)
@pytest.mark.parametrize("training", [True, False])
def test_a_form_gives_each_members_own_output_and_state(
    layer: nn.Module, sample: tuple[int, ...], training: bool
) -> None:
    copies = members(layer)
    tensors = stacked(copies)
    x = torch.randn(K, 5, *sample, generator=torch.Generator().manual_seed(9))
    for m in [layer, *copies]:
        m.train(training)
    for _ in range(2):  # a second call sees the buffers the first one updated
        expected = torch.stack([m(x[k]) for k, m in enumerate(copies)])
        got = FORMS[type(layer)](layer, tensors, x)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(tensors, stacked(copies), rtol=1e-6, atol=1e-7)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = Affine(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc(x)


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = Affine(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        out = self.fc(x)
        return out * 2 if bool(out.mean() > 0) else out


def test_the_mlp_is_a_chain_and_other_networks_say_why_not() -> None:
    net = MLP(8, [4, 4], 2, batchnorm=True, dropout=0.5)
    initialize(net, "he", 1.0, seed=0)
    steps = chain(net)
    assert isinstance(steps, list)
    assert [s.name for s in steps] == [f"layers.{name}" for name, _ in net.layers.named_children()]
    assert [type(s.layer) for s in steps] == [type(m) for m in net.layers]
    assert chain(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())) == "0 has no stacked form"
    assert chain(Residual()) == "add has no stacked form"
    assert chain(DataDependent()) == "its forward cannot be traced (TraceError)"
