"""kind=activations: activation histograms of a deep stack (ch. 6.2.2-6.2.3).

1000 N(0, 1) inputs pass through `probe.layers` fully connected layers of `probe.width`
units (no bias, no training), with weights drawn by each variant's init scheme; what the
textbook shows is how each scheme keeps (or fails to keep) the activations spread out.
"""

from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from models.init import init_std
from models.layers import ACTIVATIONS
from sweeps import verdicts
from sweeps.figures import pyplot
from sweeps.numbers import significant
from sweeps.plan import Variant, expand_variants, run_params
from sweeps.recording import RecordedStudy, provenance_tags, study_run
from sweeps.tables import show

STATS = ["mean", "std", "saturated"]
STAT_DIGITS = 4

# Outputs where the activation's gradient (nearly) vanishes.
SATURATED = {
    "sigmoid": lambda z: (z < 0.01) | (z > 0.99),
    "tanh": lambda z: np.abs(z) > 0.99,
    "relu": lambda z: z <= 0,
}
RANGES = {"sigmoid": (0, 1), "tanh": (-1, 1), "relu": (0, 1)}


def layer_outputs(v: Variant, samples: int, width: int, layers: int) -> list[np.ndarray]:
    """Each layer's activations for the variant's init scheme and activation, seeded."""
    generator = torch.Generator().manual_seed(v.seed)
    act = ACTIVATIONS[v.model["activation"]]
    h = torch.randn(samples, width, generator=generator)
    outputs = []
    for _ in range(layers):
        std = init_std(v.model["init"], width, v.model["init_scale"])
        h = act(h @ (torch.randn(width, width, generator=generator) * std))
        outputs.append(h.numpy())
    return outputs


def layer_stats(activation: str, outputs: list[np.ndarray]) -> pd.DataFrame:
    """Per layer (1-based): mean, std and saturated fraction of the activations."""
    return pd.DataFrame(
        {
            "layer": range(1, len(outputs) + 1),
            "mean": [float(z.mean()) for z in outputs],
            "std": [float(z.std()) for z in outputs],
            "saturated": [float(SATURATED[activation](z).mean()) for z in outputs],
        }
    )


def histogram_figure(activation: str, rows: dict[str, list[np.ndarray]], bins: int, title: str):
    """A row per weight setting, a panel per layer, as in the textbook's histograms."""
    layers = len(next(iter(rows.values())))
    fig, axes = pyplot().subplots(
        len(rows), layers, figsize=(2.4 * layers, 2.0 * len(rows)), squeeze=False
    )
    for r, (name, outputs) in enumerate(rows.items()):
        for i, z in enumerate(outputs):
            ax = axes[r, i]
            ax.hist(z.flatten(), bins, range=RANGES[activation])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{i + 1}-layer", fontsize=9)
        axes[r, 0].set_ylabel(name, fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def histogram_figures(
    study: str, outputs: list[tuple[Variant, list[np.ndarray]]], bins: int
) -> dict[str, Any]:
    """`STUDY_ACTIVATION.png` -> figure: a row per weight setting (the variant's name less
    the grid point, its activation) of each activation's variants."""
    by_activation: dict[str, dict[str, list[np.ndarray]]] = {}
    for v, layers in outputs:
        activation = v.model["activation"]
        by_activation.setdefault(activation, {})[v.name.removesuffix(f" {activation}")] = layers
    return {
        f"{study}_{a}.png": histogram_figure(a, settings, bins, f"{study}: {a}")
        for a, settings in by_activation.items()
    }


def summary_row(name: str, last: dict[str, float]) -> dict[str, object]:
    """A table row: the variant and its last layer's mean, std and saturated fraction."""
    return {"variant": name} | {f"last_{k}": float(last[k]) for k in STATS}


def run(cfg: DictConfig) -> pd.DataFrame:
    """Each variant's per-layer statistics in its own child run; returns the last layer's."""
    variants = expand_variants(cfg)
    columns = [f"last_{k}" for k in STATS]
    verdicts.check_table(cfg, [v.name for v in variants], columns, "variant")
    probe = cfg.probe
    tags = provenance_tags(torch.device("cpu")) | {"seed": cfg.seed}
    with study_run(cfg, tags) as study:
        collected: list[tuple[Variant, list[np.ndarray]]] = []
        rows = []
        params = run_params(variants)
        for v in variants:
            child = study.child(v.name, params[v.name])
            outputs = layer_outputs(v, probe.samples, probe.width, probe.layers)
            stats = layer_stats(v.model["activation"], outputs)
            stats[STATS] = significant(stats[STATS], STAT_DIGITS)
            points = [
                (f"layer/{key}", row[key], int(row["layer"]))
                for _, row in stats.iterrows()
                for key in STATS
            ]
            study.close_child(child, points)
            collected.append((v, outputs))
            rows.append(summary_row(v.name, stats.iloc[-1].to_dict()))
        figures = histogram_figures(cfg.study, collected, probe.bins)
        table = pd.DataFrame(rows)
        judged = verdicts.judge_table(cfg, table, "variant")
        study.log_outputs(figures, {"summary.csv": table, **verdicts.files(judged)})
        study.finish()
    show(f"{cfg.study} ({len(table)} variants)", table)
    verdicts.show(judged)
    return table


def rebuild(study: RecordedStudy) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The table from the children's last-layer statistics; the histograms from the untrained
    stacks recomputed from the recorded config and seed (MLflow holds only the statistics,
    and the stacks are deterministic)."""
    cfg = study.config
    probe = cfg.probe
    rows, collected = [], []
    for v in expand_variants(cfg):
        last = {k: study.history(v.name, f"layer/{k}")[-1] for k in STATS}
        rows.append(summary_row(v.name, last))
        collected.append((v, layer_outputs(v, probe.samples, probe.width, probe.layers)))
    table = pd.DataFrame(rows)
    tables = {"summary.csv": table, **verdicts.files(verdicts.judge_table(cfg, table, "variant"))}
    return tables, histogram_figures(cfg.study, collected, probe.bins)
