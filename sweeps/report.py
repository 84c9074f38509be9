"""Study outputs built from per-variant histories: smoothed curves, figure, summary table.

Inputs are pandas frames shaped like what `mlflow.search_runs` / metric histories give back,
so the same code can redraw a study from the tracking store.
"""

from typing import Any

import numpy as np
import pandas as pd

from sweeps.plan import grid_label

SMOOTH_WINDOW = 11
MARKERS = ("o", "x", "s", "^", "D", "v", "*", "P")


def smooth_curve(values: np.ndarray) -> np.ndarray:
    """The textbook's `smooth_curve`: a Kaiser(11, beta=2) window over the mirrored series.

    Series shorter than the window are returned unchanged.
    """
    x = np.asarray(values, dtype=float)
    if len(x) < SMOOTH_WINDOW:
        return x
    w = SMOOTH_WINDOW
    padded = np.r_[x[w - 1 : 0 : -1], x, x[-1:-w:-1]]
    kernel = np.kaiser(w, 2)
    y = np.convolve(kernel / kernel.sum(), padded, mode="valid")
    return y[5 : len(y) - 5]


def loss_figure(
    losses: pd.DataFrame, title: str, smooth: bool = True, ylim: list[float] | None = None
):
    """Loss curves (index: iteration, one column per variant), as in the textbook's figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    every = max(len(losses) // 20, 1)
    for i, name in enumerate(losses.columns):
        y = smooth_curve(losses[name].to_numpy()) if smooth else losses[name].to_numpy()
        ax.plot(
            losses.index,
            y,
            marker=MARKERS[i % len(MARKERS)],
            markevery=every,
            markersize=4,
            label=name,
        )
    ax.set_xlabel("iterations")
    ax.set_ylabel("loss (smoothed)" if smooth else "loss")
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def accuracy_figure(train: pd.DataFrame, test: pd.DataFrame, title: str):
    """Train (solid) and test (dashed) accuracy per epoch, one panel per variant, as in the
    textbook's overfitting figures. Frames: index epoch, one column per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(train.columns)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.5 * rows), squeeze=False)
    every = max(len(train) // 20, 1)
    for ax, name in zip(axes.flat, train.columns, strict=False):
        ax.plot(train.index, train[name], marker="o", markevery=every, markersize=3, label="train")
        ax.plot(
            test.index, test[name], "--", marker="s", markevery=every, markersize=3, label="test"
        )
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


LINESTYLES = ("-", "--", ":", "-.")


def grid_figure(train: pd.DataFrame, keys: pd.DataFrame, panels: str, lines: str, title: str):
    """Train accuracy per epoch, a panel per value of `panels`, a line style per value of
    `lines`: the textbook's 4x4 BatchNorm grid (BN solid, no BN dashed, one panel per init
    scale). `keys` is indexed by variant with the columns `panels` and `lines`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panel_values = list(dict.fromkeys(keys[panels]))
    line_values = list(dict.fromkeys(keys[lines]))
    cols = min(len(panel_values), 4)
    rows = -(-len(panel_values) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, pv in zip(axes.flat, panel_values, strict=False):
        for j, lv in enumerate(line_values):
            match = keys.index[(keys[panels] == pv) & (keys[lines] == lv)]
            for name in match:
                ax.plot(
                    train.index,
                    train[name],
                    LINESTYLES[j % len(LINESTYLES)],
                    label=grid_label(lines, lv),
                )
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


def summary_table(losses: pd.DataFrame, final: pd.DataFrame, smooth: bool = True) -> pd.DataFrame:
    """One row per variant: final (smoothed) loss, train/test accuracy, their gap, seconds.

    `final` is indexed by variant with columns train_acc, test_acc, seconds (and any more).
    """
    last = {
        name: (smooth_curve(losses[name].to_numpy()) if smooth else losses[name].to_numpy())[-1]
        for name in losses.columns
    }
    table = pd.DataFrame({"variant": list(last), "final_loss": list(last.values())})
    table = table.merge(final, left_on="variant", right_index=True, how="left")
    table.insert(table.columns.get_loc("test_acc") + 1, "gap", table.train_acc - table.test_acc)
    return table


def training_outputs(
    study: str,
    report: Any,
    frames: dict[str, pd.DataFrame],
    final: pd.DataFrame,
    keys: pd.DataFrame,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A training study's summary table and figures (file name -> figure).

    `frames`: "loss" (iteration x variant) and, for epoch-based studies, "train" and "test"
    accuracy (epoch x variant); `final`: train_acc, test_acc, seconds, ... by variant; `keys`:
    each variant's params (dotted keys) for grid figures; `report`: the `report` config. The
    study's figure `STUDY.png` is the textbook's: accuracy curves for epoch-based studies (the
    loss then goes to `STUDY_loss.png`), else loss curves.
    """
    losses = frames["loss"]
    table = summary_table(losses, final, smooth=report.smooth)
    ylim = list(report.ylim) if report.ylim else None
    figures: dict[str, Any] = {}
    if len(frames["train"]):
        epochs = pd.RangeIndex(1, len(frames["train"]) + 1)
        train, test = frames["train"].set_index(epochs), frames["test"].set_index(epochs)
        if report.panels and report.lines:
            figure = grid_figure(train, keys, report.panels, report.lines, study)
        else:
            figure = accuracy_figure(train, test, study)
        figures[f"{study}.png"] = figure
        ylim = None
    loss_name = f"{study}_loss.png" if figures else f"{study}.png"
    figures[loss_name] = loss_figure(losses, f"{study}: training loss", report.smooth, ylim)
    return table, figures


def format_number(v: float) -> str:
    """Four decimals, or four significant digits for the tiny values hyperparameters take."""
    return f"{v:.4g}" if v and abs(v) < 1e-2 else f"{v:.4f}"


def format_table(table: pd.DataFrame) -> str:
    return table.to_string(index=False, float_format=format_number)


if __name__ == "__main__":
    from sweeps.rebuild import main

    main()
