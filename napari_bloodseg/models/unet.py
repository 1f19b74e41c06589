"""U-Net (Ronneberger et al. 2015): conv-BN-ReLU x2 per level, max-pool down, transposed conv up, skip concat."""

from __future__ import annotations

import torch
from torch import nn

from ._base import SegmentationNet, conv_bn_relu


def _double(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))


class SkipMerge(nn.Sequential):
    """Double conv over the channel concatenation of a skip connection and the up-sampled path.

    A module of its own (same state-dict keys as the plain ``Sequential``) so inference can rewrite it: on a CPU,
    :mod:`napari_bloodseg.inference.optimize` splits the first convolution over the two inputs and never builds
    the concatenation.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(*_double(cin, cout))

    def forward(self, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(torch.cat([skip, up], dim=1))


class UNet(SegmentationNet):
    architecture = "unet"

    def __init__(self, in_channels: int = 3, num_classes: int = 3, width: int = 16, depth: int = 4) -> None:
        super().__init__(in_channels, num_classes, width, depth)
        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_double(in_channels, chans[0])])
        self.down.extend(_double(chans[i], chans[i + 1]) for i in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(depth)))
        self.merge = nn.ModuleList(SkipMerge(2 * chans[i], chans[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(chans[0], num_classes, 1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(skips.pop(), up(x))
        return self.head(x)
