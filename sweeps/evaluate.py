"""`python -m sweeps.evaluate RUN_ID [dataset=NAME ...]`: score a recorded network again.

The run's checkpoint (`sweeps.checkpoints`) rebuilds the network and its final weights from the
store alone; it is scored on a split of the dataset it was trained on, or of any dataset given
as Hydra overrides of the `dataset` group (`dataset=fashion_mnist`, `dataset.root=DIR`).
Prints the accuracy and the confusion matrix, and saves the matrix's figure.
"""

import argparse
import sys
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from sweeps.config import CONF_DIR, register
from sweeps.errors import UserError

SPLITS = ("test", "train")


def dataset_config(recorded: dict, overrides: list[str]) -> DictConfig:
    """The dataset config: the command line's `dataset=NAME` or the recorded one, with the
    recorded settings (root, cache, train size) for the same dataset unless overridden."""
    register()
    bad = [o for o in overrides if not o.lstrip("+~").startswith("dataset")]
    if bad:
        raise UserError(f"only dataset overrides are accepted here, not: {' '.join(bad)}")
    chosen = next((o.split("=", 1)[1] for o in overrides if o.startswith("dataset=")), None)
    rest = [o for o in overrides if not o.startswith("dataset=")]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        dataset = compose("config", overrides=[f"dataset={chosen or recorded['name']}", *rest])
    if chosen and chosen != recorded.get("name"):
        return dataset.dataset
    explicit = {o.split("=", 1)[0].lstrip("+~").removeprefix("dataset.") for o in rest}
    return OmegaConf.merge(
        dataset.dataset, {k: v for k, v in recorded.items() if k not in explicit}
    )


def evaluate(
    run_id: str, overrides: list[str], split: str, uri: str | None, out: str | None
) -> tuple[float, pd.DataFrame, Path]:
    """(accuracy, confusion matrix with true classes as rows, figure path)."""
    import torch

    from sweeps import checkpoints
    from sweeps.data import load_data
    from sweeps.figures import pyplot
    from sweeps.recording import Store, tracking_uri

    if split not in SPLITS:
        raise UserError(f"--split {split!r} is not valid; choose one of: {', '.join(SPLITS)}")
    store = Store(tracking_uri(uri))
    store.run(run_id)
    model_yaml = store.artifact(run_id, checkpoints.MODEL_FILE)
    weights = store.artifact(run_id, checkpoints.WEIGHTS_FILE)
    device = torch.device("cpu")
    spec, net = checkpoints.restore(model_yaml, weights, device)
    data = load_data(dataset_config(spec["dataset"], overrides), device)
    x, y = (data.eval_x, data.eval_y) if split == "test" else (data.train_x, data.train_y)
    predicted = checkpoints.predict(net, x, 1000)
    accuracy = float((predicted == y).float().mean())
    matrix = pd.crosstab(
        pd.Series(y.numpy(), name="true"), pd.Series(predicted.numpy(), name="predicted")
    )
    folder = Path(out or Path("reports") / "evaluate" / run_id)
    folder.mkdir(parents=True, exist_ok=True)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    image = ax.imshow(matrix.to_numpy(), cmap="Blues")
    ax.set_xticks(range(len(matrix.columns)), matrix.columns)
    ax.set_yticks(range(len(matrix.index)), matrix.index)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    name = spec["model"].get("name")
    ax.set_title(f"{name} on {data.name} {split} ({len(y)}): accuracy {accuracy:.4f}")
    fig.colorbar(image)
    fig.tight_layout()
    path = folder / f"confusion_{data.name}_{split}.png"
    fig.savefig(path)
    plt.close(fig)
    return accuracy, matrix, path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sweeps.evaluate",
        description="Score a recorded network's checkpoint on a dataset split.",
    )
    parser.add_argument("run_id", help="the MLflow run holding the checkpoint")
    parser.add_argument("overrides", nargs="*", help="dataset overrides, e.g. dataset=mnist")
    parser.add_argument("--split", default="test", help="test (default) or train")
    parser.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI or ./mlflow.db")
    parser.add_argument("--out", help="figure folder (default: reports/evaluate/RUN_ID)")
    args = parser.parse_args(argv)
    try:
        accuracy, matrix, path = evaluate(
            args.run_id, args.overrides, args.split, args.tracking_uri, args.out
        )
    except UserError as err:
        sys.exit(f"error: {err}")
    print(f"accuracy {accuracy:.4f}\n{matrix.to_string()}\nconfusion matrix figure: {path}")


if __name__ == "__main__":
    main()
