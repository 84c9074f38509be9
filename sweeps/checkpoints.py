"""A trained member as files: its model config and its final weights, and back to a network.

A checkpoint is two artifacts of the member's run: `checkpoint/model.yaml` (the resolved model
config, which rebuilds the network with `sweeps.networks.build`, the dataset config and the
sample shape it was trained on) and `checkpoint/state_dict.pt` (`torch.save` of the network's
state dict). So any run can be scored again, on any split or dataset, without the code that
trained it.
"""

import io
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from sweeps.errors import UserError
from sweeps.networks import build

MODEL_FILE = "checkpoint/model.yaml"
WEIGHTS_FILE = "checkpoint/state_dict.pt"


def files(
    model: Mapping[str, Any],
    dataset: Mapping[str, Any],
    sample_shape: Sequence[int],
    state: dict,
) -> dict[str, bytes]:
    """The checkpoint's artifacts, path -> bytes: the model and dataset configs, the sample
    shape, and the weights."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    spec = {"model": dict(model), "dataset": dict(dataset), "sample_shape": list(sample_shape)}
    return {
        MODEL_FILE: OmegaConf.to_yaml(OmegaConf.create(spec)).encode(),
        WEIGHTS_FILE: buffer.getvalue(),
    }


def restore(model_yaml: bytes, weights: bytes, device: torch.device) -> tuple[dict, nn.Module]:
    """(the checkpoint's spec, its network with the weights loaded, in evaluation mode)."""
    spec = OmegaConf.to_container(OmegaConf.create(model_yaml.decode()))
    net = build(spec["model"])
    state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        name = spec["model"].get("name")
        raise UserError(f"the checkpoint does not fit model={name}: {err}") from err
    return spec, net.to(device).eval()


@torch.no_grad()
def predict(net: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    """Predicted classes of `x`, in chunks of `batch_size`."""
    return torch.cat(
        [net(x[i : i + batch_size]).argmax(dim=1) for i in range(0, len(x), batch_size)]
    )
