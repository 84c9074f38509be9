"""Smoothing, figure and summary table."""

import numpy as np
import pandas as pd
import pytest

from sweeps.figures import accuracy_figure, loss_figure
from sweeps.tables import format_table, smooth_curve, summary_table


def test_smooth_curve_keeps_length_and_constants() -> None:
    assert np.allclose(smooth_curve(np.full(50, 0.3)), 0.3)
    assert len(smooth_curve(np.arange(100.0))) == 100


def test_smooth_curve_is_the_textbook_kaiser_window() -> None:
    x = np.random.default_rng(0).normal(size=200)
    w = np.kaiser(11, 2)
    w = w / w.sum()
    # Away from the mirrored edges, each point is the window-weighted mean of its neighbours.
    assert smooth_curve(x)[100] == pytest.approx(float(np.dot(w, x[95:106])))
    assert smooth_curve(x).std() < 0.6 * x.std()


def test_short_series_are_left_alone() -> None:
    assert np.array_equal(smooth_curve(np.array([3.0, 1.0])), [3.0, 1.0])


def test_summary_table_and_figure() -> None:
    losses = pd.DataFrame({"a": np.linspace(2, 0.1, 40), "b": np.linspace(2, 1, 40)})
    finals = pd.DataFrame(
        {"train_acc": [0.9, 0.5], "test_acc": [0.8, 0.4], "seconds": [1.0, 1.0]},
        index=["a", "b"],
    )
    table = summary_table(losses, finals, smooth=False)
    cols = ["variant", "final_loss", "train_acc", "test_acc", "gap", "seconds"]
    assert list(table.columns) == cols
    assert table.gap.tolist() == pytest.approx([0.1, 0.1])
    assert table.final_loss.tolist() == pytest.approx([0.1, 1.0])
    assert "0.8000" in format_table(table)
    fig = loss_figure(losses, "t", smooth=True, ylim=[0, 1])
    ax = fig.axes[0]
    assert ax.get_ylim() == (0, 1)
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]


def test_accuracy_figure_has_a_panel_per_variant() -> None:
    index = pd.RangeIndex(1, 11)
    train = pd.DataFrame({"a": np.linspace(0.1, 1, 10), "b": np.linspace(0.1, 0.9, 10)}, index)
    test = train * 0.8
    fig = accuracy_figure(train, test, "t")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["a", "b"]
    assert [line.get_label() for line in visible[0].get_lines()] == ["train", "test"]
    assert visible[1].get_lines()[1].get_linestyle() == "--"
