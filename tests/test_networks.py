"""The convolutional networks, built from their conf/model files as Hydra would: output shape,
parameter counts against the documents' layer sizes, other image sizes, stacking under
torch.func.vmap (outputs, BatchNorm/dropout state and gradients equal to each member's own) and
the ValueErrors of bad config values."""

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from models.init import initialize

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
NOT_ARGS = ("name", "init", "init_scale")  # read by the trainer, not the constructor


def conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * k * k * c_out + c_out


def fc(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


# Parameters on 28x28x1, from the documents' layer sizes, and the total they come to.
EXACT = {
    "simple_convnet": (conv(1, 30, 5) + fc(30 * 12 * 12, 100) + fc(100, 10), 433890),
    "deep_convnet": (
        conv(1, 16, 3)
        + conv(16, 16, 3)
        + conv(16, 32, 3)
        + conv(32, 32, 3)
        + conv(32, 64, 3)
        + conv(64, 64, 3)
        + fc(64 * 4 * 4, 50)
        + fc(50, 10),
        123552,
    ),
    "network3_conv": (conv(1, 20, 5) + fc(20 * 12 * 12, 100) + fc(100, 10), 289630),
    "network3_conv2": (
        conv(1, 20, 5) + conv(20, 40, 5) + fc(40 * 4 * 4, 100) + fc(100, 10),
        85670,
    ),
    "course_cnn": (conv(1, 10, 5) + conv(10, 20, 5) + fc(320, 10), 8490),
    "course_cnn3": (
        conv(1, 10, 3)
        + conv(10, 20, 3)
        + conv(20, 30, 3)
        + fc(30 * 2 * 2, 120)
        + fc(120, 60)
        + fc(60, 30)
        + fc(30, 10),
        31270,
    ),
    "lenet5": (
        conv(1, 6, 5) + conv(6, 16, 5) + fc(16 * 5 * 5, 120) + fc(120, 84) + fc(84, 10),
        61706,
    ),
}
# The scaled families: a band around their design size.
RANGES = {
    "alexnet": (300_000, 600_000),
    "vgg": (400_000, 800_000),
    "resnet": (80_000, 300_000),
    "inception": (100_000, 500_000),
}
NAMES = [*EXACT, *RANGES]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Batches of 2-4 gain nothing from intra-op threads, and on a busy 2-core machine the
    OpenMP threads wait on each other: this file took 75 s there with 2 threads, 5 s with 1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load(name: str) -> Any:
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    assert cfg.name == name
    return cfg


def build(name: str, **overrides: Any) -> nn.Module:
    cfg = load(name)
    for key in NOT_ARGS:
        cfg.pop(key)
    return instantiate(cfg, _convert_="all", **overrides)


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_builds_from_its_config_with_the_documented_size(name: str) -> None:
    net = build(name)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    if name in EXACT:
        arithmetic, total = EXACT[name]
        assert n_params(net) == arithmetic == total
    else:
        low, high = RANGES[name]
        assert low <= n_params(net) <= high


@pytest.mark.parametrize("name", NAMES)
def test_other_image_sizes_and_classes(name: str) -> None:
    net = build(name, input_shape=[3, 32, 32], output_size=7)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", NAMES)
def test_stacks_under_vmap(name: str, train: bool) -> None:
    """Two members with their own weights and dropout keys, stacked, give each member's own
    outputs, state updates (BatchNorm running stats, dropout counters) and gradients.

    In float64: in float32 the stacked and the lone convolutions round differently, and a ReLU
    input that lands on the other side of 0 changes every gradient through a training-mode
    BatchNorm by about 1%."""
    cfg = load(name)
    members = [build(name).double() for _ in range(2)]
    for seed, net in enumerate(members):
        initialize(net, cfg.init, cfg.init_scale, seed)
        net.train(train)
    params, buffers = stack_module_state(members)
    base = copy.deepcopy(members[0]).to("meta")
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def run(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (x,))

    out = vmap(run, in_dims=(0, 0, None))(params, buffers, x)
    out.sum().backward()
    for i, net in enumerate(members):
        own = net(x)
        own.sum().backward()
        torch.testing.assert_close(out[i], own)
        for key, buffer in net.named_buffers():
            torch.testing.assert_close(buffers[key][i], buffer)
        for key, p in net.named_parameters():
            torch.testing.assert_close(params[key].grad[i], p.grad)
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("simple_convnet", {"kernel_size": 29}, r"kernel_size=29"),
        ("network3_conv2", {"channels": [20, 40, 80]}, r"conv 3 \(kernel_size=5\)"),
        ("deep_convnet", {"pads": [1, 1]}, r"pads=\[1, 1\]"),
        ("deep_convnet", {"dropout": 1.0}, r"dropout=1.0"),
        ("course_cnn3", {"input_shape": [28, 28]}, r"input_shape=\[28, 28\]"),
        ("lenet5", {"activation": "gelu"}, r"'gelu'"),
        ("lenet5", {"pooling": "l2"}, r"'l2'"),
        ("alexnet", {"width": 0}, r"width=0"),
        ("vgg", {"stages": [[32], []]}, r"stages\[1\]=\[\]"),
        ("vgg", {"input_shape": [1, 4, 4]}, r"stage 3"),
        ("resnet", {"stages": []}, r"stages=\[\]"),
        ("inception", {"blocks": [[1, 2, 3]]}, r"blocks\[0\]=\[1, 2, 3\]"),
    ],
)
def test_bad_values_name_themselves(name: str, overrides: dict, message: str) -> None:
    """Called directly: Hydra would wrap the ValueError in an InstantiationException."""
    network = get_class(load(name)._target_)
    with pytest.raises(ValueError, match=message):
        network(**overrides)
