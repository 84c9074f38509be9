"""A population: K variants of one architecture trained as a single stacked model.

Forward and backward run once for all members (vectorized over the member axis, or member
after member, as `sweeps.stacks` chooses), giving the gradient of every parameter bank; each
member's update rule is applied to its own slice of each bank, with its own hyperparameters
and optimizer state. Members are
stored grouped by rule, so every rule updates one contiguous range of members. Members never
interact: their losses are summed only so that one backward pass yields every member's own
gradient.

A member whose loss turns NaN/inf is frozen (its parameters stop changing) and its step is
recorded; the others go on. On an accelerator nothing here waits for the host.
"""

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sweeps.optimizers import RULES, State, UpdateRule
from sweeps.plan import Variant
from sweeps.stacks import Bank, Member, build_stack

NOT_DIVERGED = -1


@dataclass
class RuleGroup:
    """Members [start, stop) of the stacked model share this update rule; hyperparameters
    (shaped per bank) and optimizer state are kept per parameter bank."""

    rule: UpdateRule
    start: int
    stop: int
    hyper: list[dict[str, Tensor]]
    states: list[State]


class Population:
    def __init__(
        self,
        variants: Sequence[Variant],
        device: torch.device,
        sample_shape: Sequence[int],
        amp: bool = False,
        compile: bool = False,
        strategy: str = "auto",
    ) -> None:
        """`strategy` says how to run the members (`sweeps.stacks.STRATEGIES`); what was used
        is `self.strategy`, and `self.fallback` says why it is not the one chosen."""
        if any(v.architecture() != variants[0].architecture() for v in variants):
            raise ValueError("a population's members must share one architecture")
        # Stable sort by rule: `order[j]` is the caller's index of stored member j.
        self.order = np.array(
            sorted(range(len(variants)), key=lambda k: variants[k].optimizer.name)
        )
        members = [variants[k] for k in self.order]
        self.names = [v.name for v in members]
        self.replicates = [v.replicate for v in members]
        self.model, self.strategy, self.fallback = build_stack(
            [Member(v.model, v.seed) for v in members], device, strategy, sample_shape
        )
        decay = [v.optimizer.weight_decay for v in members]
        self.weight_decay = torch.tensor(decay, device=device) if any(decay) else None
        self.banks = self.model.banks()
        self.groups = self._rule_groups(members, device, self.banks)
        self.amp = amp
        self.step_count = torch.zeros((), dtype=torch.int64, device=device)
        self.alive = torch.ones(len(members), dtype=torch.bool, device=device)
        self.diverged_at = torch.full((len(members),), NOT_DIVERGED, device=device)
        self.host_checks = device.type == "cpu"
        self.loss_fn = torch.compile(self.losses) if compile else self.losses
        # Per-step work buffers, allocated once: the flat gradient and the masked output.
        self.flat_grad = torch.empty_like(self.model.flat)
        self.scratch = [torch.empty_like(bank.params) for bank in self.banks]

    @property
    def size(self) -> int:
        return len(self.names)

    @staticmethod
    def _rule_groups(
        members: Sequence[Variant], device: torch.device, banks: list[Bank]
    ) -> list[RuleGroup]:
        groups: list[RuleGroup] = []
        start = 0
        while start < len(members):
            name = members[start].optimizer.name
            stop = start
            while stop < len(members) and members[stop].optimizer.name == name:
                stop += 1
            rule = RULES[name]
            values = {
                h: torch.tensor(
                    [float(getattr(v.optimizer, h)) for v in members[start:stop]], device=device
                )
                for h in rule.hyperparameters
            }
            hyper = [{h: bank.per_member(v) for h, v in values.items()} for bank in banks]
            groups.append(RuleGroup(rule, start, stop, hyper, [{} for _ in banks]))
            start = stop
        return groups

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.model.flat.device.type, dtype=torch.bfloat16)

    def losses(self, x: Tensor, y: Tensor) -> Tensor:
        """(K,) mean cross-entropy per member; weight decay is added by `gradients`.

        x is (B, F) with labels (B,) shared by all members, or (K, B, F) with labels (K, B).
        """
        with self._autocast():
            logits = self.model(x, per_member=y.dim() == 2)
        k, b, c = logits.shape
        targets = (y.expand(k, b) if y.dim() == 1 else y).reshape(-1)
        ce = F.cross_entropy(logits.float().reshape(k * b, c), targets, reduction="none")
        return ce.view(k, b).mean(dim=1)

    def gradients(self, x: Tensor, y: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(K,) losses and the gradient of every bank. A looped stack runs forward and backward
        member by member, so only one member's activations are alive at a time.

        Weight decay is the textbook's: 0.5*lambda*sum(W^2) in the loss and lambda*W in the
        weights' gradient, added outside autograd, whose backward of the square took about a
        fifth of the search's step."""
        model = self.model
        if model.vectorized:
            loss = self.loss_fn(x, y)
            grads = torch.autograd.grad(loss.sum(), model.leaves())
            model.bank_grads(grads, flat_out=self.flat_grad, decay=self.weight_decay)
        else:
            per_member = y.dim() == 2
            losses = []
            for k in range(self.size):
                xk, yk = (x[k], y[k]) if per_member else (x, y)
                with self._autocast():
                    logits = model.member_forward(k, xk)
                member_loss = F.cross_entropy(logits.float(), yk)
                decay = None if self.weight_decay is None else self.weight_decay[k]
                grads = torch.autograd.grad(member_loss, model.member_params(k))
                model.member_grads(k, grads, self.flat_grad, decay)
                losses.append(member_loss)
            loss = torch.stack(losses)
        loss = loss.detach()
        if self.weight_decay is not None:
            loss = loss + 0.5 * self.weight_decay * model.weight_penalty()
        return loss, [self.flat_grad]

    def step(self, x: Tensor, y: Tensor) -> Tensor:
        """One update of every live member on (x, y); returns the (K,) pre-update losses."""
        loss, grads = self.gradients(x, y)
        with torch.no_grad():
            finite = torch.isfinite(loss)
            self.diverged_at.copy_(
                torch.where(self.alive & ~finite, self.step_count, self.diverged_at)
            )
            self.alive &= finite
            # On the CPU a flag costs nothing to read, and with every member alive the rules
            # can update in place; elsewhere that read would stall the device every step.
            masked = not self.host_checks or not bool(self.alive.all())
            for b, (bank, grad, scratch) in enumerate(
                zip(self.banks, grads, self.scratch, strict=True)
            ):
                out = scratch if masked else bank.params
                for g in self.groups:
                    params, grad_rows, out_rows = (
                        bank.members(t, g.start, g.stop) for t in (bank.params, grad, out)
                    )
                    g.rule.step(params, grad_rows, g.states[b], g.hyper[b], out_rows)
                if masked:
                    alive = bank.per_member(self.alive)
                    torch.where(alive, scratch, bank.params, out=bank.params)
            self.step_count += 1
        return loss

    def states(self) -> list[dict[str, Tensor]]:
        """Every member's state dict, in stored order (see `sweeps.stacks.member_state`)."""
        return [self.model.member_state(k) for k in range(self.size)]

    def stop(self, members: Tensor) -> None:
        """Freeze the members where `members` (K,) is true, as divergence does, without
        marking them diverged: a pruned trial keeps the weights it stopped with."""
        self.alive &= ~members.to(self.alive.device)

    @torch.no_grad()
    def correct(self, x: Tensor, y: Tensor, batch_size: int) -> Tensor:
        """(K,) counts of correct argmax predictions in evaluation mode, in chunks: counts
        rather than fractions, so the host divides exactly (`sweeps.numbers.fraction`)."""
        self.model.eval()
        correct = torch.zeros(self.size, device=x.device)
        try:
            for start in range(0, len(y), batch_size):
                with self._autocast():
                    logits = self.model(x[start : start + batch_size])
                correct += (logits.argmax(dim=2) == y[start : start + batch_size]).sum(dim=1)
        finally:
            self.model.train()
        return correct
