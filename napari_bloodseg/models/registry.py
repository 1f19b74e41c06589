"""Architecture registry: ``build_model("unet", num_classes=3, width=16)``."""

from __future__ import annotations

from typing import Any

from ._base import SegmentationNet
from .deconvnet import DeconvNet
from .segnet import SegNet
from .unet import UNet

ARCHITECTURES: dict[str, type[SegmentationNet]] = {cls.architecture: cls for cls in (UNet, SegNet, DeconvNet)}


def build_model(architecture: str, /, **config: Any) -> SegmentationNet:
    """Build an untrained network. ``config`` takes in_channels, num_classes, width, depth."""
    config = {k: v for k, v in config.items() if k != "architecture"}
    try:
        cls = ARCHITECTURES[architecture.lower()]
    except KeyError:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}") from None
    try:
        return cls(**config)
    except TypeError as exc:
        raise ValueError(f"bad config for {architecture}: {exc}") from None
