"""DeconvNet (Noh et al. 2015): VGG-style conv encoder, a fully-convolutional bottleneck (the paper's fc6/fc7,
here 3x3 so any image size works), then a mirrored decoder that unpools with the pooling switches and
densifies with deconvolution (transposed-conv) layers."""

from __future__ import annotations

import torch
from torch import nn

from ._base import SegmentationNet, conv_bn_relu, pool_keep_switches, unpool_with_switches

#: convs per level, VGG-16 pattern truncated to the depth used
_VGG_CONVS = (2, 2, 3, 3, 3)


def _deconv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class DeconvNet(SegmentationNet):
    architecture = "deconvnet"

    def __init__(self, in_channels: int = 3, num_classes: int = 3, width: int = 16, depth: int = 4) -> None:
        super().__init__(in_channels, num_classes, width, depth)
        chans = [width * 2 ** min(i, 3) for i in range(depth)]
        convs = [_VGG_CONVS[min(i, len(_VGG_CONVS) - 1)] for i in range(depth)]
        self.encoders = nn.ModuleList()
        cin = in_channels
        for c, n in zip(chans, convs, strict=True):
            self.encoders.append(nn.Sequential(conv_bn_relu(cin, c), *[conv_bn_relu(c, c) for _ in range(n - 1)]))
            cin = c
        fc = chans[-1] * 2
        self.fc = nn.Sequential(conv_bn_relu(cin, fc), conv_bn_relu(fc, fc), _deconv_bn_relu(fc, cin))
        self.decoders = nn.ModuleList()
        for i in reversed(range(depth)):
            cout = chans[i - 1] if i > 0 else chans[0]
            layers = [_deconv_bn_relu(chans[i], chans[i]) for _ in range(convs[i] - 1)]
            self.decoders.append(nn.Sequential(*layers, _deconv_bn_relu(chans[i], cout)))
        self.head = nn.Conv2d(chans[0], num_classes, 1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        switches: list = []
        for enc in self.encoders:
            x = pool_keep_switches(enc(x), switches)
        x = self.fc(x)
        for dec in self.decoders:
            x = dec(unpool_with_switches(x, switches))
        return self.head(x)
