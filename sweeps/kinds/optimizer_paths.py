"""kind=optimizer_paths: the textbook's optimizer paths on f(x, y) = x^2/20 + y^2 (ch. 6.1.7).

The same update rules as the networks use (`sweeps.optimizers`), on a 2-D parameter, so the
figure shows exactly the optimizers the other studies compare.
"""

from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from sweeps import verdicts
from sweeps.figures import pyplot
from sweeps.optimizers import RULES
from sweeps.plan import Variant, expand_variants, run_params
from sweeps.recording import RecordedStudy, provenance_tags, study_run
from sweeps.tables import show


def f(xy: np.ndarray) -> np.ndarray:
    return xy[..., 0] ** 2 / 20.0 + xy[..., 1] ** 2


def gradient(xy: torch.Tensor) -> torch.Tensor:
    return torch.stack([xy[..., 0] / 10.0, 2.0 * xy[..., 1]], dim=-1)


def optimizer_path(v: Variant, start: list[float], steps: int) -> np.ndarray:
    """(steps + 1, 2) points: the start, then the position after each update."""
    rule = RULES[v.optimizer.name]
    hp = {
        h: torch.tensor(float(getattr(v.optimizer, h)), dtype=torch.float64)
        for h in rule.hyperparameters
    }
    xy = torch.tensor(start, dtype=torch.float64)
    state: dict = {}
    points = [xy.clone()]
    for _ in range(steps):
        new = torch.empty_like(xy)
        rule.step(xy, gradient(xy), state, hp, new)
        xy = new
        points.append(xy.clone())
    return torch.stack(points).numpy()


def paths_figure(paths: dict[str, np.ndarray], title: str):
    """A panel per optimizer: contours of f, the path in red, the minimum marked '+'."""
    x, y = np.meshgrid(np.arange(-10, 10, 0.01), np.arange(-5, 5, 0.01))
    z = f(np.stack([x, y], axis=-1))
    z[z > 7] = 0  # the textbook's trick: keep the contours near the minimum
    cols = min(len(paths), 2)
    rows = -(-len(paths) // cols)
    fig, axes = pyplot().subplots(rows, cols, figsize=(5 * cols, 4 * rows), squeeze=False)
    for ax, (name, path) in zip(axes.flat, paths.items(), strict=False):
        ax.contour(x, y, z)
        ax.plot(path[:, 0], path[:, 1], "o-", color="red", markersize=3)
        ax.plot(0, 0, "+")
        ax.set_xlim(-10, 10)
        ax.set_ylim(-10, 10)
        ax.set_title(name)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    for ax in list(axes.flat)[len(paths) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


COLUMNS = ["x", "y", "f"]  # where each path ends, and f there


def outputs(study: str, paths: dict[str, np.ndarray]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The study's table (each path's end point and f there) and its figure."""
    rows = [
        {"variant": name} | dict(zip(COLUMNS, (path[-1, 0], path[-1, 1], f(path[-1])), strict=True))
        for name, path in paths.items()
    ]
    figure = paths_figure(paths, f"{study}: f(x, y) = x^2/20 + y^2")
    return pd.DataFrame(rows), {f"{study}.png": figure}


def run(cfg: DictConfig) -> pd.DataFrame:
    """Each variant's path in its own child run (x, y, f per step); returns the end points."""
    variants = expand_variants(cfg)
    verdicts.check_table(cfg, [v.name for v in variants], COLUMNS, "variant")
    start, steps = list(cfg.paths.start), cfg.paths.steps
    tags = provenance_tags(torch.device("cpu")) | {"seed": cfg.seed}
    with study_run(cfg, tags) as study:
        paths = {}
        params = run_params(variants)
        for v in variants:
            child = study.child(v.name, params[v.name])
            path = paths[v.name] = optimizer_path(v, start, steps)
            points = [
                (key, float(val), i)
                for i, (p, fv) in enumerate(zip(path, f(path), strict=True))
                for key, val in (("x", p[0]), ("y", p[1]), ("f", fv))
            ]
            study.close_child(child, points)
        table, figures = outputs(cfg.study, paths)
        judged = verdicts.judge_table(cfg, table, "variant")
        study.log_outputs(figures, {"summary.csv": table, **verdicts.files(judged)})
        study.finish()
    show(f"{cfg.study} ({len(table)} variants)", table)
    verdicts.show(judged)
    return table


def rebuild(study: RecordedStudy) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The paths from the children's x and y series."""
    cfg = study.config
    paths = {
        v.name: np.stack([study.history(v.name, "x"), study.history(v.name, "y")], axis=1)
        for v in expand_variants(cfg)
    }
    table, figures = outputs(cfg.study, paths)
    return {
        "summary.csv": table,
        **verdicts.files(verdicts.judge_table(cfg, table, "variant")),
    }, figures
