"""What the three networks share: any-size input (pad to a multiple of the total stride, crop back)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def pool_keep_switches(x: torch.Tensor, switches: list) -> torch.Tensor:
    """2x2 max-pool that remembers where each maximum came from (SegNet/DeconvNet "switches")."""
    y, idx = F.max_pool2d(x, 2, 2, return_indices=True)
    switches.append((idx, x.shape[-2:]))
    return y


def unpool_with_switches(x: torch.Tensor, switches: list) -> torch.Tensor:
    """Put each value back where the matching pooling took its maximum from (last pooled, first unpooled)."""
    idx, size = switches.pop()
    return F.max_unpool2d(x, idx, 2, 2, output_size=size)


class SegmentationNet(nn.Module):
    """Base class: subclasses implement ``forward_padded`` on inputs whose H and W divide ``stride``."""

    architecture: str = ""

    def __init__(self, in_channels: int, num_classes: int, width: int, depth: int) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError("num_classes must be at least 2 (background + one class)")
        if width < 1 or depth < 1:
            raise ValueError("width and depth must be positive")
        self.in_channels, self.num_classes, self.width, self.depth = in_channels, num_classes, width, depth

    @property
    def stride(self) -> int:
        return 2**self.depth

    @property
    def config(self) -> dict[str, int | str]:
        """Everything needed to rebuild this network (stored in the model card)."""
        return {
            "architecture": self.architecture,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "width": self.width,
            "depth": self.depth,
        }

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, num_classes, H, W) for any H, W."""
        h, w = x.shape[-2:]
        s = self.stride
        ph, pw = (-h) % s, (-w) % s
        if ph or pw:
            # reflect keeps image statistics at the border; it needs the pad smaller than the side
            mode = "reflect" if ph < h and pw < w else "replicate"
            # bottom/right only: the pooling grid stays anchored at the image origin, as in every tile
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        y = self.forward_padded(x)
        if ph or pw:
            y = y[..., :h, :w]
        return y
