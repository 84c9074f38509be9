"""Every convolutional family learns, on the embedded MNIST digits and on Debian's full
Fashion-MNIST, and on the digits beats the fully connected net its document compares it with
(slow).

Each case is the architectures study itself (`+experiment=architectures`, the documents'
recipes) on a few networks. The floors sit a few points under what these runs measured on the
development machine (README, "Networks"), so a network that stops learning fails and float
noise between machines does not.
"""

import pandas as pd
import pytest

from sweeps.kinds import run_study

# family -> (networks, the fully connected net its document compares them with)
FAMILIES = {
    "textbook": (["simple_convnet", "deep_convnet"], "mlp"),
    "network3": (["network3_conv", "network3_conv2"], "network3_fc"),
    "course": (["course_cnn", "course_cnn3"], None),
    "lenet": (["lenet5"], "mlp"),
    "alexnet_vgg": (["alexnet", "vgg"], "mlp"),
    "resnet": (["resnet"], None),
    "inception": (["inception"], None),
}
# Networks whose document says they beat its fully connected net; by at least this much.
BEATS = {"deep_convnet", "network3_conv", "network3_conv2", "lenet5", "alexnet", "vgg"}
MARGIN = 0.015
EMBEDDED_FLOOR = {
    "simple_convnet": 0.88,
    "deep_convnet": 0.93,
    "network3_conv": 0.93,
    "network3_conv2": 0.93,
    "course_cnn": 0.88,
    "course_cnn3": 0.88,
    "lenet5": 0.92,
    "alexnet": 0.93,
    "vgg": 0.94,
    "resnet": 0.88,
    "inception": 0.92,
}
# Fashion-MNIST, 3 epochs of 9,000 images: every family learns (chance is 0.10), but at this
# budget the documents' claims, which are about digits, are checked on the digits only.
FASHION_FLOOR = {
    "simple_convnet": 0.72,
    "deep_convnet": 0.75,
    "network3_conv": 0.77,
    "network3_conv2": 0.75,
    "course_cnn": 0.72,
    "course_cnn3": 0.70,
    "lenet5": 0.77,
    "alexnet": 0.76,
    "vgg": 0.80,
    "resnet": 0.76,
    "inception": 0.69,
}


def check(table: pd.DataFrame, networks: list[str], floor: dict, baseline: str | None) -> None:
    acc = table.set_index("architecture")["test_acc"]
    for name in networks:
        assert acc[name] >= floor[name], f"{name}: test accuracy {acc[name]:.3f}"
        if baseline and name in BEATS:
            assert acc[name] >= acc[baseline] + MARGIN, f"{name} {acc[name]:.3f} vs {baseline}"


def study(make_cfg, networks: list[str], baseline: str | None, *overrides: str) -> pd.DataFrame:
    models = ",".join([*networks, *([baseline] if baseline else [])])
    return run_study(
        make_cfg(
            "+experiment=architectures",
            f"architectures.models=[{models}]",
            "~claims.convnets_beat_fully_connected",
            *overrides,
        )
    )


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_learns_on_the_embedded_digits(make_cfg, family: str) -> None:
    networks, baseline = FAMILIES[family]
    table = study(make_cfg, networks, baseline, "train.epochs=8")
    check(table, networks, EMBEDDED_FLOOR, baseline)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_learns_on_fashion_mnist(make_cfg, debian_fashion, family: str) -> None:
    networks, _ = FAMILIES[family]
    table = study(
        make_cfg,
        networks,
        None,
        "dataset=fashion_mnist",
        "dataset.train_size=10000",
        "train.epochs=3",
    )
    check(table, networks, FASHION_FLOOR, None)
