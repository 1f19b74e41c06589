"""Running a network on images of any size, on GPU or CPU.

Names load on first use (PEP 562): importing the package, as the CLI does to build ``--help``, does not import
torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ..cancellation import Cancelled
    from .device import DEVICE_CHOICES, available_devices, describe, resolve_device
    from .predict import Prediction, Predictor, resize_image, segment
    from .tiling import sliding_window, tile_starts

_EXPORTS = {
    "DEVICE_CHOICES": ".device",
    "available_devices": ".device",
    "describe": ".device",
    "resolve_device": ".device",
    "Cancelled": "..cancellation",
    "Prediction": ".predict",
    "Predictor": ".predict",
    "resize_image": ".predict",
    "segment": ".predict",
    "sliding_window": ".tiling",
    "tile_starts": ".tiling",
}

__all__ = [
    "Cancelled",
    "DEVICE_CHOICES",
    "Prediction",
    "Predictor",
    "available_devices",
    "describe",
    "resize_image",
    "resolve_device",
    "segment",
    "sliding_window",
    "tile_starts",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
