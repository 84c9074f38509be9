"""How numbers are stored and shown: to the digits that carry meaning.

A float32 loss printed as a float64 reads 2.302585124969482, and an accuracy computed on
the device as a float32 fraction reads 0.9449999928474426. Stored that way in MLflow, they
fill the UI's columns and the CSVs with noise. Losses are kept to `LOSS_DIGITS` significant
digits when they leave the device, accuracies are exact counts over n (`fraction`), and
hyperparameters are shown to four significant digits.
"""

from typing import Any

import numpy as np

LOSS_DIGITS = 5
PARAM_DIGITS = 4


def significant(values: Any, digits: int) -> np.ndarray:
    """`values` rounded to `digits` significant digits; 0, inf and nan stay as they are."""
    a = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(a) & (a != 0)
    magnitude = np.floor(np.log10(np.abs(np.where(finite, a, 1.0))))
    scale = 10.0 ** (digits - 1 - magnitude)
    return np.where(finite, np.round(a * scale) / scale, a)


def fraction(counts: Any, n: int) -> np.ndarray:
    """Correct counts over n, in float64: 189/200 is stored as 0.945, not 0.94499999."""
    return np.asarray(counts, dtype=np.float64) / max(n, 1)


def param(value: Any) -> Any:
    """A hyperparameter as an MLflow param: floats to `PARAM_DIGITS` significant digits."""
    if isinstance(value, float):
        return f"{value:.{PARAM_DIGITS}g}"
    return value


def short(value: Any) -> str:
    """A value in a run name or label: `1.85e-4`, `0.01`, `100`, `True`."""
    if isinstance(value, float) and value and not 1e-3 <= abs(value) < 1e4:
        return np.format_float_scientific(value, precision=2, trim="-", exp_digits=1)
    return f"{value:.3g}" if isinstance(value, float) else str(value)
