"""Architecture registry: ``build_model("unet", num_classes=3, width=16)``.

The names are known without importing torch (listing models, the CLI's ``models`` command); a network class
loads when it is first looked up.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._base import SegmentationNet

_CLASSES = {"unet": (".unet", "UNet"), "segnet": (".segnet", "SegNet"), "deconvnet": (".deconvnet", "DeconvNet")}


class _Architectures(Mapping[str, "type[SegmentationNet]"]):
    """Architecture name → network class, imported on first lookup."""

    def __getitem__(self, name: str) -> type[SegmentationNet]:
        module, cls = _CLASSES[name]
        return getattr(importlib.import_module(module, __package__), cls)

    def __contains__(self, name: object) -> bool:  # Mapping's default would import the class
        return name in _CLASSES

    def __iter__(self) -> Iterator[str]:
        return iter(_CLASSES)

    def __len__(self) -> int:
        return len(_CLASSES)


ARCHITECTURES: Mapping[str, type[SegmentationNet]] = _Architectures()


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
