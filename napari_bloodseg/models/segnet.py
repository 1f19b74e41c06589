"""SegNet (Badrinarayanan et al. 2017), SegNet-Basic depth: max-pooling keeps argmax indices, the decoder
unpools with those indices (no learned upsampling, no skip features), BN after every conv."""

from __future__ import annotations

import torch
from torch import nn

from ._base import SegmentationNet, conv_bn_relu, pool_keep_switches, unpool_with_switches


class SegNet(SegmentationNet):
    architecture = "segnet"

    def __init__(
        self, in_channels: int = 3, num_classes: int = 3, width: int = 16, depth: int = 4, convs_per_level: int = 2
    ) -> None:
        super().__init__(in_channels, num_classes, width, depth)
        chans = [width * 2 ** min(i, 3) for i in range(depth)]
        self.encoders = nn.ModuleList()
        cin = in_channels
        for c in chans:
            layers = [conv_bn_relu(cin, c)] + [conv_bn_relu(c, c) for _ in range(convs_per_level - 1)]
            self.encoders.append(nn.Sequential(*layers))
            cin = c
        self.decoders = nn.ModuleList()
        for i in reversed(range(depth)):
            cout = chans[i - 1] if i > 0 else chans[0]
            layers = [conv_bn_relu(chans[i], chans[i]) for _ in range(convs_per_level - 1)]
            self.decoders.append(nn.Sequential(*layers, conv_bn_relu(chans[i], cout)))
        self.head = nn.Conv2d(chans[0], num_classes, 1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        switches: list = []
        for enc in self.encoders:
            x = pool_keep_switches(enc(x), switches)
        for dec in self.decoders:
            x = dec(unpool_with_switches(x, switches))
        return self.head(x)
