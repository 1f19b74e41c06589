"""Loss: cross-entropy + soft Dice, both blind to IGNORE_INDEX pixels (partial corrections)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..schemas import IGNORE_INDEX


def ce_dice_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 1.0) -> torch.Tensor:
    """Cross-entropy plus (1 - mean soft Dice over foreground classes); Dice rewards thin cytoplasm rims that
    plain cross-entropy underweights."""
    valid = target != IGNORE_INDEX
    if not valid.any():
        return logits.sum() * 0.0
    ce = F.cross_entropy(logits, target.long(), ignore_index=IGNORE_INDEX)
    if dice_weight <= 0:
        return ce
    probs = logits.float().softmax(1)
    c = logits.shape[1]
    onehot = F.one_hot(torch.where(valid, target, 0).long(), c).permute(0, 3, 1, 2).float()
    m = valid[:, None].float()
    inter = (probs * onehot * m).sum((0, 2, 3))
    denom = ((probs + onehot) * m).sum((0, 2, 3))
    dice = (2 * inter + 1.0) / (denom + 1.0)
    return ce + dice_weight * (1 - dice[1:].mean())
