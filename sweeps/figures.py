"""The drawing shared by study kinds: loss curves, train/test accuracy panels, the grid of
a two-key sweep, a search's best trials. Figures are built from pandas frames or arrays, never
from a live run, so a study and its rebuild from MLflow draw the same picture. A kind's own
picture (optimizer paths, activation histograms) lives in its kind module."""

from typing import Any

import numpy as np
import pandas as pd

from sweeps.plan import grid_label
from sweeps.tables import smooth_curve

MARKERS = ("o", "x", "s", "^", "D", "v", "*", "P")
# matplotlib's default colour cycle (tab10), named here so a variant's MLflow run colour
# (`mlflow.runColor`) can be the colour of its line in the study's figure.
COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def colour(i: int) -> str:
    """The colour of the i-th variant's line."""
    return COLOURS[i % len(COLOURS)]


LINESTYLES = ("-", "--", ":", "-.")
# Over seeds a line is the mean and a band spans the seeds' min..max: (low, high) frames
# shaped like the line's frame.
Band = tuple[pd.DataFrame, pd.DataFrame]
BAND_ALPHA = 0.2


def shade(ax: Any, band: Band | None, name: str, colour: str | None, smooth: bool = False) -> None:
    """The band of the line `name`, if there is one, in its colour."""
    if band is None:
        return
    low, high = (frame[name].dropna() for frame in band)
    if smooth:
        low, high = (pd.Series(smooth_curve(s.to_numpy()), s.index) for s in (low, high))
    ax.fill_between(low.index, low, high.reindex(low.index), color=colour, alpha=BAND_ALPHA, lw=0)


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend: figures are files, there is no screen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_figure(
    losses: pd.DataFrame,
    title: str,
    smooth: bool = True,
    ylim: list[float] | None = None,
    band: Band | None = None,
):
    """Loss curves (index: iteration, one column per variant), as in the textbook's figure."""
    fig, ax = pyplot().subplots(figsize=(7, 5))
    every = max(len(losses) // 20, 1)
    for i, name in enumerate(losses.columns):
        series = losses[name].dropna()  # a diverged variant's line ends where it diverged
        y = smooth_curve(series.to_numpy()) if smooth else series.to_numpy()
        ax.plot(
            series.index,
            y,
            marker=MARKERS[i % len(MARKERS)],
            markevery=every,
            markersize=4,
            color=colour(i),
            label=name,
        )
        shade(ax, band, name, colour(i), smooth)
    ax.set_xlabel("iterations")
    ax.set_ylabel("loss (smoothed)" if smooth else "loss")
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def accuracy_figure(
    train: pd.DataFrame,
    test: pd.DataFrame,
    title: str,
    bands: tuple[Band, Band] | None = None,
):
    """Train (solid) and test (dashed) accuracy per epoch, one panel per variant, as in the
    textbook's overfitting figures. Frames: index epoch, one column per variant; `bands`:
    train's and test's over seeds."""
    n = len(train.columns)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = pyplot().subplots(rows, cols, figsize=(4 * cols, 3.5 * rows), squeeze=False)
    every = max(len(train) // 20, 1)
    for ax, name in zip(axes.flat, train.columns, strict=False):
        ax.plot(train.index, train[name], marker="o", markevery=every, markersize=3, label="train")
        ax.plot(
            test.index, test[name], "--", marker="s", markevery=every, markersize=3, label="test"
        )
        for band, line in zip(bands or (), ax.lines, strict=False):
            shade(ax, band, name, line.get_color())
        ax.set_title(str(name))
        ax.set_xlabel("epochs")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.0)
        ax.legend(loc="lower right")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def grid_figure(
    train: pd.DataFrame,
    keys: pd.DataFrame,
    panels: str,
    lines: str,
    title: str,
    band: Band | None = None,
):
    """Train accuracy per epoch, a panel per value of `panels`, a line style per value of
    `lines`: the textbook's 4x4 BatchNorm grid (BN solid, no BN dashed, one panel per init
    scale). `keys` is indexed by variant with the columns `panels` and `lines`."""
    panel_values = list(dict.fromkeys(keys[panels]))
    line_values = list(dict.fromkeys(keys[lines]))
    cols = min(len(panel_values), 4)
    rows = -(-len(panel_values) // cols)
    fig, axes = pyplot().subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, pv in zip(axes.flat, panel_values, strict=False):
        for j, lv in enumerate(line_values):
            match = keys.index[(keys[panels] == pv) & (keys[lines] == lv)]
            for name in match:
                (line,) = ax.plot(
                    train.index,
                    train[name],
                    LINESTYLES[j % len(LINESTYLES)],
                    label=grid_label(lines, lv),
                )
                shade(ax, band, name, line.get_color())
        ax.set_title(grid_label(panels, pv), fontsize=9)
        ax.set_ylim(0, 1.0)
    for ax in list(axes.flat)[len(panel_values) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7, loc="lower right")
    fig.supxlabel("epochs")
    fig.supylabel("train accuracy")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def best_trials_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str):
    """The textbook's "Best-1..Best-20" grid of a search: validation accuracy solid, train
    dashed; `curves` maps a panel's label to its (validation, train) series, best first."""
    cols = 5
    rows = max(int(np.ceil(len(curves) / cols)), 1)
    fig, axes = pyplot().subplots(rows, cols, figsize=(12, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i, (label, (val, train)) in enumerate(curves.items()):
        ax = axes.flat[i]
        ax.set_axis_on()
        x = np.arange(1, len(val) + 1)
        ax.plot(x, val, label="val")
        ax.plot(x, train, "--", label="train")
        ax.set_ylim(0.0, 1.0)
        ax.set_title(f"Best-{i + 1}", fontsize=9)
        ax.text(0.97, 0.9, label, transform=ax.transAxes, fontsize=7, ha="right")
        if i % cols:
            ax.set_yticks([])
        ax.set_xticks([])
    axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
