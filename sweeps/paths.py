"""kind=paths: the textbook's optimizer paths on f(x, y) = x^2/20 + y^2 (ch. 6.1.7).

The same update rules as the networks use (`sweeps.optimizers`), on a 2-D parameter, so the
figure shows exactly the optimizers the other studies compare.
"""

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from sweeps.optimizers import RULES
from sweeps.plan import Variant, expand_variants
from sweeps.runtime import provenance_tags
from sweeps.study import finish_parent, start_parent
from sweeps.tracking import Recorder, tracking_uri


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = np.meshgrid(np.arange(-10, 10, 0.01), np.arange(-5, 5, 0.01))
    z = f(np.stack([x, y], axis=-1))
    z[z > 7] = 0  # the textbook's trick: keep the contours near the minimum
    cols = min(len(paths), 2)
    rows = -(-len(paths) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4 * rows), squeeze=False)
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


def paths_outputs(study: str, paths: dict[str, np.ndarray]) -> tuple[pd.DataFrame, dict]:
    """The study's table (each path's end point and f there) and its figure."""
    rows = [
        {"variant": name, "x": path[-1, 0], "y": path[-1, 1], "f": f(path[-1])}
        for name, path in paths.items()
    ]
    figure = paths_figure(paths, f"{study}: f(x, y) = x^2/20 + y^2")
    return pd.DataFrame(rows), {f"{study}.png": figure}


def run_paths(cfg: DictConfig) -> pd.DataFrame:
    variants = expand_variants(cfg)
    start, steps = list(cfg.paths.start), cfg.paths.steps
    recorder = Recorder(tracking_uri(cfg.tracking.uri), cfg.tracking.experiment)
    tags = provenance_tags(torch.device("cpu")) | {"seed": cfg.seed}
    with recorder.guarded():
        parent = start_parent(recorder, cfg, tags)
        paths = {}
        for v in variants:
            child = recorder.start(v.name, v.params(), tags, parent=parent)
            path = paths[v.name] = optimizer_path(v, start, steps)
            values = f(path)
            recorder.log_metrics(
                child,
                [
                    (key, float(val), i)
                    for i, (p, fv) in enumerate(zip(path, values, strict=True))
                    for key, val in (("x", p[0]), ("y", p[1]), ("f", fv))
                ],
            )
            recorder.finish(child)
        table, figures = paths_outputs(cfg.study, paths)
        finish_parent(recorder, parent, cfg.study, table, figures)
    return table
