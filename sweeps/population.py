"""A population: K variants of one architecture trained as a single stacked model.

Forward and backward run once for all members (batched matmuls over the member axis); each
member's update rule is applied to its own slice of the stacked parameters, with its own
hyperparameters and optimizer state. Members never interact: their losses are summed only so
that one backward pass yields every member's own gradient.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from models.mlp import StackedMLP
from sweeps.optimizers import RULES, State, UpdateRule
from sweeps.plan import Variant


@dataclass
class RuleGroup:
    """The members that share one update rule; `index` is None when that is everyone."""

    rule: UpdateRule
    index: Tensor | None
    hyper: dict[str, Tensor]
    states: list[State]


class Population:
    def __init__(self, variants: Sequence[Variant], device: torch.device) -> None:
        first = variants[0].model
        if any(v.architecture() != variants[0].architecture() for v in variants):
            raise ValueError("a population's members must share one architecture")
        self.names = [v.name for v in variants]
        sizes = [first.input_size, *first.hidden_sizes, first.output_size]
        self.model = StackedMLP(len(variants), sizes, first.activation).to(device)
        self.model.initialize(
            [v.model.init for v in variants],
            [v.model.init_scale for v in variants],
            [v.seed for v in variants],
        )
        self.params = list(self.model.parameters())
        decay = [v.optimizer.weight_decay for v in variants]
        self.weight_decay = torch.tensor(decay, device=device) if any(decay) else None
        self.groups = self._rule_groups(variants, device)

    @property
    def size(self) -> int:
        return len(self.names)

    def _rule_groups(self, variants: Sequence[Variant], device: torch.device) -> list[RuleGroup]:
        members: dict[str, list[int]] = {}
        for k, v in enumerate(variants):
            members.setdefault(v.optimizer.name, []).append(k)
        groups = []
        for name, idx in members.items():
            rule = RULES[name]
            hyper = {
                h: torch.tensor(
                    [float(getattr(variants[k].optimizer, h)) for k in idx], device=device
                ).view(-1, 1, 1)
                for h in rule.hyperparameters
            }
            index = None if len(idx) == len(variants) else torch.tensor(idx, device=device)
            groups.append(RuleGroup(rule, index, hyper, [{} for _ in self.params]))
        return groups

    def losses(self, x: Tensor, y: Tensor) -> Tensor:
        """Per-member mean cross-entropy, plus 0.5*lambda*sum(W^2) over weights (not biases)."""
        logits = self.model(x)
        k, b, c = logits.shape
        ce = F.cross_entropy(logits.reshape(k * b, c), y.repeat(k), reduction="none")
        loss = ce.view(k, b).mean(dim=1)
        if self.weight_decay is not None:
            squares = sum(w.pow(2).sum(dim=(1, 2)) for w in self.model.weight_tensors())
            loss = loss + 0.5 * self.weight_decay * squares
        return loss

    def step(self, x: Tensor, y: Tensor) -> Tensor:
        """One update of every member on the batch (x, y); returns the (K,) pre-update losses."""
        loss = self.losses(x, y)
        grads = torch.autograd.grad(loss.sum(), self.params)
        with torch.no_grad():
            for group in self.groups:
                for param, grad, state in zip(self.params, grads, group.states, strict=True):
                    if group.index is None:
                        param.copy_(group.rule.step(param, grad, state, group.hyper))
                    else:
                        i = group.index
                        param[i] = group.rule.step(param[i], grad[i], state, group.hyper)
        return loss.detach()

    @torch.no_grad()
    def accuracy(self, x: Tensor, y: Tensor, batch_size: int) -> Tensor:
        """(K,) fraction of correct argmax predictions, evaluated in chunks to bound memory."""
        correct = torch.zeros(self.size, device=x.device)
        for start in range(0, len(y), batch_size):
            logits = self.model(x[start : start + batch_size])
            correct += (logits.argmax(dim=2) == y[start : start + batch_size]).sum(dim=1)
        return correct / max(len(y), 1)
