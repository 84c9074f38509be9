"""Study tables: the textbook's loss smoothing, the per-variant summary, console formatting.

Inputs are pandas frames shaped like what MLflow's metric histories give back, so a live
study and a rebuild from the store build the same table.
"""

import numpy as np
import pandas as pd

from sweeps.numbers import LOSS_DIGITS, significant

SMOOTH_WINDOW = 11
GAP_DECIMALS = 6


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


def summary_table(losses: pd.DataFrame, final: pd.DataFrame, smooth: bool = True) -> pd.DataFrame:
    """One row per variant: final (smoothed) loss (the last finite one for a diverged variant, whose
    series ends early), train/test accuracy, their gap, seconds.

    `final` is indexed by variant with columns train_acc, test_acc, seconds (and any more).
    """
    series = {name: losses[name].dropna().to_numpy() for name in losses.columns}
    last = {
        name: (smooth_curve(y) if smooth else y)[-1] if len(y) else np.nan
        for name, y in series.items()
    }
    final_loss = significant(list(last.values()), LOSS_DIGITS)
    table = pd.DataFrame({"variant": list(last), "final_loss": final_loss})
    table = table.merge(final, left_on="variant", right_index=True, how="left")
    # accuracies are counts over n: 0.95 - 0.945 reads 0.0050000000000000044 unrounded
    gap = (table.train_acc - table.test_acc).round(GAP_DECIMALS)
    table.insert(table.columns.get_loc("test_acc") + 1, "gap", gap)
    return table


def format_number(v: float) -> str:
    """Four decimals, or four significant digits for the tiny values hyperparameters take."""
    return f"{v:.4g}" if v and abs(v) < 1e-2 else f"{v:.4f}"


def format_table(table: pd.DataFrame) -> str:
    return table.to_string(index=False, float_format=format_number)


def show(title: str, table: pd.DataFrame) -> None:
    """Print a study's table on stdout, which carries only tables (logs go to stderr)."""
    print(f"\n{title}\n{format_table(table)}\n", flush=True)


def trial_names(table: pd.DataFrame) -> list[str]:
    """A search's trials named as claims and tables show them: `r1 #7`, round and trial
    number. Here rather than beside the search's outputs so that the suite, which only shows
    them, starts its workers without importing torch and Optuna first."""
    return [f"r{r} #{t}" for r, t in zip(table["round"], table["trial"], strict=True)]
